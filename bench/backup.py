"""The backup benchmark: a full backup (`crm-backup run`) of the seeded databases against plain `pg_dump`
of the same databases in the same run, the archive's size, the verification, a restore, and the peak
memory of the backup process.

The baseline is `pg_dump --format=custom` of every database one after the other, each to a file: what an
operator's own cron job would do, without encryption, checksums or a manifest. It runs before and after
the backup (the machine is shared) and the faster run is the bar. The restore replaces the bench
databases with their backup, so it runs after the CRM has stopped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench.system import AMQP_URI, DB_PREFIX, PG_SERVER, ROOT, SERVICES

CLI = [sys.executable, "-c", "import sys; from backup.cli import main; sys.exit(main())"]


def environment(data_dir: Path) -> dict:
    return dict(os.environ, PYTHONWARNINGS="ignore", AMQP_URI=AMQP_URI, CRM_DATABASE_URL=PG_SERVER,
                CRM_DATABASE_PREFIX=DB_PREFIX, CRM_DATA_DIR=str(data_dir), CRM_BACKUP_DIR=str(data_dir / "bench-backups"))


def plain_pg_dump(folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    size = 0
    for service in SERVICES:
        target = folder / f"{service}.dump"
        subprocess.run(["pg_dump", "--format=custom", "--file", str(target), f"{PG_SERVER}/{DB_PREFIX}{service}"],
                       check=True, capture_output=True)
        size += target.stat().st_size
    return {"seconds": round(time.monotonic() - started, 2), "bytes": size}


def timed(env: dict, *args: str) -> dict:
    """Run crm-backup, sampling the memory of its process and of its children (pg_dump, pg_restore)."""
    started = time.monotonic()
    process = subprocess.Popen([*CLI, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    watched = psutil.Process(process.pid)
    peak_self = peak_children = 0
    while process.poll() is None:
        try:
            peak_self = max(peak_self, watched.memory_info().rss)
            children = sum(c.memory_info().rss for c in watched.children(recursive=True))
            peak_children = max(peak_children, children)
        except psutil.Error:
            pass
        time.sleep(0.05)
    out, err = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"crm-backup {' '.join(args)} exited with {process.returncode}: {err[-2000:]}")
    return {"seconds": round(time.monotonic() - started, 2), "stdout": out,
            "peak_rss_mb": round(peak_self / 2**20, 1), "peak_rss_children_mb": round(peak_children / 2**20, 1)}


def measure_backup(data_dir: Path) -> dict:
    """While the CRM runs: baseline, backup, verification, baseline again."""
    env = environment(data_dir)
    with tempfile.TemporaryDirectory(prefix="crm-bench-pgdump-") as scratch:
        before = plain_pg_dump(Path(scratch) / "before")
        backup = timed(env, "run")
        backup_id = backup.pop("stdout").strip().splitlines()[-1]
        after = plain_pg_dump(Path(scratch) / "after")
    archive = next((data_dir / "bench-backups").glob(f"*{backup_id}.crmbak"))
    verify = timed(env, "verify", backup_id)
    verify.pop("stdout")
    baseline = min(before["seconds"], after["seconds"])
    return {
        "backup_id": backup_id, "databases": list(SERVICES),
        "pg_dump": {"before": before, "after": after, "seconds": baseline, "bytes": before["bytes"]},
        "backup": backup, "archive_bytes": archive.stat().st_size,
        "ratio": round(backup["seconds"] / baseline, 3) if baseline else None,
        "verify": verify,
    }


def measure_restore(data_dir: Path, results: dict) -> None:
    """Once the CRM has stopped: restore every database from the archive (scratch, compare, swap)."""
    restore = timed(environment(data_dir), "restore", results["backup_id"], "--yes")
    restore.pop("stdout")
    results["restore"] = restore
    shutil.rmtree(data_dir / "bench-backups", ignore_errors=True)


def summary(results: dict) -> str:
    return (f"backup {results['backup']['seconds']} s vs pg_dump {results['pg_dump']['seconds']} s "
            f"= {results['ratio']}x; archive {results['archive_bytes'] / 2**20:.1f} MiB "
            f"(pg_dump {results['pg_dump']['bytes'] / 2**20:.1f} MiB); verify {results['verify']['seconds']} s; "
            f"peak RSS {results['backup']['peak_rss_mb']} MiB (pg_dump {results['backup']['peak_rss_children_mb']} MiB)")
