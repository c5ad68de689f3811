"""A private RabbitMQ node for tests and benchmarks that stop the broker.

The machine's RabbitMQ is shared by everyone's tests and must never be stopped, so an outage is
staged on a node of our own: ``rabbitmq-server -detached`` with its own node name, ports, data and
log folders and its own ``HOME`` (hence its own Erlang cookie), all under one temporary folder.
``stop()`` / ``start()`` stop and start the RabbitMQ application (the Erlang node stays up, so
starting again takes a second or two), which closes every connection and, as a real broker restart
does, forgets transient messages and non-durable queues.

    with PrivateBroker(tmp_path) as broker:
        broker.amqp_uri        # amqp://guest:guest@127.0.0.1:<port>/
        broker.stop(); ...; broker.start()
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")


class BrokerUnavailable(RuntimeError):
    """A private RabbitMQ node cannot be started on this machine."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _tool(name: str) -> str:
    # the wrappers in /usr/sbin switch to the rabbitmq user and its HOME (the shared node's cookie);
    # the scripts behind them run as we are, with the HOME we give them
    path = RABBITMQ_BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if not found:
        raise BrokerUnavailable(f"{name} is not installed")
    return found


class PrivateBroker:
    def __init__(self, folder: Path, boot_timeout: float = 90.0):
        self.folder = Path(folder)
        self.boot_timeout = boot_timeout
        self.node = f"crmfault-{uuid.uuid4().hex[:8]}@localhost"
        self.port = 0
        self.running = False

    @property
    def amqp_uri(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _env(self) -> dict:
        config = self.folder / "rabbitmq.conf"
        return dict(
            os.environ,
            HOME=str(self.folder),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.folder / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.folder / "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.folder / "enabled_plugins"),
            RABBITMQ_CONFIG_FILE=str(config),
            RABBITMQ_PID_FILE=str(self.folder / "rabbitmq.pid"),
        )

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [_tool("rabbitmqctl"), "-q", "-n", self.node, *args],
            env=self._env(), capture_output=True, text=True, timeout=timeout,
        )

    def boot(self) -> PrivateBroker:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "rabbitmq.conf").write_text("", encoding="utf-8")  # not /etc/rabbitmq's listeners
        (self.folder / "enabled_plugins").write_text("[].\n", encoding="utf-8")
        last_error = ""
        for _attempt in range(3):  # a free port may be taken between choosing and binding it
            self.port, self.dist_port = _free_port(), _free_port()
            started = subprocess.run(
                [_tool("rabbitmq-server"), "-detached"], env=self._env(), capture_output=True, text=True, timeout=60
            )
            if started.returncode != 0:
                last_error = started.stderr or started.stdout
                continue
            deadline = time.monotonic() + self.boot_timeout
            while time.monotonic() < deadline and not _port_open(self.port):
                time.sleep(0.2)
            if _port_open(self.port):
                self.running = True
                return self
            last_error = self._log_tail()
            self.shutdown()
        raise BrokerUnavailable(f"a private RabbitMQ node did not start: {last_error[-2000:]}")

    def stop(self) -> None:
        """Stop the RabbitMQ application: every connection is closed and new ones are refused."""
        result = self.ctl("stop_app")
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl stop_app failed: {result.stderr}")
        self.running = False

    def start(self) -> None:
        result = self.ctl("start_app")
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl start_app failed: {result.stderr}")
        deadline = time.monotonic() + 30
        while not _port_open(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError("the private RabbitMQ node did not listen again after start_app")
            time.sleep(0.05)
        self.running = True

    def shutdown(self) -> None:
        try:
            done = self.ctl("shutdown", timeout=60).returncode == 0
        except subprocess.TimeoutExpired:
            done = False
        self.running = False
        if done:
            return
        # a node that never answered: end our own beam process, found by its pid file and node name
        try:
            pid = int((self.folder / "rabbitmq.pid").read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except (OSError, ValueError):
            return
        if self.node.split("@")[0] in cmdline:
            try:
                os.kill(pid, 9)
            except (ProcessLookupError, PermissionError):
                pass

    def _log_tail(self) -> str:
        logs = sorted((self.folder / "log").glob("*.log"))
        return logs[0].read_text(errors="replace")[-2000:] if logs else ""

    def __enter__(self) -> PrivateBroker:
        return self.boot()

    def __exit__(self, *exc_info) -> None:
        self.shutdown()
