"""What reliability costs and how fast it works: the command log on POST /clients, recovery after a broker outage.

Both run on a CRM of their own: a RabbitMQ node of the benchmark's (``crm_common.testing.broker``, so
the shared broker is never stopped and nobody else's benchmark shares its queues) and PostgreSQL
databases ``crm_bench_rec_*``, dropped before and after; the CRM is started by ``scripts/run.py`` as
``make run`` starts it.

1. **Command log cost.** Every write stores its request id and result in the service's ``command_log``
   in its own transaction (decision 23). ``POST /clients`` at 10 workers is measured with it and
   without it (``CRM_COMMAND_LOG=off``), in alternating pairs, each run on a freshly started system;
   the ratios are with ÷ without of the throughput and of the clients process's CPU per write (the
   latter hardly depends on what else the machine is doing).
2. **Broker recovery.** With 1 and then 2 replicas of each service, the node is stopped for 10 s and
   started again; measured from the start: until ``/health`` is ok, until every replica consumes its
   RPC queue again (the queue's consumer count, read with a passive declare), and until a
   ``POST /clients`` succeeds; and whether any process exited.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import requests

from bench import load
from bench.sampler import Sampler
from bench.system import PG_SERVER

WORKERS = 10
PHONE_BLOCK = 20_000  # numbers one worker may use in one run
MANAGERS = 5
PASSWORD = "bench-manager-1"
OUTAGE_S = 10.0
PREFIX = "crm_bench_rec_"


def measure(load_processes: int, warmup_s: float, duration_s: float, pairs: int = 3, trials: int = 2,
            say=print) -> dict:
    from crm_common.testing.broker import BrokerUnavailable, PrivateBroker

    folder = Path(tempfile.mkdtemp(prefix="crm-bench-reliability-"))
    say(f"reliability: booting a private RabbitMQ node under {folder}")
    try:
        broker = PrivateBroker(folder / "rabbitmq").boot()
    except BrokerUnavailable as exc:
        say(f"reliability not measured: {exc}")
        return {"error": str(exc)}
    results: dict = {}
    try:
        say("reliability: POST /clients with and without the command log")
        results["command_log"] = _phase(say, _command_log_cost, broker, folder, load_processes, warmup_s,
                                         duration_s, pairs, say)
        results["recovery"] = {"outage_s": OUTAGE_S, "by_replicas": {}}
        for replicas in (1, 2):
            say(f"reliability: every service after a {OUTAGE_S:g} s broker outage, {replicas} replica(s)")
            _drop_databases()
            trials_measured = _phase(say, _recovery, broker, folder, replicas, trials, say)
            if isinstance(trials_measured, dict):  # it failed
                results["recovery"] = trials_measured
                break
            results["recovery"]["by_replicas"][str(replicas)] = trials_measured
    finally:
        broker.shutdown()
        _phase(say, _drop_databases)
    return results


def _phase(say, fn, *args):
    """One measurement; a failure (the shared PostgreSQL out of connections, say) is reported, not fatal."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - recorded in the results and the report
        say(f"reliability: {fn.__name__} failed: {type(exc).__name__}: {exc}")
        return {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}


def _start(broker, folder: Path, name: str, replicas: int = 1, **env):
    from nameko.testing.utils import find_free_port

    from crm_common.testing.system import start_system

    settings = {
        "AMQP_URI": broker.amqp_uri, "CRM_DATABASE_URL": PG_SERVER, "CRM_DATABASE_PREFIX": PREFIX,
        "CRM_HTTP_HOST": "127.0.0.1", "CRM_HTTP_PORT": str(find_free_port()), "CRM_DATA_DIR": str(folder / "data"),
        # the PostgreSQL server is shared (100 connections): small pools, as in the tests
        "CRM_RATE_LIMIT_PER_MINUTE": "0", "CRM_DB_POOL_SIZE": "3", **env,
    }
    return start_system(settings, folder / f"{name}.log", startup_timeout=180, args=("--replicas", str(replicas)))


def _managers(system) -> list[str]:
    """A branch with managers (who create the clients, as in the create_client scenario); their tokens."""
    from crm_common.testing.system import Api

    admin = system.admin
    branch = admin.ok("POST", "/branches", {"name": "Bench", "code": f"R{int(time.time())}"[-12:]}, status=201)["id"]
    tokens = []
    for index in range(MANAGERS):
        email = f"manager{index}.{int(time.time() * 1000)}@bench.local"
        admin.ok("POST", "/users", {"email": email, "name": f"Manager {index}", "password": PASSWORD,
                                    "role": "manager", "branch_id": branch}, status=201)
        tokens.append(Api(system.base_url).login(email, PASSWORD).http.headers["Authorization"].split(" ", 1)[1])
    return tokens


def _command_log_cost(broker, folder, load_processes, warmup_s, duration_s, pairs, say) -> dict:
    _drop_databases()
    tokens: list[str] = []
    runs: list[dict] = []
    for pair in range(1, pairs + 1):
        for arm, env in (("with", {}), ("without", {"CRM_COMMAND_LOG": "off"})):
            system = _start(broker, folder, f"command-log-{pair}-{arm}", **env)
            try:
                tokens = tokens or _managers(system)
                port = int(system.env["CRM_HTTP_PORT"])
                data = {"tokens": tokens, "phone_base": len(runs) * WORKERS * PHONE_BLOCK, "block": PHONE_BLOCK}
                spec = {"scenario": "create_client", "data": data, "port": port, "amqp_uri": broker.amqp_uri}
                run = load.run(spec, WORKERS, load_processes, warmup_s, duration_s, Sampler(_processes(system)))
            finally:
                system.stop()
            run.update(arm=arm, pair=pair, clients_cpu_ms=_cpu_ms_per_write(run, "clients"),
                       gateway_cpu_ms=_cpu_ms_per_write(run, "gateway"))
            runs.append(run)
            say(f"create_client {arm} the command log: {run['rps']:.1f} req/s, p50 {run['p50_ms']} ms, "
                f"p99 {run['p99_ms']} ms, clients CPU {run['clients_cpu_ms']} ms per write, {run['errors']} errors "
                f"{run['statuses']}, other CPU {run['cpu_cores'].get('other')}")
    ratios, cpu_ratios = [], []
    for pair in range(1, pairs + 1):
        with_, without = (next(r for r in runs if r["pair"] == pair and r["arm"] == arm) for arm in ("with", "without"))
        if without["rps"]:
            ratios.append(round(with_["rps"] / without["rps"], 3))
        if with_["clients_cpu_ms"] and without["clients_cpu_ms"]:
            cpu_ratios.append(round(with_["clients_cpu_ms"] / without["clients_cpu_ms"], 3))
    keep = ("arm", "pair", "rps", "p50_ms", "p90_ms", "p99_ms", "errors", "conflicts", "statuses", "error_samples",
            "cpu_cores", "clients_cpu_ms", "gateway_cpu_ms")
    return {"workers": WORKERS, "runs": [{k: r.get(k) for k in keep} for r in runs], "ratios": ratios,
            "ratio_median": statistics.median(ratios) if ratios else None, "cpu_ratios": cpu_ratios,
            "cpu_ratio_median": statistics.median(cpu_ratios) if cpu_ratios else None}


def _cpu_ms_per_write(run: dict, process: str) -> float | None:
    """CPU milliseconds the process spent per successful write: unlike req/s, hardly moved by what else
    the machine runs."""
    cores = (run.get("cpu_cores") or {}).get(process)
    if not cores or not run["ok"]:
        return None
    return round(cores * run["duration_s"] * 1000 / run["ok"], 2)


def _processes(system) -> dict:
    """The CRM's processes for the CPU sampler, named as bench.system names them."""
    import psutil

    from bench.system import MODULES

    found = {"run.py": psutil.Process(system.process.pid)}
    for child in found["run.py"].children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
        except psutil.Error:
            continue
        for name, module in MODULES.items():
            if module in cmdline:
                found.setdefault(name, child)
    return found


def _recovery(broker, folder: Path, replicas: int, trials: int, say) -> list[dict]:
    system = _start(broker, folder, f"recovery-{replicas}", replicas=replicas, CRM_LOG_LEVEL="WARNING")
    health_url = system.base_url.replace("/api/v1", "/health")
    measured = []
    try:
        branch = system.admin.ok("POST", "/branches", {"name": "Recovery", "code": f"V{replicas}{int(time.time())}"[-12:]},
                                 status=201)["id"]
        for trial in range(1, trials + 1):
            _wait(lambda: _status(health_url) == 200, 120)
            exits_before = system.log().count(" exited with code ")
            broker.stop()
            time.sleep(OUTAGE_S)
            exits = system.log().count(" exited with code ") - exits_before
            broker.start()
            returned = time.monotonic()
            seen: dict[str, float] = {}
            checks = {
                "health_s": lambda: _status(health_url) == 200,
                "consumers_s": lambda: all(_consumers(broker.amqp_uri, f"rpc-{s}") >= replicas for s in ("clients", "deals")),
                "write_s": lambda: system.admin.post("/clients", {"kind": "person", "name": "Recovery",
                                                                  "branch_id": branch}, timeout=10).status_code == 201,
            }
            while len(seen) < len(checks) and time.monotonic() - returned < 120:
                for name, check in checks.items():
                    if name not in seen and _safe(check):
                        seen[name] = round(time.monotonic() - returned, 2)
                time.sleep(0.05)
            row = {"trial": trial, **{name: seen.get(name) for name in checks}, "exits_during_outage": exits}
            row["every_service_s"] = max((v for v in (row["health_s"], row["consumers_s"]) if v is not None),
                                         default=None)
            measured.append(row)
            say(f"broker recovery, {replicas} replica(s), trial {trial}: {row}")
    finally:
        system.stop()
    return measured


def _wait(check, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not _safe(check):
        if time.monotonic() > deadline:
            raise RuntimeError(f"not ready after {seconds:g}s")
        time.sleep(0.2)


def _safe(check) -> bool:
    try:
        return bool(check())
    except Exception:  # noqa: BLE001 - not yet: the broker or a service is still coming back
        return False


def _status(url: str) -> int | None:
    try:
        return requests.get(url, timeout=3).status_code
    except requests.RequestException:
        return None


def _consumers(amqp_uri: str, queue: str) -> int:
    from kombu import Connection

    with Connection(amqp_uri, connect_timeout=2) as conn:
        return conn.default_channel.queue_declare(queue=queue, passive=True).consumer_count


def _drop_databases() -> None:
    import psycopg2

    assert PREFIX.startswith("crm_bench"), "the reset must never reach a database it did not create"
    conn = psycopg2.connect(f"{PG_SERVER}/postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for service in ("clients", "deals", "gateway"):
                cur.execute(f'DROP DATABASE IF EXISTS "{PREFIX}{service}" WITH (FORCE)')
    finally:
        conn.close()
