"""What reliability costs and how fast it works: the command log on POST /clients, recovery after a broker outage.

1. **Command log cost.** Every write stores its request id and result in the service's ``command_log``
   in its own transaction (decision 21). ``POST /clients`` at 10 workers is measured with it (the system
   as it runs) and without it (the same system restarted with ``CRM_COMMAND_LOG=off``), in alternating
   pairs within the same run, each run on a freshly started system; the ratio is with ÷ without.
2. **Broker recovery.** The CRM runs on a RabbitMQ node of its own (``crm_common.testing.broker``, so the
   shared broker is never stopped) with 1 and then 2 replicas of each service. The node is stopped for
   10 s and started again; measured from the start: until ``/health`` is ok, until every replica
   consumes its RPC queue again (the queue's consumer count, read with a passive declare), and until a
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
from bench.workload import spec

WORKERS = 10
OUTAGE_S = 10.0
RECOVERY_PREFIX = "crm_bench_rec_"


def command_log_cost(crm, workload, load_processes: int, warmup_s: float, duration_s: float, pairs: int = 3,
                     say=print) -> dict:
    """Alternate runs with and without the command log, each on a freshly started system (so both arms
    start equally cold); the system is left as it was found (with it)."""
    runs: list[dict] = []
    switched = False
    try:
        for pair in range(pairs):
            for arm, env in (("with", None), ("without", {"CRM_COMMAND_LOG": "off"})):
                crm.stop()
                crm.start(extra_env=env)
                switched = env is not None
                run = load.run(spec("create_client", workload.data("create_client", WORKERS), crm.port), WORKERS,
                               load_processes, warmup_s, duration_s, Sampler(crm.processes()))
                run.update(arm=arm, pair=pair + 1)
                runs.append(run)
                say(f"create_client {arm} the command log: {run['rps']:.1f} req/s, p50 {run['p50_ms']} ms, "
                    f"p99 {run['p99_ms']} ms, {run['errors']} errors")
    finally:
        if switched:
            crm.stop()
            crm.start()
    ratios = []
    for pair in range(1, pairs + 1):
        with_, without = (next(r for r in runs if r["pair"] == pair and r["arm"] == arm) for arm in ("with", "without"))
        if without["rps"]:
            ratios.append(round(with_["rps"] / without["rps"], 3))
    keep = ("arm", "pair", "rps", "p50_ms", "p90_ms", "p99_ms", "errors", "conflicts", "cpu_cores")
    # the measurement is only as good as the machine was quiet: 'other' is CPU used outside the benchmark
    return {"workers": WORKERS, "runs": [{k: r.get(k) for k in keep} for r in runs], "ratios": ratios,
            "ratio_median": statistics.median(ratios) if ratios else None}


def broker_recovery(replicas: tuple[int, ...] = (1, 2), trials: int = 2, say=print) -> dict:
    from crm_common.testing.broker import BrokerUnavailable, PrivateBroker

    folder = Path(tempfile.mkdtemp(prefix="crm-bench-broker-"))
    try:
        broker = PrivateBroker(folder / "rabbitmq").boot()
    except BrokerUnavailable as exc:
        say(f"broker recovery not measured: {exc}")
        return {"error": str(exc)}
    results: dict = {"outage_s": OUTAGE_S, "by_replicas": {}}
    try:
        for count in replicas:
            results["by_replicas"][str(count)] = _recovery_trials(broker, folder, count, trials, say)
    finally:
        broker.shutdown()
    return results


def _recovery_trials(broker, folder: Path, replicas: int, trials: int, say) -> list[dict]:
    from nameko.testing.utils import find_free_port

    from crm_common.testing.system import start_system

    _drop_recovery_databases()
    port = find_free_port()
    env = {
        "AMQP_URI": broker.amqp_uri, "CRM_DATABASE_URL": PG_SERVER, "CRM_DATABASE_PREFIX": RECOVERY_PREFIX,
        "CRM_HTTP_HOST": "127.0.0.1", "CRM_HTTP_PORT": str(port), "CRM_DATA_DIR": str(folder / "data"),
        "CRM_RATE_LIMIT_PER_MINUTE": "0", "CRM_LOG_LEVEL": "WARNING", "CRM_DB_POOL_SIZE": "3",
    }
    system = start_system(env, folder / f"run-{replicas}.log", startup_timeout=180, args=("--replicas", str(replicas)))
    health_url = f"http://127.0.0.1:{port}/health"
    measured = []
    try:
        branch = system.admin.ok("POST", "/branches", {"name": "Bench", "code": f"R{replicas}{int(time.time())}"[-12:]},
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
        _drop_recovery_databases()
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


def _drop_recovery_databases() -> None:
    import psycopg2

    assert RECOVERY_PREFIX.startswith("crm_bench"), "the reset must never reach a database it did not create"
    conn = psycopg2.connect(f"{PG_SERVER}/postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for service in ("clients", "deals", "gateway"):
                cur.execute(f'DROP DATABASE IF EXISTS "{RECOVERY_PREFIX}{service}" WITH (FORCE)')
    finally:
        conn.close()
