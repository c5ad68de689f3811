"""The audit log's statements: a batch written in one transaction, the list, the chain check, the read window.

``flush`` is what the audit writer (gateway/audit.py) runs for each batch: the batch's client reads are upserted
into the window and counted, alarms and caps decided, then the chain's head is locked (``FOR UPDATE`` on
PostgreSQL; SQLite has one writer at a time), the entries are chained after it and inserted, and the head moves.
The head lock is taken last, so replicas queue on it only for the inserts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Executable, bindparam, delete, func, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from crm_common.caller import Caller
from crm_common.errors import BadRequest, Forbidden
from crm_common.events import validate_event
from crm_common.pagination import SortKey, paginate
from crm_common.schemas import iso
from gateway.auditrules import WINDOW, ChainCheck, alert_due, capped, chain, released_at
from gateway.models import AuditEntry, AuditHead, ClientRead, OutboxMessage, ReadWatch, User

ROWS_PER_STATEMENT = 1000
# A client read again sooner than this after its recorded read keeps the recorded time: it leaves the hour's window
# at most this much early, and a card opened over and over writes no new row version each time (an UPDATE of an
# indexed column is never HOT: every one left a dead row and three index entries behind; decisions.md 83).
READ_REFRESH = timedelta(minutes=1)
CHECK_PAGE = 2000
ENTRY_FIELDS = ("id", "user_id", "branch_id", "action", "ref_type", "ref_id", "count", "at", "request_id", "address")
AUDIT_KEYS = (SortKey(AuditEntry.seq, descending=True, kind="int"),)


@dataclass(frozen=True)
class Limits:
    alert: int  # CRM_READ_ALERT_PER_HOUR (0: off)
    cap: int  # CRM_READ_CAP_PER_HOUR (0: off)

    @property
    def watching(self) -> bool:
        return self.alert > 0 or self.cap > 0


@dataclass
class Flushed:
    blocked: dict[str, datetime] = field(default_factory=dict)  # users refused until then
    alerts: int = 0  # bulk_read_detected events written


def _insert(session: Session, model):
    return (pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert)(model)


def flush(session: Session, entries: list[dict], reads: Iterable[tuple[str, str]], limits: Limits,
          now: datetime) -> Flushed:
    """Write one batch in the session's transaction (the caller commits): see the module docstring."""
    outcome = Flushed()
    reads = sorted(set(reads))  # key order: two replicas upserting the same keys cannot deadlock
    if reads and limits.watching:
        counts = record_reads(session, reads, now, max(limits.alert, limits.cap) + 1)
        outcome.alerts = _watch(session, counts, limits, now)
    if entries:
        append(session, entries)
    if limits.cap > 0:
        outcome.blocked = blocked_users(session, now)
    return outcome


@dataclass(frozen=True)
class Statements:
    """The writer's statements, built once per dialect: it runs them for every batch, and building and compiling
    SQLAlchemy constructs again each time cost more CPU than the rows themselves."""

    upsert_read: Executable
    upsert_reads: Executable | None  # PostgreSQL: every read of the batch in one statement, as two arrays
    count_reads: Executable | None  # PostgreSQL: every user of the batch in one statement
    head: Executable
    insert_entry: Executable
    move_head: Executable
    blocked: Executable


_STATEMENTS: dict[str, Statements] = {}


def statements(session: Session) -> Statements:
    dialect = session.get_bind().dialect.name
    if dialect not in _STATEMENTS:
        upsert = _insert(session, ClientRead.__table__).values(
            user_id=bindparam("u"), client_id=bindparam("c"), read_at=bindparam("t"))
        stale = bindparam("stale", type_=ClientRead.__table__.c.read_at.type)
        upsert = upsert.on_conflict_do_update(index_elements=["user_id", "client_id"],
                                              set_={"read_at": upsert.excluded.read_at}, where=ClientRead.read_at < stale)
        postgres = dialect == "postgresql"
        upsert_all = text(
            "INSERT INTO client_reads (user_id, client_id, read_at) SELECT r.u, r.c, :t "
            "FROM unnest(CAST(:users AS varchar[]), CAST(:clients AS varchar[])) AS r(u, c) "
            "ON CONFLICT (user_id, client_id) DO UPDATE SET read_at = excluded.read_at "
            "WHERE client_reads.read_at < :stale"
        ) if postgres else None
        count = text(
            "SELECT u.user_id, (SELECT count(*) FROM (SELECT 1 FROM client_reads r WHERE r.user_id = u.user_id "
            "AND r.read_at > :since LIMIT :bound) AS w) AS n FROM unnest(CAST(:users AS varchar[])) AS u(user_id)"
        ) if dialect == "postgresql" else None
        _STATEMENTS[dialect] = Statements(
            upsert_read=upsert,
            upsert_reads=upsert_all,
            count_reads=count,
            head=select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1).with_for_update(),
            insert_entry=insert(AuditEntry.__table__),
            move_head=update(AuditHead.__table__).where(AuditHead.id == 1)
            .values(seq=bindparam("s"), hash=bindparam("h")),
            blocked=select(ReadWatch.user_id, ReadWatch.blocked_until).where(ReadWatch.blocked_until > bindparam("now")),
        )
    return _STATEMENTS[dialect]


def append(session: Session, entries: list[dict]) -> list[dict]:
    """Chain ``entries`` after the head, under its row lock, and insert them."""
    sql, connection = statements(session), session.connection()
    head = connection.execute(sql.head).one()
    rows = chain(entries, head.seq, head.hash)
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        connection.execute(sql.insert_entry, rows[start:start + ROWS_PER_STATEMENT])
    connection.execute(sql.move_head, {"s": rows[-1]["seq"], "h": rows[-1]["hash"]})
    return rows


def record_reads(session: Session, reads: list[tuple[str, str]], now: datetime, bound: int) -> dict[str, int]:
    """Put each (user, client) read into the window (a client read again moves to now, unless its last read is
    less than ``READ_REFRESH`` old) and count each user's distinct clients in the window, up to ``bound`` (past
    the larger limit the exact number changes nothing)."""
    sql, connection = statements(session), session.connection()
    stale = now - READ_REFRESH  # a client read again within it keeps its row as it is
    if sql.upsert_reads is not None:
        connection.execute(sql.upsert_reads, {"users": [user for user, _ in reads],
                                              "clients": [client for _, client in reads], "t": now, "stale": stale})
    else:
        rows = [{"u": user, "c": client, "t": now, "stale": stale} for user, client in reads]
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            connection.execute(sql.upsert_read, rows[start:start + ROWS_PER_STATEMENT])
    users = sorted({user for user, _ in reads})
    since = now - WINDOW
    if sql.count_reads is not None:
        found = connection.execute(sql.count_reads, {"users": users, "since": since, "bound": bound})
        return {row.user_id: row.n for row in found}
    counts = [
        select(func.count()).select_from(
            select(ClientRead.client_id).where(ClientRead.user_id == user, ClientRead.read_at > since)
            .limit(bound).subquery()
        ).scalar_subquery().label(f"n{index}")
        for index, user in enumerate(users)
    ]
    row = connection.execute(select(*counts)).one()
    return dict(zip(users, row, strict=True))


def _watch(session: Session, counts: dict[str, int], limits: Limits, now: datetime) -> int:
    alerts = 0
    for user_id, count in counts.items():
        if alert_due(count, limits.alert, None, now) and _claim_alert(session, user_id, now):
            _emit_bulk_read(session, user_id, count, limits.alert, now)
            alerts += 1
        if capped(count, limits.cap):
            times = list(session.scalars(select(ClientRead.read_at).where(
                ClientRead.user_id == user_id, ClientRead.read_at > now - WINDOW).order_by(ClientRead.read_at)))
            until = released_at(times, limits.cap)
            if until is not None:
                statement = _insert(session, ReadWatch).values(user_id=user_id, blocked_until=until)
                session.execute(statement.on_conflict_do_update(index_elements=["user_id"],
                                                                set_={"blocked_until": until}))
    return alerts


def _claim_alert(session: Session, user_id: str, now: datetime) -> bool:
    """Set the user's alarm time unless it went off within the window: one statement, so of two replicas
    deciding at once only one claims it (the row lock of the upsert orders them)."""
    statement = _insert(session, ReadWatch).values(user_id=user_id, alerted_at=now)
    statement = statement.on_conflict_do_update(
        index_elements=["user_id"], set_={"alerted_at": now},
        where=or_(ReadWatch.alerted_at.is_(None), ReadWatch.alerted_at <= now - WINDOW),
    ).returning(ReadWatch.user_id)
    return session.execute(statement).first() is not None


def _emit_bulk_read(session: Session, user_id: str, count: int, threshold: int, now: datetime) -> None:
    user = session.execute(select(User.id, User.name, User.role, User.branch_id).where(User.id == user_id)).first()
    name, role, branch_id = (user.name, user.role, user.branch_id) if user else (user_id, "api_key", None)
    payload = validate_event("bulk_read_detected", {
        "occurred_at": now, "branch_id": branch_id, "actor_id": user_id,
        "user": {"id": user_id, "name": name, "role": role},
        "count": count, "threshold": threshold, "window_s": int(WINDOW.total_seconds()),
    })
    session.execute(insert(OutboxMessage).values(event_id=payload["event_id"], event_type="bulk_read_detected",
                                                 payload=payload, created_at=now))


def committed(session: Session, ids: list[str]) -> set[str]:
    """Which of these entries are in the log already (a journal replayed after a crash may hold some)."""
    found: set[str] = set()
    for start in range(0, len(ids), ROWS_PER_STATEMENT):
        found.update(session.scalars(select(AuditEntry.id).where(AuditEntry.id.in_(ids[start:start + ROWS_PER_STATEMENT]))))
    return found


def blocked_users(session: Session, now: datetime) -> dict[str, datetime]:
    rows = session.connection().execute(statements(session).blocked, {"now": now})
    return {row.user_id: row.blocked_until for row in rows}


def purge_reads(session: Session, now: datetime) -> int:
    """Reads that left the window: nothing counts them any more."""
    return session.execute(delete(ClientRead).where(ClientRead.read_at <= now - WINDOW)).rowcount


# ---- GET /audit and GET /audit/verify

def list_entries(session: Session, caller: Caller, filters: dict) -> dict:
    """Newest first; a head sees their branch's entries, an admin everyone's."""
    if caller.is_manager:
        raise Forbidden("only heads of sales and administrators read the audit log")
    if filters.get("from") and filters.get("to") and filters["from"] > filters["to"]:
        raise BadRequest("to is before from", fields={"to": ["Must not be before from."]})
    query = select(AuditEntry)
    if not caller.is_admin:
        query = query.where(AuditEntry.branch_id == caller.branch_id)
    if filters.get("user_id"):
        query = query.where(AuditEntry.user_id == filters["user_id"])
    if filters.get("action"):
        query = query.where(AuditEntry.action == filters["action"])
    if filters.get("from"):
        query = query.where(AuditEntry.at >= filters["from"])
    if filters.get("to"):
        query = query.where(AuditEntry.at < filters["to"])
    return paginate(session, query, AUDIT_KEYS, filters["cursor"], filters["limit"], _entry_out)


def _entry_out(entry: AuditEntry) -> dict:
    out = {name: getattr(entry, name) for name in ENTRY_FIELDS}
    out["at"] = iso(entry.at)
    return out


def verify(session: Session) -> dict:
    """Recompute the whole chain, oldest first, page by page: ``{ok, checked, first_bad: {id, reason} | null}``."""
    head = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one()
    check, after = ChainCheck(), 0
    columns = [getattr(AuditEntry, name) for name in ("seq", "prev_hash", "hash", *ENTRY_FIELDS)]
    while True:
        page = session.execute(select(*columns).where(AuditEntry.seq > after).order_by(AuditEntry.seq)
                               .limit(CHECK_PAGE)).all()
        if not page or not all(check.feed(row._asdict()) for row in page):
            break
        after = page[-1].seq
    flaw = check.finish(head.seq, head.hash)
    return {"ok": flaw is None, "checked": check.checked,
            "first_bad": None if flaw is None else {"id": flaw.id, "reason": flaw.reason}}
