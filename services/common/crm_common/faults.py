"""A test hook that holds a service between the commit of a write and its reply.

The failure that makes a write run twice is a process that dies after its transaction committed and
before its reply left: the broker delivers the request again to the next process. To reproduce it
exactly, a test starts a service with ``CRM_TEST_HOLD_AFTER_COMMIT=<folder>``. After every write
commits, the worker then creates ``<folder>/<service>.<method>.<pid>`` holding the command's
request id, and waits for ever (other greenthreads keep running). The test waits for that file and
kills the process with SIGKILL at exactly that point, with the write committed and no reply sent.

The variable is read once when the service starts, which logs a warning while it is set; a
production service (``CRM_ENV=production``) refuses to start with it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import eventlet

from crm_common.config import ConfigError

log = logging.getLogger(__name__)

HOLD_AFTER_COMMIT = "CRM_TEST_HOLD_AFTER_COMMIT"


def hold_folder(service_name: str, production: bool) -> Path | None:
    folder = os.environ.get(HOLD_AFTER_COMMIT)
    if not folder:
        return None
    if production:
        raise ConfigError(f"refusing to start in production: {HOLD_AFTER_COMMIT} is a test hook")
    log.warning("%s is set: every write of %s will hang after its commit", HOLD_AFTER_COMMIT, service_name)
    return Path(folder)


def hold_after_commit(folder: Path, worker_ctx, key: str | None) -> None:
    name = f"{worker_ctx.service_name}.{worker_ctx.entrypoint.method_name}.{os.getpid()}"
    partial = folder / f"{name}.partial"
    partial.write_text(key or "", encoding="utf-8")
    partial.rename(folder / name)  # the test never reads a half-written file
    while True:
        eventlet.sleep(3600)
