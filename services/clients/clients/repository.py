"""Queries of the clients service. Every read of a client goes through ``visible`` or ``get_visible``."""

from __future__ import annotations

from sqlalchemy import and_, exists, func, or_, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from clients.models import Client, ClientContact, RoundRobinCursor, TimelineEntry
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
    """The first client of the branch holding any of these phones or emails."""
    wanted = [("phone", p) for p in phones] + [("email", e) for e in emails]
    if not wanted:
        return None
    conditions = [and_(ClientContact.kind == kind, ClientContact.value == value) for kind, value in wanted]
    query = select(ClientContact.client_id).where(ClientContact.branch_id == branch_id, or_(*conditions))
    if exclude_id:
        query = query.where(ClientContact.client_id != exclude_id)
    return session.scalars(query.limit(1)).first()


def replace_contacts(session: Session, client: Client) -> None:
    """Make the contact rows match the client's phones and emails."""
    wanted = {("phone", p) for p in client.phones} | {("email", e) for e in client.emails}
    current = session.scalars(select(ClientContact).where(ClientContact.client_id == client.id)).all()
    for row in current:
        if (row.kind, row.value) not in wanted or row.branch_id != client.branch_id:
            session.delete(row)
        else:
            wanted.discard((row.kind, row.value))
    session.flush()
    for kind, value in sorted(wanted):
        session.add(ClientContact(client_id=client.id, branch_id=client.branch_id, kind=kind, value=value))


def list_clients(session: Session, caller: Caller, filters: dict, search: str | None, dump) -> dict:
    query = select(Client).where(caller.visibility(Client))
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
    keys = CLIENT_SORT_KEYS[filters.get("sort", "-created_at")]
    return paginate(session, query, keys, filters.get("cursor"), filters["limit"], dump)


def _has_tag(session: Session, tag: str):
    if session.bind.dialect.name == "postgresql":
        return type_coerce(Client.tags, JSONB).contains([tag])
    each = func.json_each(Client.tags).table_valued("value")
    return exists(select(1).select_from(each).where(each.c.value == tag))


def timeline(session: Session, client_id: str, cursor: str | None, limit: int, dump) -> dict:
    query = select(TimelineEntry).where(TimelineEntry.client_id == client_id)
    return paginate(session, query, TIMELINE_KEYS, cursor, limit, dump)


def round_robin_cursor(session: Session, branch_id: str) -> RoundRobinCursor:
    """The branch's round-robin row, created if missing and locked until the transaction ends."""
    dialect = session.bind.dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    session.execute(insert(RoundRobinCursor).values(branch_id=branch_id).on_conflict_do_nothing())
    query = select(RoundRobinCursor).where(RoundRobinCursor.branch_id == branch_id)
    if dialect == "postgresql":
        query = query.with_for_update()
    return session.scalars(query).one()


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
