"""Queries of the reports: each reads counter rows of a few months (never the records behind them), limited
in SQL to the branches the caller may see (``Scope``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, distinct, func, or_, select

from reports.domain import ALL, NONE
from reports.models import (
    CActivity,
    CCampaignTouch,
    CClientMonth,
    CClientSource,
    CClientTag,
    CDuration,
    CFunnel,
    ChannelSpend,
    CPenalty,
    CScriptUse,
    CTouchpoint,
    CWon,
    Plan,
    RBranch,
    RCampaign,
    RDeal,
    RPipeline,
    RScript,
    RStage,
    RUser,
)


@dataclass(frozen=True)
class Scope:
    """The branches a report covers: one, or every branch (``branch_id`` None, admins only)."""

    branch_id: str | None

    def where(self, column):
        return column == self.branch_id if self.branch_id else None


def _filtered(query, *conditions):
    conditions = [c for c in conditions if c is not None]
    return query.where(and_(*conditions)) if conditions else query


# ---- client base


def client_months(session, scope: Scope, end: str) -> dict[str, tuple[int, int]]:
    query = _filtered(
        select(CClientMonth.month, func.sum(CClientMonth.new), func.sum(CClientMonth.archived)),
        scope.where(CClientMonth.branch_id), CClientMonth.month <= end,
    ).group_by(CClientMonth.month)
    return {month: (int(new or 0), int(archived or 0)) for month, new, archived in session.execute(query)}


def new_by_source(session, scope: Scope, start: str, end: str) -> list[tuple[str, int]]:
    total = func.sum(CClientSource.new)
    query = _filtered(
        select(CClientSource.source, total), scope.where(CClientSource.branch_id),
        CClientSource.month >= start, CClientSource.month <= end,
    ).group_by(CClientSource.source).having(total > 0).order_by(total.desc(), CClientSource.source)
    return [(source, int(count)) for source, count in session.execute(query)]


def tag_totals(session, scope: Scope, end: str) -> list[tuple[str, int]]:
    total = func.sum(CClientTag.new - CClientTag.archived)
    query = _filtered(
        select(CClientTag.tag, total), scope.where(CClientTag.branch_id), CClientTag.month <= end,
    ).group_by(CClientTag.tag).having(total > 0).order_by(total.desc(), CClientTag.tag)
    return [(tag, int(count)) for tag, count in session.execute(query)]


# ---- funnel


def pipeline(session, pipeline_id: str) -> RPipeline | None:
    return session.get(RPipeline, pipeline_id)


def stages(session, pipeline_id: str) -> list[RStage]:
    return list(session.scalars(select(RStage).where(RStage.pipeline_id == pipeline_id)))


def funnel_counts(session, pipeline_id: str, owner_key: str, start: str, end: str) -> dict[str, tuple]:
    query = _filtered(select(
        CFunnel.stage_id, func.sum(CFunnel.entered), func.sum(CFunnel.moved_on), func.sum(CFunnel.lost),
        func.sum(CFunnel.exited), func.sum(CFunnel.duration_s),
    ), CFunnel.pipeline_id == pipeline_id, CFunnel.month >= start, CFunnel.month <= end,
        CFunnel.owner_key == owner_key if owner_key != ALL else None,
    ).group_by(CFunnel.stage_id)
    return {row[0]: tuple(row[1:]) for row in session.execute(query)}


def duration_histograms(session, pipeline_id: str, owner_key: str, start: str, end: str) -> dict[str, list]:
    query = select(CDuration.stage_id, CDuration.bucket, func.sum(CDuration.n), func.sum(CDuration.duration_s)).where(
        CDuration.pipeline_id == pipeline_id, CDuration.owner_key == owner_key,
        CDuration.month >= start, CDuration.month <= end,
    ).group_by(CDuration.stage_id, CDuration.bucket)
    out: dict[str, list] = {}
    for stage_id, bucket, n, total in session.execute(query):
        out.setdefault(stage_id, []).append((bucket, int(n), float(total)))
    return out


# ---- deals won


def won(session, scope: Scope, start: str, end: str, by) -> list[tuple]:
    """Deals won and their amounts in ``[start, end]``, grouped by the ``CWon`` columns named in ``by``
    (always also by currency): rows ``(*by values, currency, deals, amount_minor)``."""
    columns = [getattr(CWon, name) for name in by]
    query = _filtered(
        select(*columns, CWon.currency, func.sum(CWon.deals), func.sum(CWon.amount_minor)),
        scope.where(CWon.branch_id), CWon.month >= start, CWon.month <= end,
    ).group_by(*columns, CWon.currency)
    return [tuple(row[:-2]) + (int(row[-2] or 0), int(row[-1] or 0)) for row in session.execute(query)]


# ---- plans


def plans_of_month(session, scope: Scope, month: str) -> list[Plan]:
    return list(session.scalars(_filtered(select(Plan), scope.where(Plan.branch_id), Plan.month == month)))


def branches(session, scope: Scope) -> dict[str, RBranch]:
    return {b.id: b for b in session.scalars(_filtered(select(RBranch), scope.where(RBranch.id)))}


def users(session, scope: Scope, ids=(), role: str | None = None) -> dict[str, RUser]:
    """Users of the scope with ``role`` (active ones), plus the users named in ``ids`` whatever they are."""
    wanted = [c for c in (scope.where(RUser.branch_id), RUser.role == role if role else None) if c is not None]
    conditions = [and_(*wanted, RUser.active.is_(True))]
    ids = [i for i in ids if i and i not in (NONE, ALL)]
    if ids:
        conditions.append(RUser.id.in_(ids))
    return {u.id: u for u in session.scalars(select(RUser).where(or_(*conditions)))}


def users_by_id(session, ids) -> dict[str, RUser]:
    return {u.id: u for u in session.scalars(select(RUser).where(RUser.id.in_(list(ids))))}


# ---- channels


def touchpoints_by_source(session, scope: Scope, start: str, end: str) -> dict[str, int]:
    query = _filtered(select(CTouchpoint.source, func.sum(CTouchpoint.touchpoints)),
                      scope.where(CTouchpoint.branch_id), CTouchpoint.month >= start, CTouchpoint.month <= end,
                      ).group_by(CTouchpoint.source)
    return {source: int(n) for source, n in session.execute(query)}


def spend_by_source(session, scope: Scope, start: str, end: str) -> list[tuple[str, str, int]]:
    query = _filtered(select(ChannelSpend.source, ChannelSpend.currency, func.sum(ChannelSpend.amount_minor)),
                      scope.where(ChannelSpend.branch_id), ChannelSpend.month >= start, ChannelSpend.month <= end,
                      ).group_by(ChannelSpend.source, ChannelSpend.currency)
    return [(source, currency, int(total)) for source, currency, total in session.execute(query)]


# ---- managers


def activity(session, scope: Scope, month: str, user_id: str | None = None) -> dict[str, dict]:
    query = _filtered(
        select(CActivity.user_id, func.sum(CActivity.calls), func.sum(CActivity.meetings),
               func.sum(CActivity.interactions), func.sum(CActivity.deals_moved),
               func.sum(CActivity.tasks_on_time), func.sum(CActivity.tasks_overdue)),
        scope.where(CActivity.branch_id), CActivity.month == month,
        CActivity.user_id == user_id if user_id else None,
    ).group_by(CActivity.user_id)
    names = ("calls", "meetings", "interactions", "deals_moved", "tasks_done_on_time", "tasks_overdue")
    return {row[0]: dict(zip(names, (int(v or 0) for v in row[1:]))) for row in session.execute(query)}


def penalties(session, scope: Scope, month: str, user_id: str | None = None) -> list[tuple[str, str, int, int]]:
    query = _filtered(
        select(CPenalty.user_id, CPenalty.currency, func.sum(CPenalty.penalties), func.sum(CPenalty.amount_minor)),
        scope.where(CPenalty.branch_id), CPenalty.month == month, CPenalty.user_id == user_id if user_id else None,
    ).group_by(CPenalty.user_id, CPenalty.currency)
    return [(user, currency, int(n), int(total)) for user, currency, n, total in session.execute(query)]


# ---- scripts


def script_uses(session, scope: Scope, start: str, end: str) -> dict[str, tuple[int, int]]:
    query = _filtered(
        select(CScriptUse.script_id, func.sum(CScriptUse.uses), func.count(distinct(CScriptUse.client_id))),
        scope.where(CScriptUse.branch_id), CScriptUse.month >= start, CScriptUse.month <= end,
    ).group_by(CScriptUse.script_id)
    return {script: (int(uses), int(clients)) for script, uses, clients in session.execute(query)}


def wins_after_script_use(session, scope: Scope, start: str, end: str, period_end: datetime) -> dict[str, int]:
    """Per script: deals won before the period's end by clients it was used with, after its first use with them
    in the period."""
    first_use = _filtered(
        select(CScriptUse.script_id, CScriptUse.client_id, func.min(CScriptUse.first_used_at).label("first_used")),
        scope.where(CScriptUse.branch_id), CScriptUse.month >= start, CScriptUse.month <= end,
    ).group_by(CScriptUse.script_id, CScriptUse.client_id).subquery()
    query = select(first_use.c.script_id, func.count(distinct(RDeal.id))).join(
        RDeal, and_(RDeal.client_id == first_use.c.client_id, RDeal.status == "won",
                    RDeal.closed_at >= first_use.c.first_used, RDeal.closed_at < period_end),
    ).group_by(first_use.c.script_id)
    return {script: int(n) for script, n in session.execute(query)}


def scripts(session, ids) -> dict[str, RScript]:
    ids = list(ids)
    if not ids:
        return {}
    return {s.id: s for s in session.scalars(select(RScript).where(RScript.id.in_(ids)))}


# ---- campaigns


def campaigns_of_period(session, scope: Scope, start: str, end: str, first_day: str, last_day: str) -> list[RCampaign]:
    """The scope's campaigns running at some time in the period, or with touchpoints in it."""
    touched = select(CCampaignTouch.campaign_id).where(CCampaignTouch.month >= start, CCampaignTouch.month <= end)
    query = _filtered(select(RCampaign), scope.where(RCampaign.branch_id)).where(or_(
        and_(RCampaign.starts_on <= last_day, RCampaign.ends_on >= first_day), RCampaign.id.in_(touched)))
    return list(session.scalars(query))


def campaign_touches(session, ids: list[str], start: str, end: str) -> dict[str, tuple[int, int]]:
    """Per campaign: touchpoints in the period and the clients they created."""
    if not ids:
        return {}
    query = select(CCampaignTouch.campaign_id, func.sum(CCampaignTouch.touchpoints), func.sum(CCampaignTouch.new_clients)).where(
        CCampaignTouch.campaign_id.in_(ids), CCampaignTouch.month >= start, CCampaignTouch.month <= end,
    ).group_by(CCampaignTouch.campaign_id)
    return {campaign: (int(n or 0), int(new or 0)) for campaign, n, new in session.execute(query)}


def campaign_wins(session, ids: list[str], period_start: datetime, period_end: datetime) -> list[tuple[str, str, int, int]]:
    """Per campaign and currency: deals won in the period by clients the campaign touched before the win (their
    first touch, whenever it was), and their amounts: rows ``(campaign_id, currency, deals, amount_minor)``."""
    if not ids:
        return []
    first_touch = select(
        CCampaignTouch.campaign_id, CCampaignTouch.client_id, func.min(CCampaignTouch.first_touch_at).label("first_at"),
    ).where(CCampaignTouch.campaign_id.in_(ids)).group_by(CCampaignTouch.campaign_id, CCampaignTouch.client_id).subquery()
    query = select(first_touch.c.campaign_id, RDeal.currency, func.count(RDeal.id), func.sum(RDeal.amount_minor)).join(
        RDeal, and_(RDeal.client_id == first_touch.c.client_id, RDeal.status == "won",
                    RDeal.closed_at >= first_touch.c.first_at, RDeal.closed_at >= period_start,
                    RDeal.closed_at < period_end),
    ).group_by(first_touch.c.campaign_id, RDeal.currency)
    return [(campaign, currency, int(n), int(total or 0)) for campaign, currency, n, total in session.execute(query)]
