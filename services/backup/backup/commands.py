"""Use cases on the catalogue. Each takes the unit of work (``self.db`` in the service, ``catalogue.Local``
in crm-backup and the worker process): its session, ``emit`` into the outbox, ``commit``."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from backup import domain
from backup.exceptions import BackupNotFound, BackupRunning, NotVerifiable, VerificationRunning
from backup.models import Backup, BackupCopy, BackupPart, Installation, Verification
from crm_common.clock import utcnow
from crm_common.errors import require
from crm_common.pagination import SortKey, paginate
from crm_common.schemas import is_uuid, iso

FIRST_STARTED = "first_started_at"
# a running backup or verification whose worker has not written for this long has died with it
SILENCE_LIMIT = timedelta(seconds=90)


def _event(backup: Backup, actor_id: str | None = None, **fields) -> dict:
    return {"branch_id": None, "actor_id": actor_id, "backup_id": backup.id, "trigger": backup.trigger, **fields}


def get_backup(session, backup_id: str) -> Backup:
    backup = session.get(Backup, backup_id) if is_uuid(backup_id) else None
    return require(backup, BackupNotFound)


def start_backup(uow, trigger: str, requested_by: str | None = None, tick: datetime | None = None) -> Backup:
    """A new running backup; ``BackupRunning`` if one runs already, ``None`` if the tick was taken."""
    if tick is not None and uow.session.scalar(select(Backup.id).where(Backup.tick == tick)):
        return None
    running = uow.session.scalar(select(Backup.id).where(Backup.status == "running"))
    if running:
        raise BackupRunning(f"backup {running} is running", details={"running_id": running})
    now = utcnow()
    # no heartbeat yet: the worker that claims the backup (claim_backup) starts it
    backup = Backup(status="running", trigger=trigger, tick=tick, requested_by=requested_by, started_at=now)
    uow.session.add(backup)
    try:
        uow.session.flush()
    except IntegrityError:
        # a concurrent start won: the partial unique index on running backups, or the tick's unique key
        uow.rollback()
        running = uow.session.scalar(select(Backup.id).where(Backup.status == "running"))
        if tick is not None and uow.session.scalar(select(Backup.id).where(Backup.tick == tick)):
            return None
        raise BackupRunning(f"backup {running} is running", details={"running_id": running}) from None
    uow.emit("backup_started", _event(backup, requested_by))
    return backup


def claim_backup(uow, backup_id: str) -> bool:
    """The worker's claim on a running backup: True for exactly one worker (a redelivered request that
    launched a second one finds it taken)."""
    done = uow.session.execute(update(Backup).where(Backup.id == backup_id, Backup.status == "running",
                                                    Backup.heartbeat_at.is_(None)).values(heartbeat_at=utcnow()))
    return done.rowcount == 1


def claim_verification(uow, verification_id: str) -> bool:
    done = uow.session.execute(update(Verification).where(
        Verification.id == verification_id, Verification.status == "running", Verification.heartbeat_at.is_(None)
    ).values(heartbeat_at=utcnow()))
    return done.rowcount == 1


def heartbeat(uow, backup_id: str | None = None, verification_id: str | None = None) -> None:
    now = utcnow()
    if backup_id:
        uow.session.execute(update(Backup).where(Backup.id == backup_id, Backup.status == "running")
                            .values(heartbeat_at=now))
    if verification_id:
        uow.session.execute(update(Verification).where(Verification.id == verification_id,
                                                       Verification.status == "running").values(heartbeat_at=now))


def record_capture(uow, backup_id: str, file_name: str, size_bytes: int, sha256: str, key_id: str,
                   manifest: dict) -> Backup:
    backup = get_backup(uow.session, backup_id)
    backup.file_name, backup.size_bytes, backup.sha256, backup.key_id = file_name, size_bytes, sha256, key_id
    backup.manifest = manifest
    for service, part in manifest["services"].items():
        uow.session.add(BackupPart(backup_id=backup_id, service=service, engine=part["engine"],
                                   size_bytes=part["size_bytes"], sha256=part["sha256"], tables=part["tables"],
                                   checksums=part["checksums"]))
    return backup


def record_copy(uow, backup_id: str, target: str, error: str | None) -> None:
    backup = get_backup(uow.session, backup_id)
    copy = uow.session.get(BackupCopy, (backup_id, target)) or BackupCopy(backup_id=backup_id, target=target)
    copy.status = "failed" if error else "done"
    copy.error = error
    copy.copied_at = None if error else utcnow()
    uow.session.add(copy)
    if error:
        uow.emit("backup_failed", _event(backup, stage="copy", error=f"copy to {target} failed: {error}",
                                         target=target))


def finish_backup(uow, backup_id: str) -> Backup:
    backup = get_backup(uow.session, backup_id)
    backup.status, backup.finished_at = "done", utcnow()
    copies = [{"target": c.target, "status": c.status} for c in _copies(uow.session, backup_id)]
    uow.emit("backup_completed", _event(backup, size_bytes=backup.size_bytes, sha256=backup.sha256,
                                        services=sorted(backup.manifest["services"]), copies=copies))
    return backup


def fail_backup(uow, backup_id: str, error: str) -> Backup:
    backup = get_backup(uow.session, backup_id)
    backup.status, backup.finished_at, backup.error = "failed", utcnow(), error[:2000]
    uow.emit("backup_failed", _event(backup, stage="capture", error=backup.error))
    return backup


def start_verification(uow, backup_id: str, trigger: str) -> Verification:
    backup = get_backup(uow.session, backup_id)
    if backup.status != "done" and not (backup.status == "failed" and backup.verified is False):
        raise NotVerifiable(f"backup {backup_id} is {backup.status}: only a finished backup can be verified")
    running = uow.session.scalar(select(Verification).where(Verification.status == "running"))
    if running is not None:
        raise VerificationRunning(f"a verification of backup {running.backup_id} is running",
                                  details={"running_id": running.backup_id})
    now = utcnow()
    verification = Verification(backup_id=backup_id, trigger=trigger, status="running", started_at=now)
    uow.session.add(verification)
    try:
        uow.session.flush()
    except IntegrityError:
        uow.rollback()
        raise VerificationRunning("a verification is running") from None
    return verification


def finish_verification(uow, verification_id: str, found: list[dict], error: str | None = None) -> Backup:
    """Record a verification: identical (no mismatches, no error) marks the backup verified; anything else
    marks it failed with the reason (its archive is kept for inspection until retention removes it)."""
    verification = uow.session.get(Verification, verification_id)
    backup = get_backup(uow.session, verification.backup_id)
    now = utcnow()
    verification.finished_at, verification.mismatches = now, found
    if error is None and found:
        error = "the restored databases differ from the capture: " + domain.describe(found)
    if error is None:
        verification.status = "passed"
        if backup.verified is False:  # an earlier verification failed; this one proves the archive good
            backup.status, backup.error = "done", None
        backup.verified, backup.verified_at = True, now
        tables = sum(len(part["tables"]) for part in backup.manifest["services"].values())
        uow.emit("backup_verified", _event(backup, verified_at=now, tables=tables))
    else:
        verification.status, verification.error = "failed", error[:2000]
        backup.verified, backup.verified_at = False, now
        backup.status, backup.error = "failed", f"verification failed: {error}"[:2000]
        uow.emit("backup_failed", _event(backup, stage="verify", error=verification.error))
    return backup


def abandon_verification(uow, verification_id: str, error: str) -> None:
    """A verification that could not run to its end (interrupted, scratch database refused): recorded, but
    the backup is not judged by it."""
    verification = uow.session.get(Verification, verification_id)
    if verification is not None and verification.status == "running":
        verification.status, verification.finished_at, verification.error = "failed", utcnow(), error[:2000]


def reap_silent(uow, now: datetime | None = None) -> list[str]:
    """Mark backups and verifications whose worker stopped writing (it died with its process) as failed."""
    now = now or utcnow()
    limit = now - SILENCE_LIMIT
    reaped = []
    silent_backup = or_(Backup.heartbeat_at < limit, and_(Backup.heartbeat_at.is_(None), Backup.started_at < limit))
    for backup in uow.session.scalars(select(Backup).where(Backup.status == "running", silent_backup)):
        fail_backup(uow, backup.id, "interrupted: the backup process stopped before it finished")
        reaped.append(backup.id)
    silent = or_(Verification.heartbeat_at < limit,
                 and_(Verification.heartbeat_at.is_(None), Verification.started_at < limit))
    for verification in uow.session.scalars(select(Verification).where(Verification.status == "running", silent)):
        abandon_verification(uow, verification.id, "interrupted: the verifying process stopped before it finished")
    return reaped


def installation_started(uow, now: datetime | None = None) -> datetime:
    """When the backup service first started on this installation (recorded once)."""
    row = uow.session.get(Installation, FIRST_STARTED)
    if row is None:
        row = Installation(key=FIRST_STARTED, value=iso(now or utcnow()), changed_at=utcnow())
        uow.session.add(row)
        try:
            uow.session.flush()
        except IntegrityError:
            uow.rollback()
            row = uow.session.get(Installation, FIRST_STARTED)
    return datetime.fromisoformat(row.value.replace("Z", "+00:00"))


def freshness(session, schedule: str, now: datetime | None = None) -> dict:
    """The age of the newest verified backup and whether it is stale (``/health``)."""
    now = now or utcnow()
    newest = session.scalar(select(Backup).where(Backup.verified.is_(True), Backup.status == "done")
                            .order_by(Backup.started_at.desc()).limit(1))
    row = session.get(Installation, FIRST_STARTED)
    first = datetime.fromisoformat(row.value.replace("Z", "+00:00")) if row else now
    state = domain.freshness(newest.started_at if newest else None, first, schedule, now)
    return {
        "last_verified_id": newest.id if newest else None,
        "last_verified_at": iso(newest.started_at) if newest else None,
        "age_s": round(state.age_s, 1) if state.age_s is not None else None,
        "stale": state.stale,
        "stale_after": iso(state.stale_after),
        "schedule": schedule,
        "next_run_at": iso(domain.next_tick(schedule, now)),
    }


def retention_plan(session, rules: domain.Retention) -> list[Backup]:
    """Backups retention removes now: done backups no rule keeps, and failed ones older than the oldest
    backup kept (they hold nothing to restore). Never a running one."""
    done = session.scalars(select(Backup).where(Backup.status == "done")).all()
    keep = domain.backups_to_keep([domain.Kept(b.id, b.started_at, b.verified) for b in done], rules)
    doomed = [b for b in done if b.id not in keep]
    kept_times = [b.started_at for b in done if b.id in keep]
    if kept_times:
        oldest = min(kept_times)
        doomed += session.scalars(select(Backup).where(Backup.status == "failed", Backup.started_at < oldest)).all()
    return sorted(doomed, key=lambda b: b.started_at)


def forget(uow, backup_id: str) -> None:
    for model in (BackupPart, BackupCopy, Verification):
        uow.session.execute(delete(model).where(model.backup_id == backup_id))
    uow.session.execute(delete(Backup).where(Backup.id == backup_id))


def import_manifest(uow, manifest: dict, file_name: str, size_bytes: int, sha256: str) -> Backup:
    """Put a backup known only from its archive (restored on a new machine) into the catalogue."""
    existing = uow.session.get(Backup, manifest["backup_id"])
    if existing is not None:
        return existing
    started = datetime.fromisoformat(manifest["started_at"].replace("Z", "+00:00"))
    backup = Backup(id=manifest["backup_id"], status="done", trigger=manifest.get("trigger", "manual"),
                    started_at=started, finished_at=started, file_name=file_name, size_bytes=size_bytes,
                    sha256=sha256, key_id=manifest.get("key_id"), manifest=manifest, verified=True,
                    verified_at=utcnow())
    uow.session.add(backup)
    uow.session.flush()
    record_capture(uow, backup.id, file_name, size_bytes, sha256, manifest.get("key_id"), manifest)
    return backup


# ---- reading

def _copies(session, backup_id: str) -> list[BackupCopy]:
    return session.scalars(select(BackupCopy).where(BackupCopy.backup_id == backup_id)
                           .order_by(BackupCopy.target)).all()


def dump_backup(session, backup: Backup, parts=None, copies=None, verifying: set | None = None) -> dict:
    if parts is None:
        parts = session.scalars(select(BackupPart).where(BackupPart.backup_id == backup.id)).all()
    if copies is None:
        copies = _copies(session, backup.id)
    if verifying is None:
        verifying = set(session.scalars(select(Verification.backup_id).where(Verification.status == "running")))
    return {
        "id": backup.id,
        "status": backup.status,
        "trigger": backup.trigger,
        "started_at": iso(backup.started_at),
        "finished_at": iso(backup.finished_at) if backup.finished_at else None,
        "size_bytes": backup.size_bytes,
        "sha256": backup.sha256,
        "services": {p.service: {"size_bytes": p.size_bytes, "sha256": p.sha256, "tables": p.tables}
                     for p in sorted(parts, key=lambda p: p.service)},
        "copies": [{"target": c.target, "status": c.status, "error": c.error,
                    "copied_at": iso(c.copied_at) if c.copied_at else None} for c in copies],
        "verified": backup.verified,
        "verified_at": iso(backup.verified_at) if backup.verified_at else None,
        "verifying": backup.id in verifying,
        "error": backup.error,
    }


BACKUP_ORDER = (SortKey(Backup.started_at, descending=True, kind="datetime"), SortKey(Backup.id, descending=True))


def list_backups(session, filters: dict) -> dict:
    query = select(Backup)
    if filters.get("status"):
        query = query.where(Backup.status == filters["status"])
    page = paginate(session, query, BACKUP_ORDER, filters.get("cursor"), filters["limit"], lambda b: b)
    ids = [b.id for b in page["items"]]
    parts: dict[str, list] = {i: [] for i in ids}
    copies: dict[str, list] = {i: [] for i in ids}
    if ids:
        for part in session.scalars(select(BackupPart).where(BackupPart.backup_id.in_(ids))):
            parts[part.backup_id].append(part)
        for copy in session.scalars(select(BackupCopy).where(BackupCopy.backup_id.in_(ids)).order_by(BackupCopy.target)):
            copies[copy.backup_id].append(copy)
    verifying = set(session.scalars(select(Verification.backup_id).where(Verification.status == "running")))
    page["items"] = [dump_backup(session, b, parts[b.id], copies[b.id], verifying) for b in page["items"]]
    return page
