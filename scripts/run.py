#!/usr/bin/env python3
"""Run the whole CRM on one machine: check the bus and database, migrate, start every service and the
gateway, restart what dies, stop everything cleanly on Ctrl-C.

    make run            # or: .venv/bin/python scripts/run.py [--demo] [--replicas 2]
    make run REPLICAS=2 # two processes of every service and of the gateway (they share the HTTP port)

Configuration comes from the environment (see config.yml and docs/operations.md).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from crm_common.serve import quiet_start_notices  # noqa: E402

quiet_start_notices()  # before anything below imports eventlet

import infra  # noqa: E402  (scripts/infra.py)

from crm_common import registry  # noqa: E402
from crm_common.config import DEV_ADMIN_PASSWORD, ConfigError, Settings, load_config, signing_key  # noqa: E402
from crm_common.vhost import VhostError, ensure_vhost, refuse_if_taken  # noqa: E402

LEVEL_COLOURS = {"error": "\033[31m", "warning": "\033[33m", "critical": "\033[31m"}


def say(message: str) -> None:
    print(f"[run] {message}", flush=True)


def printable(url: str) -> str:
    """A database URL without its password, for the console."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def printable_amqp(amqp_uri: str) -> str:
    """The broker's URI without its password."""
    url = urlparse(amqp_uri)
    host = f"{url.hostname}:{url.port}" if url.port else str(url.hostname)
    return url._replace(netloc=f"{url.username}@{host}" if url.username else host).geturl()


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(check, seconds: float, step: float = 0.5) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return check()


def ensure_rabbitmq(amqp_uri: str) -> str:
    url = urlparse(amqp_uri)
    host, port = url.hostname or "127.0.0.1", url.port or 5672
    if not port_open(host, port) and host in infra.LOCAL:
        # installed from the distribution's packages if missing, and started (scripts/infra.py)
        if infra.ensure(["rabbitmq"], infra.Machine(), {"AMQP_HOST": host, "AMQP_PORT": str(port)}):
            sys.exit(1)
    outcome: list = [None]

    def usable() -> bool:
        """The URI's vhost exists (created now if it was missing and we may) and lets us in."""
        try:
            outcome[0] = ensure_vhost(amqp_uri)
            return True
        except VhostError as exc:
            outcome[0] = exc
            return exc.final  # a final answer ends the wait; a broker still starting is asked again

    if not usable() and port_open(host, port):
        wait_until(usable, 30, 1.0)
    if isinstance(outcome[0], VhostError) and outcome[0].final:
        sys.exit(f"[run] {outcome[0]}")
    if isinstance(outcome[0], VhostError):
        sys.exit(
            f"[run] RabbitMQ does not answer at {url.hostname}:{port} ({outcome[0]}).\n"
            "      The CRM needs it: `sudo apt install rabbitmq-server` (Debian/Ubuntu), or\n"
            "      `docker compose up -d rabbitmq`, or set AMQP_URI to a broker you have."
        )
    return outcome[0]


def ensure_postgres(database_url: str | None) -> None:
    if not database_url:
        return
    url = urlparse(database_url)
    host, port = url.hostname or "127.0.0.1", url.port or 5432
    if port_open(host, port):
        return
    if host in infra.LOCAL and infra.ensure(["postgresql"], infra.Machine(), {"PGHOST": host, "PGPORT": str(port)}) == 0:
        return
    sys.exit(
        f"[run] PostgreSQL does not answer at {host}:{port}. Start it, or unset CRM_DATABASE_URL to use SQLite files."
    )


def fit_pools(settings: Settings, processes: int, gateways: int) -> None:
    """On PostgreSQL without CRM_DB_POOL_SIZE, give every process pools small enough that all of them at their
    fullest fit in the server's free connections (a default server allows 100; seven processes with pools of 12
    could ask for 224 and fail under load with "too many clients")."""
    if not settings.database_url or os.environ.get("CRM_DB_POOL_SIZE"):
        return
    from crm_common.db import free_connections, pool_size_that_fits

    free = free_connections(settings.direct_database_url_for("gateway"))
    size = pool_size_that_fits(free, processes, gateways, settings.db_pool_size)
    if size < settings.db_pool_size:
        os.environ["CRM_DB_POOL_SIZE"] = str(size)
        say(f"database pools: {size} connections each ({free} free on the server for {processes} processes; "
            "set CRM_DB_POOL_SIZE to choose, or raise max_connections)")


class Child:
    """One service process, restarted with back-off when it dies."""

    def __init__(self, name: str, module: str, env: dict, config_path: Path):
        self.name, self.module, self.env, self.config_path = name, module, env, config_path
        self.process: subprocess.Popen | None = None
        self.restarts: list[float] = []
        self.next_start = 0.0

    def start(self) -> None:
        # `nameko run` without eventlet's and pkg_resources' deprecation notices (crm_common/serve.py)
        command = [sys.executable, "-m", "crm_common.serve", "run", "--config", str(self.config_path), self.module]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1, start_new_session=True,
        )
        threading.Thread(target=self._pump, args=(self.process,), daemon=True).start()

    def _pump(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            print(render(self.name, line.rstrip("\n")), flush=True)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def terminate(self) -> None:
        """Ask the service to stop (SIGTERM), once: nameko runs a second, concurrent shutdown for a
        second SIGTERM, and the two can wait on each other for ever."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)

    def wait_stopped(self, timeout: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            say(f"{self.name} did not stop in {timeout:g}s; killing it")
            self.process.kill()
            self.process.wait()


def render(name: str, line: str) -> str:
    """Service logs are JSON lines; on a terminal show them readably."""
    if not sys.stdout.isatty() or not line.startswith("{"):
        return f"[{name}] {line}"
    try:
        entry = json.loads(line)
    except ValueError:
        return f"[{name}] {line}"
    level = entry.get("level", "info")
    colour = LEVEL_COLOURS.get(level, "")
    text = f"[{name}] {entry.get('ts', '')[11:19]} {level:<7} {entry.get('msg', '')}"
    if entry.get("exc"):
        text += "\n" + entry["exc"]
    return f"{colour}{text}\033[0m" if colour else text


def port_taken(host: str, port: int) -> str | None:
    """Why the gateway could not have the port to itself, or None. Binding without SO_REUSEPORT fails
    also when processes that share the port hold it (another CRM's gateway replicas, say)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def health(url: str) -> dict | None:
    import requests

    try:
        response = requests.get(f"{url}/health", timeout=5)
        return response.json()
    except Exception:  # noqa: BLE001 - not up yet
        return None


def backup_lines(settings: Settings) -> str:
    """Where the backups go and which key encrypts them (the development key is made here, once)."""
    if "backup" not in settings.services:
        return ""
    from backup.engine import backup_dir
    from backup.keys import ensure_dev_key

    if settings.backup_key.strip():
        key = "CRM_BACKUP_KEY"
    else:
        key = f"{ensure_dev_key(settings)} (development key: keep a copy off this machine)"
    return (f"  Backups:         {backup_dir(settings)}, schedule '{settings.backup_schedule}'"
            f"{', off-site ' + settings.backup_offsite if settings.backup_offsite else ', no off-site target'}\n"
            f"  Backup key:      {key}\n")


def listening(children: list[Child], port: int) -> list[str]:
    """The gateway processes that listen on the port now (replicas share it, so /health alone cannot
    tell whether every one of them is up)."""
    import psutil

    found = []
    for child in children:
        if not child.alive():
            continue
        try:
            sockets = psutil.Process(child.process.pid).net_connections("tcp")
        except psutil.Error:
            continue
        if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in sockets):
            found.append(child.name)
    return found


def announce(settings: Settings, http: Http, gateways: list[Child], args: argparse.Namespace,
             stopping: threading.Event) -> None:
    """Once the gateway reports every service healthy and every gateway process listens, print where
    the CRM is and how to log in."""

    def ready() -> bool:
        return stopping.is_set() or (
            len(listening(gateways, http.port)) == len(gateways) and (health(http.url) or {}).get("status") == "ok"
        )

    up = wait_until(ready, args.startup_timeout)
    if stopping.is_set():
        return
    if not up:
        say(f"not healthy after {args.startup_timeout:g}s: {health(http.url)}; "
            f"gateway processes listening: {listening(gateways, http.port)} of {[g.name for g in gateways]}")
    password = settings.admin_password if settings.admin_password == DEV_ADMIN_PASSWORD else "(CRM_ADMIN_PASSWORD)"
    data_location = printable(settings.database_url) if settings.database_url else Path(settings.data_dir).resolve()
    key = "CRM_SECRET_KEY" if settings.secret_key else f"{settings.secret_key_path} (made on first start; keep it private)"
    reach = http.reach()
    print(
        "\n"
        f"  CRM is running:  {http.url}/api/v1   (docs: {http.url}/api/v1/docs)\n"
        f"  Reachable from:  {reach}\n"
        f"  Log in as:       {settings.admin_email} / {password}\n"
        f"  Data:            {data_location}\n"
        f"{backup_lines(settings)}"
        f"  Tokens signed:   with {key}\n"
        f"  Processes:       {args.replicas} of each service and of the gateway\n"
        "  Stop with Ctrl-C.\n",
        flush=True,
    )
    if args.demo and up:
        from demo import DemoStepFailed, seed

        say("loading the demo data (what is already there is kept)")
        try:
            say(seed(f"{http.url}/api/v1", settings.admin_email, settings.admin_password))
        except DemoStepFailed as exc:  # the system keeps running; the message names the step and what to do
            say(str(exc))
        except Exception as exc:  # noqa: BLE001 - the system keeps running
            say(f"demo data could not be loaded: {exc}")


class Http:
    """Where the gateway listens (CRM_HTTP_HOST, CRM_HTTP_PORT, as config.yml reads them) and the URL to reach it."""

    def __init__(self, environ):
        self.host = environ.get("CRM_HTTP_HOST") or "127.0.0.1"
        self.port = int(environ.get("CRM_HTTP_PORT") or "8000")
        self.wildcard = self.host in ("0.0.0.0", "::")
        shown = "127.0.0.1" if self.wildcard else self.host
        self.url = f"http://{'[' + shown + ']' if ':' in shown else shown}:{self.port}"

    def reach(self) -> str:
        if self.host in ("127.0.0.1", "localhost", "::1"):
            return "this machine only"
        if self.wildcard:
            return f"every network interface (CRM_HTTP_HOST={self.host}): anyone who can reach this machine"
        return f"{self.host}: anyone who can reach that address"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the whole CRM locally.")
    parser.add_argument("--demo", action="store_true", help="fill the CRM with realistic demo data once it is up")
    parser.add_argument("--replicas", type=int, default=1,
                        help="processes per service and of the gateway (gateways share the HTTP port)")
    parser.add_argument("--startup-timeout", type=float, default=90.0)
    args = parser.parse_args(argv)

    os.chdir(ROOT)  # relative paths (CRM_DATA_DIR=./var) mean the same to this script and the services
    for name in ("CRM_HTTP_HOST", "CRM_HTTP_PORT"):
        if not os.environ.get(name):
            # config.yml's plain ${VAR:default} would take an empty value as given (":8000" is no address)
            os.environ.pop(name, None)
    config_path = Path(os.environ.get("CRM_CONFIG", ROOT / "config.yml")).resolve()
    config = load_config(config_path)
    try:
        settings = Settings.from_config(config)
    except ConfigError as exc:
        sys.exit(f"[run] {exc}")
    http = Http(os.environ)

    if args.replicas < 1:
        sys.exit("[run] --replicas must be 1 or more")
    if args.replicas > 1 and not settings.database_url:
        sys.exit("[run] --replicas needs PostgreSQL (set CRM_DATABASE_URL): SQLite files serve one process each")
    taken = port_taken(http.host, http.port)
    if taken:
        sys.exit(f"[run] cannot listen on {http.host}:{http.port} ({taken}): is another CRM running? "
                 "Stop it, or choose another port with CRM_HTTP_PORT")
    try:
        signing_key(settings)  # made once here, before the gateway processes start and read it
    except ConfigError as exc:
        sys.exit(f"[run] {exc}")
    bus = ensure_rabbitmq(settings.amqp_uri)
    processes = registry.processes(settings.services)
    try:
        # one vhost per deployment: a second system on these queues would mix the two systems' data
        refuse_if_taken(settings.amqp_uri, [spec.name for spec in processes])
    except VhostError as exc:
        sys.exit(f"[run] {exc}")
    say(f"message bus: {printable_amqp(settings.amqp_uri)}, {bus}")
    ensure_postgres(settings.database_url)
    fit_pools(settings, len(processes) * args.replicas, sum(spec.http for spec in processes) * args.replicas)

    from crm_common.migrate import migrate

    for spec in processes:
        say(f"{spec.name}: database {migrate(spec.name, config)} ({printable(settings.database_url_for(spec.name))})")
    from crm_common.queues import declare_consumer_queues

    # before any process starts: events published before their consumer's first start wait in its queues
    say(f"event queues declared: {declare_consumer_queues(config)}")

    children: list[Child] = []
    gateways: list[Child] = []
    for spec in processes:
        for index in range(args.replicas):
            label = spec.name if args.replicas == 1 else f"{spec.name}-{index + 1}"
            env = dict(os.environ, CRM_SERVICE_NAME=label)
            if spec.http and args.replicas > 1:
                env["CRM_HTTP_REUSE_PORT"] = "1"  # the gateway's replicas share the port; the kernel spreads connections
            children.append(Child(label, spec.entry, env, config_path))
            if spec.http:
                gateways.append(children[-1])

    stopping = threading.Event()

    def stop(signum, _frame):
        if not stopping.is_set():
            say(f"got {signal.Signals(signum).name}; stopping every service")
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    for child in children:
        child.start()

    # the banner (and the demo data) wait for health in their own thread: the supervision loop below
    # must run from the first second, or a service that dies while the others start is never restarted
    threading.Thread(target=announce, args=(settings, http, gateways, args, stopping), daemon=True).start()

    while not stopping.is_set():
        now = time.monotonic()
        for child in children:
            if child.alive() or stopping.is_set():
                continue
            if child.process is not None and child.next_start == 0.0:
                code = child.process.returncode
                child.restarts = [t for t in child.restarts if now - t < 300] + [now]
                delay = min(30.0, 2.0 ** (len(child.restarts) - 1))
                say(f"{child.name} exited with code {code}; restarting in {delay:g}s "
                    f"({len(child.restarts)} restart(s) in the last 5 min)")
                child.next_start = now + delay
            if now >= child.next_start:
                child.next_start = 0.0
                child.start()
        stopping.wait(0.5)

    for child in children:
        child.terminate()  # all at once: they stop in parallel
    for child in children:
        child.wait_stopped(timeout=20)
    say("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
