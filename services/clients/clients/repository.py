"""Queries of the clients service. Every read of a client goes through ``visible`` or ``get_visible``."""

from __future__ import annotations

from sqlalchemy import and_, exists, false, func, or_, select, true, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased

from clients.models import Client, ClientContact, Import, ImportContact, ImportOutcome, ImportRow, RoundRobinCursor, TimelineEntry
from crm_common.caller import Caller
from crm_common.pagination import SortKey, paginate
from crm_common.schemas import is_uuid

CLIENT_SORT_KEYS = {
    "-created_at": [SortKey(Client.created_at, True, "datetime"), SortKey(Client.id, True)],
    "created_at": [SortKey(Client.created_at, False, "datetime"), SortKey(Client.id, False)],
    "-updated_at": [SortKey(Client.updated_at, True, "datetime"), SortKey(Client.id, True)],
    "name": [SortKey(Client.name, False), SortKey(Client.id, False)],
    "-name": [SortKey(Client.name, True), SortKey(Client.id, True)],
}

TIMELINE_KEYS = [SortKey(TimelineEntry.occurred_at, True, "datetime"), SortKey(TimelineEntry.id, True)]


def get_visible(session: Session, caller: Caller, client_id: str, for_update: bool = False) -> Client | None:
    if not is_uuid(client_id):
        return None
    query = select(Client).where(Client.id == client_id, caller.visibility(Client))
    if for_update and session.bind.dialect.name == "postgresql":
        query = query.with_for_update()
    return session.scalars(query).first()


def find_by_contacts(session: Session, branch_id: str, phones: list[str], emails: list[str], exclude_id: str | None = None):
    """The client of the branch holding any of these phones or emails: the one that claims it if any."""
    wanted = [("phone", p) for p in phones] + [("email", e) for e in emails]
    if not wanted:
        return None
    conditions = [and_(ClientContact.kind == kind, ClientContact.value == value) for kind, value in wanted]
    query = select(ClientContact.client_id).where(ClientContact.branch_id == branch_id, or_(*conditions))
    if exclude_id:
        query = query.where(ClientContact.client_id != exclude_id)
    return session.scalars(query.order_by(ClientContact.claimed.desc(), ClientContact.id).limit(1)).first()


def client_by_phone(session: Session, branch_id: str, phone: str):
    """``(id, owner_id)`` of the branch's client holding this phone (the one that claims it if any), or None: what
    ``find_by_contacts`` finds, with its owner, in one query."""
    query = (
        select(Client.id, Client.owner_id)
        .join(ClientContact, ClientContact.client_id == Client.id)
        .where(ClientContact.branch_id == branch_id, ClientContact.kind == "phone", ClientContact.value == phone)
        .order_by(ClientContact.claimed.desc(), ClientContact.id)
        .limit(1)
    )
    return session.execute(query).first()


def new_contacts(client: Client) -> list[ClientContact]:
    """The contact rows of a client just created, each claiming its value: the caller has just found nobody
    holding them (a concurrent claim loses on the unique index)."""
    wanted = {("phone", p) for p in client.phones} | {("email", e) for e in client.emails}
    return [ClientContact(client_id=client.id, branch_id=client.branch_id, kind=kind, value=value, claimed=True)
            for kind, value in sorted(wanted)]


def contact_holders(session: Session, branch_id: str, contacts: list[tuple[str, str]]) -> list[ClientContact]:
    """Every contact row of the branch with one of these ``(kind, value)``s, claimers first, oldest first."""
    if not contacts:
        return []
    rows = session.scalars(
        select(ClientContact)
        .where(ClientContact.branch_id == branch_id, _kind_and_value(ClientContact, contacts))
        .order_by(ClientContact.claimed.desc(), ClientContact.id)
    ).all()
    return list(rows)


def _kind_and_value(model, contacts: list[tuple[str, str]]):
    """``(kind = 'phone' AND value IN (...)) OR (kind = 'email' AND value IN (...))``: the index on
    ``(…, kind, value)`` serves it (a condition on ``value`` alone would read every contact of the branch)."""
    by_kind: dict[str, set[str]] = {}
    for kind, value in contacts:
        by_kind.setdefault(kind, set()).add(value)
    return or_(*(and_(model.kind == kind, model.value.in_(sorted(values))) for kind, values in sorted(by_kind.items())))


def replace_contacts(session: Session, client: Client, free: bool = False) -> None:
    """Make the contact rows match the client's phones and emails.

    A new row claims its value unless another client of the branch claims it already; a claimed value
    the client gives up passes to the oldest other holder, so a contact listed by anyone stays claimed.
    ``free``: the caller has just checked that nobody holds the new values (a concurrent claim still
    loses on the unique index).
    """
    wanted = {("phone", p) for p in client.phones} | {("email", e) for e in client.emails}
    current = session.scalars(select(ClientContact).where(ClientContact.client_id == client.id)).all()
    released = []
    for row in current:
        if (row.kind, row.value) not in wanted or row.branch_id != client.branch_id:
            session.delete(row)
            if row.claimed:
                released.append((row.branch_id, row.kind, row.value))
        else:
            wanted.discard((row.kind, row.value))
    session.flush()
    for branch_id, kind, value in released:
        heir = session.scalars(
            select(ClientContact)
            .where(ClientContact.branch_id == branch_id, ClientContact.kind == kind, ClientContact.value == value)
            .order_by(ClientContact.id).limit(1)
        ).first()
        if heir is not None:
            heir.claimed = True
    holders = [] if free else contact_holders(session, client.branch_id, sorted(wanted))
    claimed = {(row.kind, row.value) for row in holders if row.claimed}
    for kind, value in sorted(wanted):
        session.add(ClientContact(
            client_id=client.id, branch_id=client.branch_id, kind=kind, value=value,
            claimed=(kind, value) not in claimed,
        ))


def contacts_of(session: Session, client_id: str) -> list[ClientContact]:
    return list(session.scalars(select(ClientContact).where(ClientContact.client_id == client_id)
                                .order_by(ClientContact.id)).all())


def shared_contacts(session: Session, client: Client) -> list[tuple[str, str, str]]:
    """``(other client id, kind, value)`` for every phone or email the client shares with another of its branch."""
    mine, theirs = aliased(ClientContact), aliased(ClientContact)
    query = (
        select(theirs.client_id, theirs.kind, theirs.value)
        .join(mine, and_(mine.branch_id == theirs.branch_id, mine.kind == theirs.kind, mine.value == theirs.value))
        .where(mine.client_id == client.id, theirs.client_id != client.id)
        .order_by(theirs.id)
    )
    return [tuple(row) for row in session.execute(query).all()]


def same_name(session: Session, client: Client, limit: int) -> list[Client]:
    """Other clients of the branch with the client's kind and name key (none for a name without words)."""
    if not client.name_key:
        return []
    query = select(Client).where(
        Client.branch_id == client.branch_id, Client.name_key == client.name_key, Client.kind == client.kind,
        Client.id != client.id, Client.merged_into.is_(None),
    )
    return list(session.scalars(query.order_by(Client.created_at, Client.id).limit(limit)).all())


def visible_clients(session: Session, caller: Caller, ids: list[str]) -> list[Client]:
    if not ids:
        return []
    query = select(Client).where(Client.id.in_(ids), caller.visibility(Client), Client.merged_into.is_(None))
    return list(session.scalars(query).all())


def list_clients(session: Session, caller: Caller, filters: dict, search: str | None, dump) -> dict:
    query = matching_clients(session, caller, filters, search)
    keys = CLIENT_SORT_KEYS[filters.get("sort", "-created_at")]
    return paginate(session, query, keys, filters.get("cursor"), filters["limit"], dump)


def count_clients(session: Session, caller: Caller, filters: dict, search: str | None) -> int:
    """How many clients ``list_clients`` would page through with these filters (an export counts them first)."""
    query = matching_clients(session, caller, filters, search).with_only_columns(func.count(Client.id))
    return session.scalar(query.order_by(None))


def matching_clients(session: Session, caller: Caller, filters: dict, search: str | None):
    """The clients the caller may see that the filters of ``GET /clients`` match."""
    query = select(Client).where(caller.visibility(Client), Client.merged_into.is_(None))
    if filters.get("archived"):
        query = query.where(Client.archived_at.is_not(None))
    else:
        query = query.where(Client.archived_at.is_(None))
    if search:
        query = query.where(Client.search_text.contains(search, autoescape=True))
    if filters.get("tag"):
        query = query.where(_has_tag(session, filters["tag"].lower()))
    if filters.get("source"):
        query = query.where(Client.source == filters["source"])
    if filters.get("owner_id"):
        query = query.where(Client.owner_id == filters["owner_id"])
    if filters.get("branch_id"):
        query = query.where(Client.branch_id == filters["branch_id"])
    if filters.get("created_from"):
        query = query.where(Client.created_at >= filters["created_from"])
    if filters.get("created_to"):
        query = query.where(Client.created_at < filters["created_to"])
    return query


def _has_tag(session: Session, tag: str):
    if session.bind.dialect.name == "postgresql":
        return type_coerce(Client.tags, JSONB).contains([tag])
    each = func.json_each(Client.tags).table_valued("value")
    return exists(select(1).select_from(each).where(each.c.value == tag))


def timeline(session: Session, client_id: str, cursor: str | None, limit: int, dump) -> dict:
    query = select(TimelineEntry).where(TimelineEntry.client_id == client_id)
    return paginate(session, query, TIMELINE_KEYS, cursor, limit, dump)


def round_robin_cursor(session: Session, branch_id: str) -> RoundRobinCursor:
    """The branch's round-robin row, locked until the transaction ends (created first if missing)."""
    dialect = session.bind.dialect.name
    query = select(RoundRobinCursor).where(RoundRobinCursor.branch_id == branch_id)
    if dialect == "postgresql":
        query = query.with_for_update()
    cursor = session.scalars(query).first()
    if cursor is None:
        insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
        session.execute(insert(RoundRobinCursor).values(branch_id=branch_id).on_conflict_do_nothing())
        cursor = session.scalars(query).one()
    return cursor


DEAL_OPENING_EVENTS = ("deal_created", "deal_reopened")


def deal_openings(session: Session, client_id: str) -> int:
    """How many deal openings (new or reopened deals) the client's timeline holds: a count that changes
    exactly when the deals service tells us a deal of the client opened."""
    return session.scalar(
        select(func.count()).select_from(TimelineEntry).where(
            TimelineEntry.client_id == client_id, TimelineEntry.kind == "deal",
            TimelineEntry.type.in_(DEAL_OPENING_EVENTS),
        )
    )


# ---- imports

IMPORT_SORT_KEYS = [SortKey(Import.created_at, True, "datetime"), SortKey(Import.id, True)]


def import_visibility(caller: Caller):
    """Imports are a head's (their branch) and an administrator's (every branch) business."""
    if caller.is_admin:
        return true()
    if caller.is_head:
        return Import.branch_id == caller.branch_id
    return false()


def get_import(session: Session, caller: Caller, import_id: str, for_update: bool = False) -> Import | None:
    if not is_uuid(import_id):
        return None
    query = select(Import).where(Import.id == import_id, import_visibility(caller))
    if for_update and session.bind.dialect.name == "postgresql":
        query = query.with_for_update()
    return session.scalars(query).first()


def list_imports(session: Session, caller: Caller, filters: dict, dump) -> dict:
    query = select(Import).where(import_visibility(caller))
    if filters.get("status"):
        query = query.where(Import.status == filters["status"])
    if filters.get("branch_id"):
        query = query.where(Import.branch_id == filters["branch_id"])
    return paginate(session, query, IMPORT_SORT_KEYS, filters.get("cursor"), filters["limit"], dump)


def existing_rows(session: Session, import_id: str, row_numbers: list[int]) -> set[int]:
    if not row_numbers:
        return set()
    return set(session.scalars(select(ImportRow.row_no).where(
        ImportRow.import_id == import_id, ImportRow.row_no.between(min(row_numbers), max(row_numbers)),
    )).all())


def next_rows(session: Session, import_id: str, after: int, limit: int) -> list[tuple[int, dict]]:
    """``(row number, data)`` of the staged rows after ``after``: plain tuples, as a batch only reads them."""
    return [tuple(row) for row in session.execute(
        select(ImportRow.row_no, ImportRow.data).where(ImportRow.import_id == import_id, ImportRow.row_no > after)
        .order_by(ImportRow.row_no).limit(limit)
    ).all()]


def error_rows(session: Session, import_id: str, after: int, limit: int) -> list[ImportOutcome]:
    return list(session.scalars(
        select(ImportOutcome)
        .where(ImportOutcome.import_id == import_id, ImportOutcome.status == "error", ImportOutcome.row_no > after)
        .order_by(ImportOutcome.row_no).limit(limit)
    ).all())


def staged_contacts(session: Session, import_id: str, contacts: list[tuple[str, str]]) -> dict:
    """``(kind, value) → (row, client id)`` for the contacts earlier rows of the import had."""
    if not contacts:
        return {}
    rows = session.execute(
        select(ImportContact.kind, ImportContact.value, ImportContact.row_no, ImportContact.client_id)
        .where(ImportContact.import_id == import_id, _kind_and_value(ImportContact, contacts))
    ).all()
    return {(kind, value): (row_no, client_id) for kind, value, row_no, client_id in rows}


def claimable_import(session: Session, replica: str, now):
    """The oldest started import nobody else holds a live lease on, locked (skipping one being claimed)."""
    query = (
        select(Import)
        .where(Import.status.in_(("queued", "running")),
               or_(Import.lease_owner == replica, Import.lease_until.is_(None), Import.lease_until < now))
        .order_by(Import.created_at, Import.id).limit(1)
        .execution_options(populate_existing=True)  # the worker's session may hold it from a tick before
    )
    if session.bind.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return session.scalars(query).first()
