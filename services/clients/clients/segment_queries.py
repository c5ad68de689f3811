"""Queries of segments and campaigns, and of the copy of deal states a segment's ``has_open_deal`` reads.

A segment's members are the active (not archived, not merged) clients of its branch that match its filter
and that the caller may see: the same ``caller.visibility(Client)`` condition as ``GET /clients``, in SQL.
"""

from __future__ import annotations

from sqlalchemy import and_, exists, false, func, or_, select, true, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from clients.models import Campaign, Client, ClientDeal, Segment
from clients.repository import CLIENT_SORT_KEYS, _has_tag
from crm_common.caller import Caller
from crm_common.pagination import SortKey, paginate
from crm_common.schemas import is_uuid, parse_rfc3339

SEGMENT_KEYS = [SortKey(Segment.created_at, True, "datetime"), SortKey(Segment.id, True)]
CAMPAIGN_KEYS = [SortKey(Campaign.created_at, True, "datetime"), SortKey(Campaign.id, True)]


# ---- a filter as SQL


def filter_conditions(session: Session, stored: dict) -> list:
    """The SQL conditions of a stored filter (``segments.stored_filter``: times as RFC 3339 text)."""
    conditions = []
    if "kind" in stored:
        conditions.append(Client.kind == stored["kind"])
    if "tag" in stored:
        conditions.append(_has_tag(session, stored["tag"].lower()))
    if "source" in stored:
        conditions.append(Client.source == stored["source"])
    if "owner_id" in stored:
        conditions.append(Client.owner_id == stored["owner_id"])
    if "created_from" in stored:
        conditions.append(Client.created_at >= parse_rfc3339(stored["created_from"]))
    if "created_to" in stored:
        conditions.append(Client.created_at < parse_rfc3339(stored["created_to"]))
    if "has_open_deal" in stored:
        conditions.append(Client.open_deals > 0 if stored["has_open_deal"] else Client.open_deals == 0)
    if "no_interaction_since" in stored:
        since = parse_rfc3339(stored["no_interaction_since"])
        conditions.append(or_(Client.last_interaction_at.is_(None), Client.last_interaction_at < since))
    if stored.get("custom_fields"):
        conditions.append(_custom_fields_match(session, stored["custom_fields"]))
    return conditions


def _custom_fields_match(session: Session, wanted: dict):
    """Every named custom field equal to its value, with its JSON type: ``"1"`` is not ``1``, ``true`` is not ``1``."""
    if session.bind.dialect.name == "postgresql":
        return type_coerce(Client.custom_fields, JSONB).contains(wanted)  # served by ix_clients_custom_fields
    conditions = []
    for key, value in sorted(wanted.items()):
        each = func.json_each(Client.custom_fields).table_valued("key", "type", "atom")
        if isinstance(value, bool):
            same = each.c.type == ("true" if value else "false")
        elif isinstance(value, (int, float)):
            same = and_(each.c.type.in_(("integer", "real")), each.c.atom == value)
        else:
            same = and_(each.c.type == "text", each.c.atom == value)
        conditions.append(exists(select(1).select_from(each).where(each.c.key == key, same)))
    return and_(*conditions)


def members_query(session: Session, caller: Caller | None, segment: Segment, what=None):
    """A select of the segment's members the caller sees (``caller`` None: every member of the branch)."""
    query = select(what if what is not None else Client).where(
        Client.branch_id == segment.branch_id, Client.archived_at.is_(None), Client.merged_into.is_(None),
        caller.visibility(Client) if caller is not None else true(),
        *filter_conditions(session, segment.filter or {}),
    )
    return query


def count_members(session: Session, caller: Caller | None, segment: Segment) -> int:
    return session.scalar(members_query(session, caller, segment, func.count()).select_from(Client)) or 0


def members_page(session: Session, caller: Caller, segment: Segment, page: dict, dump) -> dict:
    keys = CLIENT_SORT_KEYS[page.get("sort") or "-created_at"]
    return paginate(session, members_query(session, caller, segment), keys, page.get("cursor"), page["limit"], dump)


# ---- segments and campaigns themselves: a branch's, read by everyone in it


def _branch_visibility(caller: Caller, model):
    if caller.is_admin:
        return true()
    if not caller.branch_id:
        return false()
    return model.branch_id == caller.branch_id


def get_segment(session: Session, caller: Caller, segment_id: str, for_update: bool = False) -> Segment | None:
    if not is_uuid(segment_id):
        return None
    query = select(Segment).where(Segment.id == segment_id, Segment.deleted_at.is_(None),
                                  _branch_visibility(caller, Segment))
    if for_update and session.bind.dialect.name == "postgresql":
        query = query.with_for_update()
    return session.scalars(query).first()


def list_segments(session: Session, caller: Caller, filters: dict, dump) -> dict:
    query = select(Segment).where(Segment.deleted_at.is_(None), _branch_visibility(caller, Segment))
    if filters.get("branch_id"):
        query = query.where(Segment.branch_id == filters["branch_id"])
    return paginate(session, query, SEGMENT_KEYS, filters.get("cursor"), filters["limit"], dump)


def get_campaign(session: Session, caller: Caller, campaign_id: str, for_update: bool = False) -> Campaign | None:
    if not is_uuid(campaign_id):
        return None
    query = select(Campaign).where(Campaign.id == campaign_id, _branch_visibility(caller, Campaign))
    if for_update and session.bind.dialect.name == "postgresql":
        query = query.with_for_update()
    return session.scalars(query).first()


def list_campaigns(session: Session, caller: Caller, filters: dict, dump) -> dict:
    query = select(Campaign).where(_branch_visibility(caller, Campaign))
    if filters.get("branch_id"):
        query = query.where(Campaign.branch_id == filters["branch_id"])
    if filters.get("segment_id"):
        query = query.where(Campaign.segment_id == filters["segment_id"])
    return paginate(session, query, CAMPAIGN_KEYS, filters.get("cursor"), filters["limit"], dump)


# ---- deal states, from the deals service's events


def record_deal_state(session: Session, deal_id: str, client_id: str, status: str, version: int) -> None:
    """Keep the deal's client and status if this snapshot is at least as new as the one kept (events come in any
    order and more than once: the row ends as the newest snapshot says), then count the open deals again of the
    client it names and of the one it named before (a merge moves deals). The clients are locked first, in id
    order, so two events of one client count one after the other and neither misses the other's deal."""
    postgresql = session.bind.dialect.name == "postgresql"
    before = session.scalar(select(ClientDeal.client_id).where(ClientDeal.deal_id == deal_id))
    clients = sorted({client_id, before} - {None})
    if postgresql:
        session.execute(select(Client.id).where(Client.id.in_(clients)).order_by(Client.id).with_for_update())
    insert = postgresql_insert if postgresql else sqlite_insert
    statement = insert(ClientDeal).values(deal_id=deal_id, client_id=client_id, status=status, version=version)
    session.execute(statement.on_conflict_do_update(
        index_elements=[ClientDeal.deal_id],
        set_={"client_id": statement.excluded.client_id, "status": statement.excluded.status,
              "version": statement.excluded.version},
        where=ClientDeal.version <= statement.excluded.version,
    ))
    clients_table = Client.__table__  # a Core UPDATE: the client's version (its edits) is not this
    for one in clients:
        session.execute(clients_table.update().where(clients_table.c.id == one).values(
            open_deals=select(func.count()).select_from(ClientDeal)
            .where(ClientDeal.client_id == one, ClientDeal.status == "open").scalar_subquery()))


def open_deal_count(session: Session, client_id: str) -> int:
    return session.scalar(select(func.count()).select_from(ClientDeal).where(
        ClientDeal.client_id == client_id, ClientDeal.status == "open")) or 0

