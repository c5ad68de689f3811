"""Use cases of segments (saved filters over the client base) and campaigns (marketing planned per segment).

A segment belongs to a branch; everyone in the branch reads it, heads and admins write it. Its ``count``
and members are computed when asked, as the caller sees the branch's clients (a manager: their own), so
they are always current and never reveal a client the caller could not list with ``GET /clients``.
A campaign follows its segment's branch; its ``audience`` is the segment's size in that branch when the
campaign is created (decisions.md 58), carried by ``campaign_created`` to the reports service.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy.orm.exc import StaleDataError

from clients import segment_queries as queries
from clients.exceptions import CampaignNotFound, SegmentNotFound
from clients.models import Campaign, Segment
from clients.schemas import client_out
from crm_common.caller import Caller
from crm_common.clock import utcnow
from crm_common.contracts.segments import (
    FILTER_KEYS,
    CampaignCreateSchema,
    CampaignQuerySchema,
    CampaignUpdateSchema,
    SegmentClientsQuerySchema,
    SegmentCreateSchema,
    SegmentQuerySchema,
    SegmentUpdateSchema,
)
from crm_common.errors import BadRequest, Forbidden, ValidationError, VersionConflict, require
from crm_common.schemas import iso, load_or_raise, new_id

WRITERS = ("admin", "head")


def _may_write(caller: Caller, what: str) -> None:
    if caller.role not in WRITERS:
        raise Forbidden(f"{what} are written by heads and administrators; managers read them")


def stored_filter(loaded: dict) -> dict:
    """A loaded filter as it is kept and shown: only the keys given, in the contract's order, times as RFC 3339."""
    out = {}
    for key in FILTER_KEYS:
        if key in loaded:
            value = loaded[key]
            out[key] = iso(value) if isinstance(value, datetime) else value
    return out


# ---- segments


def dump_segment(session, caller: Caller, segment: Segment) -> dict:
    return {
        "id": segment.id, "name": segment.name, "branch_id": segment.branch_id, "filter": dict(segment.filter or {}),
        "count": queries.count_members(session, caller, segment), "created_by": segment.created_by,
        "created_at": iso(segment.created_at), "updated_at": iso(segment.updated_at), "version": segment.version,
    }


def require_segment(session, caller: Caller, segment_id: str, for_update: bool = False) -> Segment:
    return require(queries.get_segment(session, caller, segment_id, for_update=for_update), SegmentNotFound)


def create_segment(uow, caller: Caller, raw) -> dict:
    """``{"name": "VIP без сделок", "filter": {"tag": "vip", "has_open_deal": false}}`` → the segment with its count."""
    _may_write(caller, "segments")
    data = load_or_raise(SegmentCreateSchema, raw)
    now = utcnow()
    segment = Segment(
        id=new_id(), branch_id=caller.target_branch(data["branch_id"]), name=data["name"],
        filter=stored_filter(data["filter"]), created_by=caller.id, created_at=now, updated_at=now,
    )
    uow.session.add(segment)
    uow.session.flush()
    return dump_segment(uow.session, caller, segment)


def update_segment(uow, caller: Caller, segment_id: str, raw, expected_version: int | None = None) -> dict:
    """Rename it or replace its whole filter; a stale ``expected_version`` (If-Match) is 409."""
    _may_write(caller, "segments")
    changes = load_or_raise(SegmentUpdateSchema, raw)
    segment = require_segment(uow.session, caller, segment_id, for_update=True)
    VersionConflict.check("segment", segment.version, expected_version)
    if "filter" in changes:
        changes["filter"] = stored_filter(changes["filter"])
    changed = [name for name in ("name", "filter") if name in changes and changes[name] != getattr(segment, name)]
    if changed:
        for name in changed:
            setattr(segment, name, changes[name])
        segment.updated_at = utcnow()
        _flush(uow, "segment")
    return dump_segment(uow.session, caller, segment)


def delete_segment(uow, caller: Caller, segment_id: str) -> dict:
    """The segment leaves every list (its campaigns keep their audience and report); → it, as it was."""
    _may_write(caller, "segments")
    segment = require_segment(uow.session, caller, segment_id, for_update=True)
    out = dump_segment(uow.session, caller, segment)
    segment.deleted_at = utcnow()
    _flush(uow, "segment")
    return out


def get_segment(session, caller: Caller, segment_id: str) -> dict:
    return dump_segment(session, caller, require_segment(session, caller, segment_id))


def list_segments(session, caller: Caller, query) -> dict:
    filters = load_or_raise(SegmentQuerySchema, query or {}, BadRequest)
    return queries.list_segments(session, caller, filters, lambda segment: dump_segment(session, caller, segment))


def segment_clients(session, caller: Caller, segment_id: str, query) -> dict:
    """A page of the members the caller sees: the shape, order and cursor of ``GET /clients``."""
    page = load_or_raise(SegmentClientsQuerySchema, query or {}, BadRequest)
    segment = require_segment(session, caller, segment_id)
    return queries.members_page(session, caller, segment, page, client_out.dump)


def _flush(uow, record: str) -> None:
    try:
        uow.session.flush()
    except StaleDataError:
        raise VersionConflict(f"the {record} changed while you were saving it") from None


# ---- campaigns


def _money(minor: int | None) -> str | None:
    return None if minor is None else f"{(Decimal(minor) / 100).quantize(Decimal('0.01'))}"


def dump_campaign(campaign: Campaign) -> dict:
    budget = None
    if campaign.budget_minor is not None:
        budget = {"amount": _money(campaign.budget_minor), "currency": campaign.budget_currency}
    return {
        "id": campaign.id, "name": campaign.name, "branch_id": campaign.branch_id, "segment_id": campaign.segment_id,
        "channel": campaign.channel, "starts_on": campaign.starts_on, "ends_on": campaign.ends_on, "budget": budget,
        "message": campaign.message, "audience": campaign.audience, "created_by": campaign.created_by,
        "created_at": iso(campaign.created_at), "updated_at": iso(campaign.updated_at), "version": campaign.version,
    }


def _set_budget(campaign: Campaign, budget: dict | None) -> None:
    if budget is None:
        campaign.budget_minor, campaign.budget_currency = None, None
    else:
        campaign.budget_minor = int((budget["amount"] * 100).to_integral_value())
        campaign.budget_currency = budget["currency"]


def create_campaign(uow, caller: Caller, raw) -> dict:
    """``{"name": "Весенняя рассылка", "segment_id": ..., "channel": "email", "starts_on": "2026-12-01",
    "ends_on": "2026-12-31", "budget": {"amount": "50000.00", "currency": "RUB"}}`` → the campaign."""
    _may_write(caller, "campaigns")
    data = load_or_raise(CampaignCreateSchema, raw)
    segment = queries.get_segment(uow.session, caller, data["segment_id"])
    if segment is None:
        raise ValidationError("unknown segment", fields={"segment_id": ["No such segment in your branch."]})
    now = utcnow()
    campaign = Campaign(
        id=new_id(), branch_id=segment.branch_id, segment_id=segment.id, name=data["name"], channel=data["channel"],
        starts_on=data["starts_on"].isoformat(), ends_on=data["ends_on"].isoformat(), message=data["message"],
        audience=queries.count_members(uow.session, None, segment), created_by=caller.id,
        created_at=now, updated_at=now,
    )
    _set_budget(campaign, data["budget"])
    uow.session.add(campaign)
    uow.session.flush()
    out = dump_campaign(campaign)
    uow.emit("campaign_created", {"branch_id": campaign.branch_id, "actor_id": caller.id, "campaign": out})
    return out


CAMPAIGN_EDITABLE = ("name", "channel", "starts_on", "ends_on", "budget", "message")


def update_campaign(uow, caller: Caller, campaign_id: str, raw, expected_version: int | None = None) -> dict:
    """Change the plan: name, channel, dates, budget (null removes it), message. Its segment and audience stay."""
    _may_write(caller, "campaigns")
    changes = load_or_raise(CampaignUpdateSchema, raw)
    campaign = require(queries.get_campaign(uow.session, caller, campaign_id, for_update=True), CampaignNotFound)
    VersionConflict.check("campaign", campaign.version, expected_version)
    for name in ("starts_on", "ends_on"):
        if name in changes:
            changes[name] = changes[name].isoformat()
    if changes.get("ends_on", campaign.ends_on) < changes.get("starts_on", campaign.starts_on):
        field = "ends_on" if "ends_on" in changes else "starts_on"
        raise ValidationError("invalid dates", fields={field: ["ends_on must not be before starts_on."]})
    before = dump_campaign(campaign)
    for name in ("name", "channel", "starts_on", "ends_on", "message"):
        if name in changes:
            setattr(campaign, name, changes[name])
    if "budget" in changes:
        _set_budget(campaign, changes["budget"])
    out = dump_campaign(campaign)
    changed = [name for name in CAMPAIGN_EDITABLE if out[name] != before[name]]
    if not changed:
        return before
    campaign.updated_at = utcnow()
    _flush(uow, "campaign")
    out = dump_campaign(campaign)
    uow.emit("campaign_updated", {"branch_id": campaign.branch_id, "actor_id": caller.id, "campaign": out,
                                  "changed": changed})
    return out


def get_campaign(session, caller: Caller, campaign_id: str) -> dict:
    return dump_campaign(require(queries.get_campaign(session, caller, campaign_id), CampaignNotFound))


def list_campaigns(session, caller: Caller, query) -> dict:
    filters = load_or_raise(CampaignQuerySchema, query or {}, BadRequest)
    return queries.list_campaigns(session, caller, filters, dump_campaign)


# ---- deal states (for has_open_deal)


def record_deal_state(uow, payload: dict) -> None:
    """Called by every deal event handler in its transaction, whether or not the event was seen before."""
    deal = payload["deal"]
    if deal.get("client_id"):
        queries.record_deal_state(uow.session, deal["id"], deal["client_id"], deal["status"], int(deal.get("version") or 0))

