"""``crm-backup``: the operator's command line for backups, with the settings ``make run`` uses.

    crm-backup list [--offsite]            backups in the catalogue (or archives on the off-site targets)
    crm-backup run [--verify]              back up every database now
    crm-backup verify ID                   restore into scratch databases and compare every table
    crm-backup restore ID [--service NAME] [--from-offsite] [--yes]
                                           put a backup in place of the live databases (the CRM stopped)
    crm-backup drill [--from-offsite]      restore the newest backup into scratch, compare, report
    crm-backup keygen                      print a new key for CRM_BACKUP_KEY

Exit codes: 0 done (a drill: identical), 1 the backup, verification or drill failed, 2 refused or unusable
(the CRM is running, an unknown id, a wrong key, a damaged archive, a bad setting).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings

warnings.simplefilter("ignore")  # eventlet's and pkg_resources' notices, printed on import, say nothing to an operator

from contextlib import contextmanager  # noqa: E402

from rich.console import Console  # noqa: E402
from rich.progress import (  # noqa: E402
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table  # noqa: E402

from backup import commands, domain, engine, offsite  # noqa: E402
from backup.archive import ArchiveError  # noqa: E402
from backup.databases import CaptureError  # noqa: E402
from backup.keys import generate_key  # noqa: E402
from crm_common.config import ConfigError, load_config  # noqa: E402
from crm_common.registry import REPO_ROOT  # noqa: E402

# piped into a file or another program, lines are not cut at 80 columns
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


class RichProgress(engine.Progress):
    """Progress bars on a terminal (plain lines otherwise)."""

    @contextmanager
    def task(self, description: str, total: int | None = None):
        columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                   TransferSpeedColumn(), TimeElapsedColumn()]
        with Progress(*columns, console=err, transient=False) as bars:
            task = bars.add_task(description, total=total)
            yield lambda n: bars.advance(task, n)
            bars.update(task, total=bars.tasks[0].completed)

    def say(self, text: str) -> None:
        err.print(text)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="crm-backup", description="Backups of the CRM's databases.")
    parser.add_argument("--config", help="nameko config file (default: $CRM_CONFIG or config.yml)")
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="backups in the catalogue")
    listing.add_argument("--offsite", action="store_true", help="list the archives on the off-site targets instead")
    run = sub.add_parser("run", help="back up every database now")
    run.add_argument("--verify", action="store_true", help="then restore it into scratch databases and compare")
    verify = sub.add_parser("verify", help="restore a backup into scratch databases and compare every table")
    verify.add_argument("id")
    restore = sub.add_parser("restore", help="restore a backup in place of the live databases")
    restore.add_argument("id")
    restore.add_argument("--service", help="restore this service's database only")
    restore.add_argument("--from-offsite", action="store_true", help="fetch the archive from CRM_BACKUP_OFFSITE")
    restore.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    drill = sub.add_parser("drill", help="restore the newest backup into scratch databases, compare and report")
    drill.add_argument("--from-offsite", action="store_true", help="drill the newest archive on the off-site targets")
    sub.add_parser("keygen", help="print a new random key for CRM_BACKUP_KEY")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "keygen":
        print(generate_key())
        return 0
    os.chdir(REPO_ROOT)  # a relative CRM_DATA_DIR means what it means to `make run`
    # asking the bus whether services run: amqp logs the unroutable question when none is there
    logging.getLogger("amqp").setLevel(logging.ERROR)
    try:
        config = load_config(args.config)
        job = engine.Job.open(config, RichProgress())
    except (ConfigError, OSError) as exc:
        err.print(f"[red]crm-backup: {exc}[/red]")
        return 2
    try:
        return COMMANDS[args.command](job, args)
    except (engine.RestoreRefused, ArchiveError, CaptureError, offsite.OffsiteError, ConfigError) as exc:
        err.print(f"[red]crm-backup {args.command}: {exc}[/red]")
        return 2
    except commands.BackupRunning as exc:
        err.print(f"[red]crm-backup {args.command}: {exc.message}[/red]")
        return 2
    except KeyboardInterrupt:
        err.print("[red]interrupted[/red]")
        return 130
    finally:
        job.close()


def _catalogue(job) -> None:
    from crm_common.migrate import migrate

    migrate("backup", job.config)


def cmd_list(job, args) -> int:
    if args.offsite:
        for target in domain.parse_targets(job.settings.backup_offsite):
            out.print(f"[bold]{target}[/bold]")
            for name in offsite.list_archives(target, job.settings.backup_rclone_retries):
                out.print(f"  {name}")
        return 0
    _catalogue(job)
    page = commands.list_backups(job.uow.session, {"limit": 200, "cursor": None})
    table = Table("id", "status", "trigger", "started", "size", "verified", "copies", "error")
    for item in page["items"]:
        copies = ", ".join(f"{c['target']}: {c['status']}" for c in item["copies"]) or "-"
        verified = {True: "yes", False: "NO", None: "-"}[item["verified"]]
        table.add_row(item["id"], item["status"], item["trigger"], item["started_at"],
                      f"{item['size_bytes'] or 0:,}", verified, copies, (item["error"] or "")[:60])
    out.print(table)
    freshness = commands.freshness(job.uow.session, job.settings.backup_schedule)
    age = f"{freshness['age_s'] / 3600:.1f} h old" if freshness["age_s"] is not None else "none yet"
    out.print(f"newest verified backup: {age}{' (STALE)' if freshness['stale'] else ''}; "
              f"next scheduled run {freshness['next_run_at']} ({job.settings.backup_schedule})")
    return 0


def cmd_run(job, args) -> int:
    _catalogue(job)
    uow = job.uow
    uow.write(lambda: commands.installation_started(uow))
    backup_id = uow.write(lambda: commands.start_backup(uow, "manual").id)
    err.print(f"backup {backup_id} started")
    if not engine.run_backup(job, backup_id, verify=args.verify):
        backup = commands.get_backup(uow.session, backup_id)
        err.print(f"[red]backup {backup_id} failed: {backup.error}[/red]")
        return 1
    backup = commands.get_backup(uow.session, backup_id)
    failed = [c for c in commands._copies(uow.session, backup_id) if c.status != "done"]
    for copy in failed:
        err.print(f"[red]copy to {copy.target} failed: {copy.error}[/red]")
    if backup.status != "done":
        err.print(f"[red]backup {backup_id}: {backup.error}[/red]")
        return 1
    out.print(backup_id)
    return 1 if failed else 0


def cmd_verify(job, args) -> int:
    _catalogue(job)
    try:
        ok = engine.verify_backup(job, args.id, "manual")
    except (commands.NotVerifiable, commands.VerificationRunning, commands.BackupNotFound) as exc:
        err.print(f"[red]crm-backup verify: {exc.message}[/red]")
        return 2
    return 0 if ok else 1


def cmd_restore(job, args) -> int:
    def confirm(services: list[str]) -> bool:
        if args.yes:
            return True
        out.print(f"This replaces the live databases of {', '.join(services)} with backup {args.id}.")
        if not sys.stdin.isatty():
            err.print("no terminal to confirm on: add --yes")
            return False
        return out.input("Type 'restore' to go on: ").strip() == "restore"

    result = engine.restore(job, args.id, args.service, args.from_offsite, confirm)
    out.print(f"restored backup {result.backup_id}: {', '.join(result.services)}")
    replayed = sum(result.replayed.values())
    if replayed:
        out.print(f"{replayed} event(s) from around the capture will be published again when the services start")
    out.print("the databases are ready: start the CRM with `make run`")
    return 0


def cmd_drill(job, args) -> int:
    if not args.from_offsite:
        _catalogue(job)
    report = engine.drill(job, args.from_offsite)
    table = Table("service", "table", "rows captured", "rows restored", "result")
    bad = {(m["service"], m["table"]) for m in report.mismatches}
    for service, part in sorted(report.services.items()):
        for name in sorted(set(part["captured"]) | set(part["restored"])):
            result = "[red]DIFFERENT[/red]" if (service, name) in bad else "identical"
            table.add_row(service, name, str(part["captured"].get(name, "-")),
                          str(part["restored"].get(name, "-")), result)
    out.print(f"drill of backup {report.backup_id} from {report.source}")
    out.print(table)
    if report.identical:
        out.print("[green]identical: every table has the rows and content it had at capture[/green]")
        return 0
    err.print(f"[red]NOT identical: {report.error or domain.describe(report.mismatches)}[/red]")
    return 1


COMMANDS = {"list": cmd_list, "run": cmd_run, "verify": cmd_verify, "restore": cmd_restore, "drill": cmd_drill}


if __name__ == "__main__":
    sys.exit(main())
