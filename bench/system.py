"""The system under test: its own vhost and databases, started as `make run` starts it, plus the echo service.

Everything the benchmark creates is named with ``crm-bench`` / ``crm_bench_`` so it never touches a
developer's data; resetting drops only those databases.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests

from crm_common.registry import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
# two benchmarks on one machine (of two branches, say) keep apart with CRM_BENCH_ID=<word>
BENCH_ID = re.sub(r"[^a-z0-9]", "", os.environ.get("CRM_BENCH_ID", "").lower())
DB_PREFIX = f"crm_bench_{BENCH_ID}_" if BENCH_ID else "crm_bench_"
VHOST = f"crm-bench-{BENCH_ID}" if BENCH_ID else "crm-bench"
AMQP_URI = f"amqp://guest:guest@127.0.0.1:5672/{VHOST}"
SERVICES = tuple(spec.name for spec in REGISTRY)
ADMIN_EMAIL = "admin@bench.local"
ADMIN_PASSWORD = "bench-admin-12345"
# what identifies each child of scripts/run.py (and the echo service) on its command line
MODULES = {spec.name: spec.entry for spec in REGISTRY}
ECHO_SERVICES = ("bench.echo_service:EchoService", "bench.echo_service:CrmEchoService")


def database_url(service: str) -> str:
    return f"{PG_SERVER}/{DB_PREFIX}{service}"


def ensure_vhost(vhost: str = VHOST) -> None:
    """The benchmark's own vhost (or a phase's), so its services never answer a developer's or a test run's calls."""
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=False, capture_output=True, timeout=60)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                   check=True, capture_output=True, timeout=60)


def delete_vhost(vhost: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], check=False, capture_output=True, timeout=60)


def reset_databases(prefix: str = DB_PREFIX) -> None:
    """Drop the benchmark's databases (or a phase's: ``prefix``), and only them; scripts/run.py creates and
    migrates them again."""
    import psycopg2

    assert prefix.startswith("crm_bench"), "the reset must never reach a database it did not create"
    conn = psycopg2.connect(f"{PG_SERVER}/postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for service in SERVICES:
                cur.execute(f'DROP DATABASE IF EXISTS "{prefix}{service}" WITH (FORCE)')
    finally:
        conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class System:
    """scripts/run.py (with ``--replicas``) and the echo service, started in the benchmark's vhost and databases."""

    port: int
    log_dir: Path
    replicas: int = 1
    run: subprocess.Popen | None = None
    echo: subprocess.Popen | None = None
    env: dict = field(default_factory=dict)
    logs: list = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    def start(self, startup_timeout: float = 180.0, extra_env: dict | None = None) -> None:
        """``extra_env`` adds variables for this start only (a restart without it drops them)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.env = dict(
            os.environ,
            PYTHONUNBUFFERED="1",
            AMQP_URI=AMQP_URI,
            CRM_DATABASE_URL=PG_SERVER,
            CRM_DATABASE_PREFIX=DB_PREFIX,
            CRM_HTTP_HOST="127.0.0.1",
            CRM_HTTP_PORT=str(self.port),
            CRM_DATA_DIR=str(self.log_dir / "data"),
            CRM_RATE_LIMIT_PER_MINUTE="0",
            CRM_RATE_LIMIT_ADMIN_PER_MINUTE="0",
            # the benchmark's head reads thousands of distinct clients a minute: the read cap would stop it (the
            # audit log and the alarm stay on; bench/audit.py measures them)
            CRM_READ_CAP_PER_HOUR="0",
            # the benchmark runs the stuck scan itself, at a moment it chooses; the service's own timer
            # must not raise the seeded past-due deals in the middle of a measurement
            CRM_STUCK_CHECK_INTERVAL_S="86400",
            CRM_TASK_CHECK_INTERVAL_S="86400",  # the same for the overdue check
            CRM_ADMIN_EMAIL=ADMIN_EMAIL,
            CRM_ADMIN_PASSWORD=ADMIN_PASSWORD,
            **(extra_env or {}),
        )
        # each benchmark run starts its logs afresh; a restart within the run appends to them
        mode = "a" if self.logs else "w"
        self.logs = [open(self.log_dir / "run.log", mode), open(self.log_dir / "echo.log", mode)]
        self.run = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "run.py"), "--replicas", str(self.replicas)], cwd=ROOT, env=self.env,
            stdout=self.logs[0], stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.echo = subprocess.Popen(
            [sys.executable, "-m", "nameko", "run", "--config", str(ROOT / "config.yml"), *ECHO_SERVICES],
            cwd=ROOT, env=dict(self.env, CRM_SERVICE_NAME="bench_echo"),
            stdout=self.logs[1], stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + startup_timeout
        while not self.healthy():
            if self.run.poll() is not None:
                raise RuntimeError(f"scripts/run.py exited with {self.run.returncode}; see {self.log_dir / 'run.log'}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the CRM was not healthy after {startup_timeout:g}s; see {self.log_dir / 'run.log'}")
            time.sleep(0.5)
        self._wait_for_echo(deadline)

    def healthy(self) -> bool:
        if self.run is None or self.run.poll() is not None or self.echo is None or self.echo.poll() is not None:
            return False
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/health", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def _wait_for_echo(self, deadline: float) -> None:
        from nameko.exceptions import UnknownService
        from nameko.standalone.rpc import ClusterRpcProxy

        with ClusterRpcProxy({"AMQP_URI": AMQP_URI}, timeout=10) as proxy:
            while True:
                try:
                    proxy.bench_echo.echo("ping")
                    proxy.bench_echo_crm.echo("ping")
                    return
                except UnknownService:
                    if self.echo.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"the echo service did not start; see {self.log_dir / 'echo.log'}") from None
                    time.sleep(0.5)

    def processes(self) -> dict[str, psutil.Process]:
        """The gateway, clients, deals and echo processes as they are now (run.py restarts what dies),
        and run.py itself, which relays every log line of its children. With replicas, the second copy
        of the gateway is ``gateway-2`` and so on."""
        found: dict[str, psutil.Process] = {}
        if self.run is not None and self.run.poll() is None:
            found["run.py"] = psutil.Process(self.run.pid)
            copies: dict[str, int] = {}
            for child in psutil.Process(self.run.pid).children(recursive=True):
                try:
                    cmdline = " ".join(child.cmdline())
                except psutil.Error:
                    continue
                for name, module in MODULES.items():
                    if module in cmdline:
                        copies[name] = copies.get(name, 0) + 1
                        found[name if copies[name] == 1 else f"{name}-{copies[name]}"] = child
        if self.echo is not None and self.echo.poll() is None:
            found["echo"] = psutil.Process(self.echo.pid)
        return found

    def stop(self) -> None:
        """SIGINT to run.py (it stops every service cleanly), SIGTERM to the echo service; kill what hangs."""
        for process, sig in ((self.run, signal.SIGINT), (self.echo, signal.SIGTERM)):
            if process is not None and process.poll() is None:
                process.send_signal(sig)
        for process in (self.run, self.echo):
            if process is None:
                continue
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for log in self.logs:
            log.close()


def drain_events(timeout_s: float = 300.0) -> float:
    """Wait until every event the system has made is handled: no outbox holds an unpublished row and every queue of
    the benchmark's vhost is empty, twice in a row a second apart. A scan's events set off work in every consumer (a
    stuck deal: the clients timeline, a task and a notice in the tasks service, whose task_created goes on to the
    clients, reports and webhooks services), and a pass that starts while that work goes on shares the two cores with
    it. Returns the seconds waited."""
    import psycopg2

    started = time.monotonic()
    quiet = 0
    while time.monotonic() - started < timeout_s:
        listing = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", VHOST, "messages"], capture_output=True,
                                 text=True, timeout=60).stdout
        queued = sum(int(count) for count in listing.split() if count.isdigit())
        pending = 0
        for service in SERVICES:
            conn = psycopg2.connect(database_url(service))
            conn.autocommit = True
            try:
                with conn.cursor() as cursor:
                    cursor.execute("SELECT to_regclass('outbox') IS NOT NULL")
                    if cursor.fetchone()[0]:
                        cursor.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                        pending += cursor.fetchone()[0]
            finally:
                conn.close()
        quiet = quiet + 1 if queued == 0 and pending == 0 else 0
        if quiet == 2:
            break
        time.sleep(1.0)
    return round(time.monotonic() - started, 1)


def settle(max_wait_s: float = 90.0, idle_cores: float = 0.25, services: tuple[str, ...] = SERVICES) -> float:
    """After seeding, let PostgreSQL write its checkpoint and the machine calm down before measuring.

    Returns the seconds waited. Seeding a million rows leaves checkpoints and autovacuum behind them,
    which would otherwise run during the first measurements.
    """
    import psycopg2

    started = time.monotonic()
    for service in services:
        conn = psycopg2.connect(database_url(service))
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute("CHECKPOINT")
        conn.close()
    cores = psutil.cpu_count() or 1
    while time.monotonic() - started < max_wait_s:
        busy = psutil.cpu_percent(interval=2.0) / 100 * cores
        if busy < idle_cores:
            break
    return round(time.monotonic() - started, 1)
