"""Client exports (API.md, "Protecting the client base"; the rules are in ``export_rules.py``).

``POST /exports`` checks who asks (administrators, and heads granted ``can_export``), counts the clients the filter
matches through the clients service, reserves that many rows against the user's daily cap (one statement on the
``export_quota`` row of the user and UTC day, so every gateway replica sees one count) and records the export as
``running``. A gateway replica's ``run_exports`` timer then takes it under a lease, pages through
``clients.list_clients`` as the user (their visibility: a head gets their branch), writes the CSV with its first line
and marker rows, and stores the file in ``export_chunks`` with the export ``done`` in one transaction. Files are
deleted ``CRM_EXPORT_TTL_S`` after they are made; the record and its markers stay, so a leaked copy can still be
traced (``trace``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import tempfile
from collections.abc import Callable, Iterator
from datetime import timedelta

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from crm_common.caller import Caller
from crm_common.clock import utcnow
from crm_common.config import Settings, signing_key
from crm_common.contracts.exports import (
    ExportCreateSchema,
    ExportFilterSchema,
    ExportQuerySchema,
    ExportSchema,
    ExportTraceSchema,
)
from crm_common.errors import BadRequest, Conflict, CrmError, Forbidden, NotFound, RateLimited
from crm_common.pagination import SortKey, paginate
from crm_common.schemas import is_uuid, iso, load_or_raise, new_id
from gateway import export_rules as rules
from gateway.models import Export, ExportChunk, ExportMarker, ExportQuota, User

log = logging.getLogger(__name__)

PAGE = 200  # clients per list_clients call: the largest page the list gives
CHUNK_BYTES = 256 * 1024
MAX_ATTEMPTS = 3  # an export that fails this many times (its service down, say) is failed and its rows given back
RETRY_AFTER_FAILURE_S = 5
EXPORT_KEYS = [SortKey(Export.created_at, True, "datetime"), SortKey(Export.id, True)]
filter_out = ExportFilterSchema()
export_out = ExportSchema()


class ExportNotFound(NotFound):
    def __init__(self, message="export not found", fields=None, details=None):
        super().__init__(message, fields, details)


class ExportCapReached(RateLimited):
    """The user's exported rows would pass the daily cap."""

    code = "export_cap"


class ExportExpired(CrmError):
    """The export's file was deleted when it expired."""

    code = "gone"
    status = 410


# ---- who may export

def may_export(user: User | None) -> bool:
    return user is not None and user.active and (user.role == "admin" or (user.role == "head" and user.can_export))


def require_permission(session, caller: Caller) -> User:
    user = session.get(User, caller.id)
    if not may_export(user):
        raise Forbidden("exports are for administrators, and for heads an administrator allowed (can_export)")
    return user


# ---- asking for one

def client_query(filter_: dict) -> dict:
    """The filter as ``list_clients`` / ``count_clients`` take it: the query string of ``GET /clients``."""
    return {name: ("true" if value else "false") if isinstance(value, bool) else value
            for name, value in filter_.items() if value is not None}


def prepare(reader, caller: Caller, raw: dict) -> dict:
    """Check the body and the caller before anything is counted: ``{"filter": <as stored>, "query": ...}``."""
    require_permission(reader, caller)
    data = load_or_raise(ExportCreateSchema, raw)
    stored = filter_out.dump(data["filter"])
    return {"filter": stored, "query": client_query(stored)}


def create_export(uow, settings: Settings, caller: Caller, prepared: dict, count: int) -> dict:
    """Reserve ``count`` rows of the caller's day and record the export (one transaction)."""
    session = uow.session
    now = utcnow()
    day = rules.quota_day(now)
    if count and not reserve(session, caller.id, day, count, settings.export_daily_rows):
        used = session.scalar(select(ExportQuota.rows).where(ExportQuota.user_id == caller.id, ExportQuota.day == day))
        raise ExportCapReached(
            f"this export holds {count} clients and you have {max(0, settings.export_daily_rows - (used or 0))} of "
            f"today's {settings.export_daily_rows} rows left (CRM_EXPORT_DAILY_ROWS); the count starts again at "
            "midnight UTC, or narrow the filter",
            details={"retry_after": rules.seconds_until_next_day(now)},
        )
    export = Export(
        id=new_id(), user_id=caller.id, role=caller.role, branch_id=caller.branch_id, filter=prepared["filter"],
        status="running", reserved=count, quota_day=day, markers=[], attempts=0, created_at=now,
    )
    session.add(export)
    session.flush()
    return {"id": export.id, "status": export.status}


def reserve(session, user_id: str, day, rows: int, cap: int) -> bool:
    """Add ``rows`` to the user's day if the day stays within ``cap``; one statement, so concurrent exports on any
    replica queue on the row and each sees what the one before left."""
    if not rules.fits(rows, 0, cap):
        return False
    insert = postgresql_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    table = ExportQuota.__table__
    statement = insert(table).values(user_id=user_id, day=day, rows=rows).on_conflict_do_update(
        index_elements=[table.c.user_id, table.c.day],
        set_={"rows": table.c.rows + rows},
        where=table.c.rows + rows <= cap,
    ).returning(table.c.rows)
    return session.execute(statement).first() is not None


def give_back(session, user_id: str, day, rows: int) -> None:
    if rows > 0:
        session.execute(update(ExportQuota).where(ExportQuota.user_id == user_id, ExportQuota.day == day)
                        .values(rows=func.max(ExportQuota.rows - rows, 0) if session.bind.dialect.name == "sqlite"
                                else func.greatest(ExportQuota.rows - rows, 0)))


# ---- reading them

def status_of(export: Export, now) -> str:
    if export.status == "done" and export.expires_at is not None and export.expires_at <= now:
        return "expired"  # the sweep may not have deleted the file yet: it is gone all the same
    return export.status


def dump(export: Export, now=None) -> dict:
    out = export_out.dump(export)
    out["status"] = status_of(export, now or utcnow())
    return out


def _visible(reader, caller: Caller, export_id: str) -> Export:
    export = reader.get(Export, export_id) if is_uuid(export_id) else None
    if export is None or not (caller.is_admin or export.user_id == caller.id):
        raise ExportNotFound()
    return export


def get_export(reader, caller: Caller, export_id: str) -> dict:
    require_permission(reader, caller)
    return dump(_visible(reader, caller, export_id))


def list_exports(reader, caller: Caller, raw: dict) -> dict:
    require_permission(reader, caller)
    filters = load_or_raise(ExportQuerySchema, raw, BadRequest)
    query = select(Export)
    if not caller.is_admin:
        query = query.where(Export.user_id == caller.id)
    elif filters.get("user_id"):
        query = query.where(Export.user_id == filters["user_id"])
    now = utcnow()
    status = filters.get("status")
    if status == "expired":
        query = query.where(or_(Export.status == "expired", and_(Export.status == "done", Export.expires_at <= now)))
    elif status == "done":
        query = query.where(Export.status == "done", Export.expires_at > now)
    elif status:
        query = query.where(Export.status == status)
    return paginate(reader, query, EXPORT_KEYS, filters["cursor"], filters["limit"], lambda e: dump(e, now))


def open_file(reader, caller: Caller, export_id: str) -> tuple[Export, Iterator[bytes]]:
    """The export and its file's bytes, chunk by chunk (one query per chunk: memory holds one)."""
    require_permission(reader, caller)
    export = _visible(reader, caller, export_id)
    status = status_of(export, utcnow())
    if status == "expired":
        raise ExportExpired(f"the file was deleted when it expired at {iso(export.expires_at)}")
    if status != "done":
        raise Conflict(f"the export is {status}: there is no file" + (f" ({export.error})" if export.error else ""))
    count = reader.scalar(select(func.count()).select_from(ExportChunk).where(ExportChunk.export_id == export.id))

    def chunks() -> Iterator[bytes]:
        for seq in range(count):
            data = reader.scalar(select(ExportChunk.data).where(ExportChunk.export_id == export.id,
                                                                ExportChunk.seq == seq))
            if data is None:  # deleted while being sent: the answer ends short rather than lying
                return
            yield bytes(data)

    return export, chunks()


# ---- making the file (the run_exports timer)

def claim(uow, owner: str, lease_s: float) -> dict | None:
    """Take the oldest running export nobody holds: ``{id, user_id, role, branch_id, filter, reserved}``."""
    now = utcnow()
    with uow.transaction() as session:
        export = session.scalars(
            select(Export).where(Export.status == "running",
                                 or_(Export.lease_until.is_(None), Export.lease_until < now))
            .order_by(Export.created_at).limit(1).with_for_update(skip_locked=True)
        ).first()
        if export is None:
            return None
        export.lease_owner, export.lease_until = owner, now + timedelta(seconds=lease_s)
        export.attempts += 1
        return {"id": export.id, "user_id": export.user_id, "role": export.role, "branch_id": export.branch_id,
                "filter": dict(export.filter), "reserved": export.reserved, "created_at": export.created_at}


def build(job: dict, user_email: str, list_page: Callable[[dict], dict], key: bytes, email_domain: str,
          renew: Callable[[], None] = lambda: None) -> dict:
    """Write the file to a spooled temporary file: ``{file, rows, markers, size_bytes, sha256}``. At most the reserved
    number of clients are written, however many match by now (the cap holds)."""
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024, mode="w+b")
    text = io.TextIOWrapper(spool, encoding="utf-8-sig", newline="")
    writer = csv.writer(text)
    writer.writerow(rules.first_line(job["id"], user_email, job["user_id"], iso(job["created_at"])))
    writer.writerow(rules.HEADER)
    markers, slots = rules.markers_for(key, job["id"], job["reserved"], email_domain)
    marked = rules.MarkedRows(markers, slots)
    query = {**client_query(job["filter"]), "limit": str(PAGE)}
    cursor = None
    while marked.clients < job["reserved"]:
        page = list_page({**query, **({"cursor": cursor} if cursor else {})})
        for client in page["items"][: job["reserved"] - marked.clients]:
            writer.writerows(marked.add(client))
        cursor = page["next_cursor"]
        if not cursor:
            break
        renew()
    writer.writerows(marked.finish())
    text.flush()
    text.detach()
    size = spool.seek(0, io.SEEK_END)
    spool.seek(0)
    digest = hashlib.sha256()
    for block in iter(lambda: spool.read(CHUNK_BYTES), b""):
        digest.update(block)
    spool.seek(0)
    return {"file": spool, "rows": marked.clients, "markers": marked.placed, "size_bytes": size,
            "sha256": digest.hexdigest()}


def renew_lease(uow, export_id: str, owner: str, lease_s: float) -> None:
    with uow.transaction() as session:
        session.execute(update(Export).where(Export.id == export_id, Export.lease_owner == owner)
                        .values(lease_until=utcnow() + timedelta(seconds=lease_s)))


def finish(uow, settings: Settings, export_id: str, owner: str, built: dict) -> bool:
    """Store the file and its markers and mark the export done, if this replica still holds it."""
    with uow.transaction() as session:
        export = session.get(Export, export_id, with_for_update=True, populate_existing=True)
        if export is None or export.status != "running" or export.lease_owner != owner:
            return False  # its lease ran out and another replica took it
        spool = built["file"]
        for seq, data in enumerate(iter(lambda: spool.read(CHUNK_BYTES), b"")):
            session.add(ExportChunk(export_id=export.id, seq=seq, data=data))
        values = {(kind, value) for marker in built["markers"]
                  for kind, value in rules.Marker(marker["id"], marker["name"], marker["phone"], marker["email"]).values()}
        session.add_all(ExportMarker(kind=kind, value=value, export_id=export.id) for kind, value in sorted(values))
        now = utcnow()
        export.status, export.rows, export.markers = "done", built["rows"], built["markers"]
        export.size_bytes, export.sha256 = built["size_bytes"], built["sha256"]
        export.finished_at, export.expires_at = now, now + timedelta(seconds=settings.export_ttl_s)
        export.lease_owner = export.lease_until = None
        export.error = None
        give_back(session, export.user_id, export.quota_day, rules.refund(export.reserved, built["rows"]))
    return True


def record_failure(uow, export_id: str, owner: str, exc: BaseException) -> None:
    """Try again a little later; after ``MAX_ATTEMPTS`` the export fails and its rows go back to the user's day."""
    with uow.transaction() as session:
        export = session.get(Export, export_id, with_for_update=True, populate_existing=True)
        if export is None or export.status != "running" or export.lease_owner != owner:
            return
        export.error = f"{type(exc).__name__}: {exc}"[:2000]
        if export.attempts >= MAX_ATTEMPTS:
            export.status, export.finished_at = "failed", utcnow()
            export.lease_owner = export.lease_until = None
            give_back(session, export.user_id, export.quota_day, export.reserved)
        else:
            export.lease_until = utcnow() + timedelta(seconds=RETRY_AFTER_FAILURE_S)


def run_next(uow, settings: Settings, clients_rpc, owner: str) -> bool:
    """Make one export's file; True if there was one (the timer then looks for the next at once)."""
    job = claim(uow, owner, settings.export_lease_s)
    if job is None:
        return False
    caller = {"id": job["user_id"], "role": job["role"], "branch_id": job["branch_id"]}
    try:
        user_email = uow.reader.scalar(select(User.email).where(User.id == job["user_id"])) or "unknown"
        built = build(job, user_email, lambda query: clients_rpc.list_clients(caller, query),
                      rules.marker_key(signing_key(settings)), settings.export_marker_domain,
                      renew=lambda: renew_lease(uow, job["id"], owner, settings.export_lease_s))
        try:
            if finish(uow, settings, job["id"], owner, built):
                log.info("export %s done: %d rows", job["id"], built["rows"])
        finally:
            built["file"].close()
    except Exception as exc:  # noqa: BLE001 - recorded on the export, retried, then failed
        log.warning("export %s failed: %r", job["id"], exc)
        uow.rollback()
        record_failure(uow, job["id"], owner, exc)
    return True


def expire(uow, now=None) -> int:
    """Delete the files of exports past their time; their records and markers stay (for tracing)."""
    now = now or utcnow()
    with uow.transaction() as session:
        ids = session.scalars(select(Export.id).where(Export.status == "done", Export.expires_at <= now)
                              .with_for_update(skip_locked=True)).all()
        if not ids:
            return 0
        session.execute(delete(ExportChunk).where(ExportChunk.export_id.in_(ids)))
        session.execute(update(Export).where(Export.id.in_(ids)).values(status="expired"))
    return len(ids)


# ---- tracing a leaked file

def trace(reader, caller: Caller, raw: dict) -> dict:
    """The exports whose marker rows appear among the given values or text, the most matches first."""
    if not caller.is_admin:
        raise Forbidden("only an administrator traces exports")
    data = load_or_raise(ExportTraceSchema, raw)
    wanted = rules.trace_values(data.get("phones", ()), data.get("emails", ()), data.get("client_ids", ()),
                                data.get("text", ""))
    by_kind: dict[str, list[str]] = {}
    for kind, value in wanted:
        by_kind.setdefault(kind, []).append(value)
    if not by_kind:
        return {"items": []}
    condition = or_(*[and_(ExportMarker.kind == kind, ExportMarker.value.in_(values))
                      for kind, values in sorted(by_kind.items())])
    matched: dict[str, list[dict]] = {}
    for marker in reader.scalars(select(ExportMarker).where(condition)).all():
        matched.setdefault(marker.export_id, []).append({"kind": marker.kind, "value": marker.value})
    exports = reader.scalars(select(Export).where(Export.id.in_(list(matched)))).all() if matched else []
    items = [{"export_id": e.id, "user_id": e.user_id, "created_at": iso(e.created_at), "markers": len(e.markers or []),
              "matched": sorted(matched[e.id], key=lambda m: (m["kind"], m["value"]))} for e in exports]
    items.sort(key=lambda item: item["created_at"], reverse=True)
    items.sort(key=lambda item: len(item["matched"]), reverse=True)
    return {"items": items}
