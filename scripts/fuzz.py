"""``make fuzz``: schemathesis with every check and many examples per operation, against a CRM of its own.

Starts the system as ``make run`` does, on a RabbitMQ vhost and PostgreSQL databases of its own (removed
afterwards), makes the records the run works on, then runs schemathesis as a head of sales and as the
administrator and prints its reports. Exits non-zero if either run found a failure.

    .venv/bin/python scripts/fuzz.py                    # 100 examples per operation
    .venv/bin/python scripts/fuzz.py --examples 500
    .venv/bin/python scripts/fuzz.py --url http://127.0.0.1:8000 --email admin@crm.local --password ...
      (against a running CRM instead: it creates a branch, users and records there)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import uuid
from pathlib import Path

import requests
from nameko.testing.utils import find_free_port

from crm_common.config import DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD, Settings
from crm_common.testing.fixtures import create_vhost, delete_vhost, drop_databases, vhost_uri
from crm_common.testing.fuzzing import prepare, run_schemathesis
from crm_common.testing.system import start_system


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=100, help="examples per operation and phase (default 100)")
    parser.add_argument("--url", help="a running CRM's origin, e.g. http://127.0.0.1:8000 (default: start one)")
    parser.add_argument("--email", default=DEV_ADMIN_EMAIL)
    parser.add_argument("--password", default=DEV_ADMIN_PASSWORD)
    parser.add_argument("--report-dir", default=None, help="where to keep the reports (default: a temporary folder)")
    args = parser.parse_args()
    workdir = Path(args.report_dir or tempfile.mkdtemp(prefix="crm-fuzz-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.url:
        return fuzz(args.url.rstrip("/"), args.email, args.password, args.examples, workdir)
    run_id = uuid.uuid4().hex[:10]
    vhost = f"crm-fuzz-{run_id}"
    database_url = os.environ.get("CRM_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432")
    prefix = f"crm_f{run_id}_"
    create_vhost(vhost)
    system = None
    try:
        env = {
            "AMQP_URI": vhost_uri(vhost), "CRM_DATABASE_URL": database_url, "CRM_DATABASE_PREFIX": prefix,
            "CRM_HTTP_HOST": "127.0.0.1", "CRM_HTTP_PORT": str(find_free_port()), "CRM_DATA_DIR": str(workdir / "data"),
            "CRM_RATE_LIMIT_PER_MINUTE": "0", "CRM_LOG_LEVEL": "WARNING", "CRM_DB_POOL_SIZE": "3",
            # the seeded webhook calls 127.0.0.1 only (crm_common/testing/fuzzing.py)
            "CRM_WEBHOOK_ALLOW_PRIVATE": "true",
        }
        print(f"starting a CRM of its own (logs: {workdir / 'run.log'})", flush=True)
        system = start_system(env, workdir / "run.log")
        origin = system.base_url.removesuffix("/api/v1")
        return fuzz(origin, DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD, args.examples, workdir)
    finally:
        if system is not None:
            system.stop()
        delete_vhost(vhost)
        drop_databases(Settings.from_config({"CRM": {"database_url": database_url, "database_prefix": prefix}}))


def fuzz(origin: str, email: str, password: str, examples: int, workdir: Path) -> int:
    api = f"{origin}/api/v1"
    login = requests.post(f"{api}/auth/login", json={"email": email, "password": password}, timeout=30)
    login.raise_for_status()
    admin_token = login.json()["access_token"]
    fuzzing = prepare(api, admin_token)
    failed = []
    # the head first: the administrator's run may change the head's branch and users
    for role, token in (("head", fuzzing.head_token), ("admin", admin_token)):
        print(f"\n=== schemathesis as the {role}: {examples} examples per operation, every check ===\n", flush=True)
        result = run_schemathesis(origin, token, workdir / role, examples=examples, ids=fuzzing.ids, echo=True)
        if result.returncode != 0:
            failed.append(role)
    print(f"\nreports in {workdir}; " + (f"FAILURES as: {', '.join(failed)}" if failed else "no failures"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
