"""``jobs = Jobs()``: starts the long work of the service (a backup, a verification) in a worker process
(``python -m backup.worker``) and waits for it in a green thread, so the service keeps answering."""

from __future__ import annotations

import json
import logging
import signal
import sys

from eventlet.green import subprocess
from nameko.extensions import DependencyProvider

log = logging.getLogger(__name__)
STOP_GRACE_S = 15


class Jobs(DependencyProvider):
    def setup(self):
        self.running: set = set()
        # the worker gets the service's own config (it was read once, from config.yml and the environment)
        self.config_json = json.dumps(self.container.config, default=str)

    def launch(self, action: str, record_id: str) -> None:
        process = subprocess.Popen(
            [sys.executable, "-m", "backup.worker", action, record_id], stdin=subprocess.PIPE,
        )
        self.running.add(process)
        process.stdin.write(self.config_json.encode())
        process.stdin.close()
        self.container.spawn_managed_thread(lambda: self._wait(action, record_id, process))

    def _wait(self, action: str, record_id: str, process) -> None:
        code = process.wait()
        self.running.discard(process)
        if code not in (0, 1):  # 1: the job failed and recorded why; anything else is a crash
            log.error("backup worker (%s %s) exited with code %s", action, record_id, code)

    def stop(self):
        """The service stops: interrupt running jobs, which record themselves as interrupted."""
        for process in list(self.running):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in list(self.running):
            try:
                process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                process.kill()

    kill = stop

    def get_dependency(self, worker_ctx):
        return self
