"""The process the backup service starts for each long job, so a backup never blocks the service's
eventlet hub and its memory is its own:

    python -m backup.worker backup <backup id>         # capture, copy, (verify if scheduled), retention
    python -m backup.worker verify <verification id>   # restore into scratch databases and compare

The nameko config comes as JSON on standard input. SIGTERM (the service stopping) interrupts the job:
it is recorded as failed ("interrupted") and scratch databases are dropped.
"""

from __future__ import annotations

import json
import logging
import signal
import sys

from backup import engine
from backup.models import Verification


def _interrupt(signum, frame):
    raise SystemExit(f"stopped by signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ("backup", "verify"):
        print("usage: python -m backup.worker backup|verify <id>", file=sys.stderr)
        return 2
    action, record_id = args
    config = json.load(sys.stdin)
    handler = logging.StreamHandler()
    from crm_common.logging import JsonFormatter

    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    signal.signal(signal.SIGTERM, _interrupt)
    job = engine.Job.open(config)
    try:
        if action == "backup":
            backup = engine.commands.get_backup(job.uow.session, record_id)
            ok = engine.run_backup(job, record_id, verify=backup.trigger == "schedule")
        else:
            verification = job.uow.session.get(Verification, record_id)
            if verification is None:
                print(f"no verification {record_id}", file=sys.stderr)
                return 2
            ok = engine.verify_backup(job, verification.backup_id, verification.trigger, record_id)
        return 0 if ok else 1
    finally:
        job.close()


if __name__ == "__main__":
    sys.exit(main())
