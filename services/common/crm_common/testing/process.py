"""A service as a real OS process (``nameko run``, as ``make run`` starts it), for tests that kill it.

    process = ServiceProcess("clients", service_env(config, CRM_TEST_HOLD_AFTER_COMMIT=folder), log_path)
    process.start()
    process.kill()        # SIGKILL: no shutdown, no ack, no reply
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from crm_common.config import REPO_ROOT

MODULES = {
    "clients": "clients.service:ClientsService",
    "deals": "deals.service:DealsService",
    "gateway": "gateway.service:GatewayService",
}


def service_env(config: dict, **overrides: str) -> dict:
    """The environment that makes ``config.yml`` say what a test's nameko ``config`` says."""
    crm = config["CRM"]
    env = {
        "AMQP_URI": config["AMQP_URI"],
        "CRM_DATABASE_URL": crm.get("database_url") or "",
        "CRM_DATABASE_PREFIX": crm.get("database_prefix", "crm_"),
        "CRM_DATA_DIR": str(crm.get("data_dir", "./var")),
        "CRM_DB_POOL_SIZE": str(crm.get("db_pool_size", 3)),
        "CRM_OUTBOX_POLL_S": str(crm.get("outbox_poll_s", 1)),
        "CRM_RPC_TIMEOUT_S": str(crm.get("rpc_timeout_s", 5)),
        "CRM_SERVICES": ",".join(crm["services"]) if isinstance(crm.get("services"), (list, tuple))
        else str(crm.get("services") or "clients,deals"),
        "CRM_LOG_LEVEL": "WARNING",
        "PYTHONWARNINGS": "ignore",
    }
    env.update(overrides)
    return env


class ServiceProcess:
    def __init__(self, service: str, env: dict, log_path: Path):
        self.service = service
        self.env = dict(os.environ, CRM_SERVICE_NAME=service, **env)
        self.log_path = Path(log_path)
        self.process: subprocess.Popen | None = None

    def start(self) -> ServiceProcess:
        log = open(self.log_path, "a", encoding="utf-8")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nameko", "run", "--config", str(REPO_ROOT / "config.yml"), MODULES[self.service]],
            cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def wait_ready(self, config: dict, timeout: float = 60) -> None:
        """Until the process answers ``health()`` over the bus (its RPC queue may not exist before)."""
        import time

        from nameko.exceptions import RpcTimeout, UnknownService
        from nameko.standalone.rpc import ClusterRpcProxy

        deadline = time.monotonic() + timeout
        with ClusterRpcProxy(config, timeout=2) as cluster:
            while True:
                if not self.alive():
                    raise RuntimeError(f"{self.service} exited with {self.process.returncode}:\n{self.log()[-3000:]}")
                try:
                    cluster[self.service].health()
                    return
                except (UnknownService, RpcTimeout):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{self.service} did not answer in {timeout:g}s:\n{self.log()[-3000:]}") from None
                    time.sleep(0.2)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, as the kernel's OOM killer or ``kill -9`` would: nothing in the process runs again."""
        if self.alive():
            os.kill(self.process.pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(30)

    def stop(self, timeout: float = 20) -> None:
        """One SIGTERM (nameko's clean shutdown), then SIGKILL if it takes longer than ``timeout``."""
        if not self.alive():
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""
