"""``crm-reports``: operator commands of the reports service.

    crm-reports rebuild [--config config.yml] [--page-size 2000]

Rebuilds the whole read model from the owning services (see ``reports.rebuild``), with a progress bar per
kind of record. It reads the same settings as ``make run`` (config.yml and the environment: AMQP_URI,
CRM_DATABASE_URL, CRM_DATA_DIR, ...), creates or upgrades the reports database first, and needs the
owning services running: one that does not answer is skipped with a message (its records keep the
state the reports database has of them). Exit status 0 when done, 1 when the rebuild failed (the old
read model is left as it was).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings

# eventlet and nameko's use of pkg_resources warn on every start; the warnings say nothing to an operator
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")

from crm_common import registry  # noqa: E402
from crm_common.config import Settings, load_config  # noqa: E402

PROBE_TIMEOUT_S = 5
EXPORT_TIMEOUT_S = 120


def _console_progress():
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from reports.rebuild import Progress as RebuildProgress

    console = Console(stderr=True)
    bars = Progress(TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)

    class Bars(RebuildProgress):
        tasks: dict = {}

        def skipped(self, service, kinds, reason):
            console.print(f"[yellow]skipping {service} ({', '.join(kinds)}): {reason}; its records keep the state "
                          "the reports database has of them[/yellow]")

        def started(self, service, kind, total):
            self.tasks[kind] = bars.add_task(f"{service} {kind}", total=total)

        def advanced(self, service, kind, count):
            bars.advance(self.tasks[kind], count)

        def finished(self, service, kind):
            task = self.tasks[kind]
            bars.update(task, total=bars.tasks[task].completed)

        def writing(self):
            console.print("writing the counters...")

    return console, bars, Bars()


def rebuild_command(args) -> int:
    from nameko.standalone.rpc import ClusterRpcProxy
    from sqlalchemy import create_engine

    from crm_common.migrate import migrate
    from reports.rebuild import EXPORTS, PAGE_SIZE, rebuild

    config = load_config(args.config)
    settings = Settings.from_config(config)
    console, bars, progress = _console_progress()
    url = settings.database_url_for("reports")
    console.print(f"reports database: {migrate('reports', config)}")
    engine = create_engine(url)
    first_kind = {}
    for service, kind in EXPORTS:
        first_kind.setdefault(service, kind)

    with ClusterRpcProxy(config, timeout=PROBE_TIMEOUT_S) as probe, \
            ClusterRpcProxy(config, timeout=EXPORT_TIMEOUT_S) as rpc:

        def unavailable(service: str) -> str | None:
            if service not in registry.BY_NAME:
                return "not part of this installation (crm_common/registry.py does not list it)"
            try:
                probe[service].export(first_kind[service], None, 1)
            except Exception as exc:  # noqa: BLE001 - told to the operator
                return f"it does not answer ({exc.__class__.__name__}: {str(exc)[:200]})"
            return None

        def fetch(service, kind, cursor, limit):
            return rpc[service].export(kind, cursor, limit)

        started = time.monotonic()
        try:
            with bars:
                summary = rebuild(engine, fetch, unavailable, progress, page_size=args.page_size or PAGE_SIZE)
        except Exception as exc:  # noqa: BLE001 - the transaction rolled back; the old model is intact
            console.print(f"[red]rebuild failed: {exc.__class__.__name__}: {exc}; the reports are as they were[/red]")
            return 1
        finally:
            engine.dispose()
    records = ", ".join(f"{kind} {count}" for kind, count in summary["records"].items())
    console.print(f"rebuilt in {time.monotonic() - started:.1f}s: {records}; {summary['counter_rows']} counter rows")
    for kind, count in summary["kept"].items():
        console.print(f"kept from before: {kind} {count}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="crm-reports", description="Operator commands of the reports service.")
    commands = parser.add_subparsers(dest="command", required=True)
    rebuild = commands.add_parser("rebuild", help="rebuild the whole read model from the owning services")
    rebuild.add_argument("--config", help="nameko config file (default: config.yml or $CRM_CONFIG)")
    rebuild.add_argument("--page-size", type=int, default=None, help="records per export call (default 2000)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if args.command == "rebuild":
        return rebuild_command(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
