"""Pure rules of the backup service: the schedule's ticks, staleness, retention, off-site targets, and
what makes a restored database identical to its capture. No nameko, no database, no files."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from croniter import croniter

ARCHIVE_SUFFIX = ".crmbak"
ARCHIVE_NAME = re.compile(r"^crm-backup-(?P<stamp>\d{8}T\d{6}Z)-(?P<id>[0-9a-f-]{36})\.crmbak$")


# ---- the schedule

def check_schedule(expression: str) -> str:
    """The expression if croniter accepts it (5 fields, or 6 with seconds last), else ``ValueError``."""
    expression = (expression or "").strip()
    if not expression or not croniter.is_valid(expression):
        raise ValueError(f"CRM_BACKUP_SCHEDULE {expression!r} is not a cron expression (e.g. '0 3 * * *')")
    return expression


def due_tick(expression: str, now: datetime) -> datetime:
    """The latest tick at or before ``now``: the one a backup should exist for."""
    tick = croniter(expression, now).get_prev(datetime)
    following = croniter(expression, tick).get_next(datetime)
    return following if following <= now else tick


def next_tick(expression: str, now: datetime) -> datetime:
    return croniter(expression, now).get_next(datetime)


def period(expression: str, now: datetime) -> timedelta:
    """The schedule's period around ``now``: from the due tick to the next one."""
    return next_tick(expression, now) - due_tick(expression, now)


@dataclass(frozen=True)
class Freshness:
    age_s: float | None  # of the newest verified backup's capture; None when there is none
    stale: bool
    stale_after: datetime  # when it turns (or turned) stale without a new verified backup


def freshness(last_verified_at: datetime | None, first_started_at: datetime, expression: str,
              now: datetime) -> Freshness:
    """Stale when the newest verified backup is older than two schedule periods; a new installation
    without one is not stale until two periods after the backup service first started."""
    two_periods = 2 * period(expression, now)
    since = last_verified_at or first_started_at
    age = (now - last_verified_at).total_seconds() if last_verified_at else None
    stale_after = since + two_periods
    return Freshness(age_s=age, stale=now > stale_after, stale_after=stale_after)


# ---- retention

@dataclass(frozen=True)
class Retention:
    keep_last: int = 7
    keep_daily: int = 7
    keep_weekly: int = 4
    keep_monthly: int = 6


@dataclass(frozen=True)
class Kept:
    id: str
    started_at: datetime
    verified: bool | None


def _newest_per_bucket(backups: list[Kept], bucket, count: int) -> set[str]:
    """The newest backup of each of the ``count`` newest buckets (days, weeks, months) that have one."""
    chosen: dict = {}
    for backup in backups:  # newest first
        key = bucket(backup.started_at)
        if key not in chosen:
            if len(chosen) == count:
                break
            chosen[key] = backup.id
    return set(chosen.values())


def backups_to_keep(backups: list[Kept], rules: Retention) -> set[str]:
    """Grandfather-father-son over successful backups: a backup is kept if any rule keeps it (the last N,
    the newest of each of the last N days, ISO weeks, months, in UTC; 0 turns a rule off), and the
    newest verified backup is always kept."""
    ordered = sorted(backups, key=lambda b: (b.started_at, b.id), reverse=True)
    keep = {b.id for b in ordered[: max(rules.keep_last, 0)]}
    if rules.keep_daily > 0:
        keep |= _newest_per_bucket(ordered, lambda t: t.date(), rules.keep_daily)
    if rules.keep_weekly > 0:
        keep |= _newest_per_bucket(ordered, lambda t: t.isocalendar()[:2], rules.keep_weekly)
    if rules.keep_monthly > 0:
        keep |= _newest_per_bucket(ordered, lambda t: (t.year, t.month), rules.keep_monthly)
    newest_verified = next((b for b in ordered if b.verified), None)
    if newest_verified is not None:
        keep.add(newest_verified.id)
    return keep


# ---- off-site targets

def parse_targets(raw: str) -> list[str]:
    """``CRM_BACKUP_OFFSITE``: comma-separated targets, each a local folder or an rclone remote.

    An rclone connection string has commas of its own (``:sftp,host=h,port=22:backups``): a piece whose
    first ``=`` comes before any ``:`` or ``/`` is an option of the piece before it, not a new target.
    """
    targets: list[str] = []
    for piece in (raw or "").split(","):
        piece = piece.strip()
        if not piece:
            continue
        eq = piece.find("=")
        stops = [i for i in (piece.find(":"), piece.find("/")) if i >= 0]
        is_option = eq > 0 and (not stops or eq < min(stops))
        if is_option and targets:
            targets[-1] = f"{targets[-1]},{piece}"
        else:
            targets.append(piece)
    return targets


def is_local_target(target: str) -> bool:
    """A folder on this machine (rclone takes those too), as opposed to ``remote:path``."""
    return target.startswith(("/", "./", "../", "~")) or (":" not in target)


def archive_name(backup_id: str, started_at: datetime) -> str:
    return f"crm-backup-{started_at.strftime('%Y%m%dT%H%M%SZ')}-{backup_id}{ARCHIVE_SUFFIX}"


def archive_for(names: list[str], backup_id: str) -> str | None:
    """The archive of ``backup_id`` among file names listed on a target."""
    for name in names:
        match = ARCHIVE_NAME.match(name.strip().rstrip("/"))
        if match and match["id"] == backup_id:
            return match.group(0)
    return None


# ---- comparing a restore with its capture

def mismatches(expected: dict, actual: dict, compare_checksums: set[str] | None = None) -> list[dict]:
    """What differs between two ``{service: {"tables": {t: rows}, "checksums": {t: sum}}}``: one entry per
    table whose rows or content differ, or that exists on one side only; empty when identical. Content
    checksums are compared for the services in ``compare_checksums`` (all when None)."""
    found = []
    for service in sorted(set(expected) | set(actual)):
        want, got = expected.get(service), actual.get(service)
        if want is None or got is None:
            found.append({"service": service, "table": None,
                          "problem": "not restored" if got is None else "not in the backup"})
            continue
        for table in sorted(set(want["tables"]) | set(got["tables"])):
            if table not in got["tables"]:
                found.append({"service": service, "table": table, "problem": "missing after restore"})
            elif table not in want["tables"]:
                found.append({"service": service, "table": table, "problem": "not in the backup"})
            elif want["tables"][table] != got["tables"][table]:
                found.append({"service": service, "table": table, "problem": "row count",
                              "expected": want["tables"][table], "found": got["tables"][table]})
            elif (compare_checksums is None or service in compare_checksums) and \
                    want["checksums"].get(table) != got["checksums"].get(table):
                found.append({"service": service, "table": table, "problem": "content checksum"})
    return found


def describe(found: list[dict]) -> str:
    """One line for an error message."""
    parts = []
    for item in found[:5]:
        where = item["service"] + (f".{item['table']}" if item["table"] else "")
        detail = item["problem"]
        if "expected" in item:
            detail += f" {item['expected']} → {item['found']}"
        parts.append(f"{where}: {detail}")
    more = f" (and {len(found) - 5} more)" if len(found) > 5 else ""
    return "; ".join(parts) + more
