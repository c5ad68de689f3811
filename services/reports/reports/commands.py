"""Use cases of the reports service: the reports (read from the counters) and its own records, plans with
their miss reasons and channel spend.

Who sees what: a head their branch, an admin every branch (``branch_id`` narrows), a manager only their own
line of the managers report; any other report is 403 for a manager.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from crm_common.caller import Caller
from crm_common.clock import utcnow
from crm_common.contracts.reports import (
    ClientBaseQuerySchema,
    FunnelQuerySchema,
    MissReasonSchema,
    MonthQuerySchema,
    PeriodQuerySchema,
    PlanSetSchema,
    SpendSetSchema,
)
from crm_common.errors import Forbidden, ValidationError
from crm_common.schemas import Text, is_uuid, iso, load_or_raise, new_id
from reports import domain
from reports import repository as repo
from reports.domain import ALL, NONE, money
from reports.exceptions import BranchNotFound, PipelineNotFound, PlanNotFound
from reports.models import ChannelSpend, Plan
from reports.repository import Scope

HEADS = ("admin", "head")


def _current_month() -> str:
    return domain.month_of(utcnow())


def scope_of(caller: Caller, branch_id: str | None) -> Scope:
    """An admin's whole company or the branch named; a head's branch (another one is as missing as none)."""
    if caller.is_admin:
        return Scope(branch_id)
    if branch_id and branch_id != caller.branch_id:
        raise BranchNotFound()
    return Scope(caller.branch_id)


def _head_or_admin(caller: Caller) -> None:
    if caller.role not in HEADS:
        raise Forbidden("reports are for heads of sales and administrators; a manager sees /reports/managers")


def _period(query: dict, default_months: int = 1) -> tuple[str, str]:
    end = query.get("to") or _current_month()
    start = query.get("from_") or domain.shift_month(end, -(default_months - 1))
    if start > end:
        raise ValidationError("invalid period", fields={"from": ["Must not be after to."]})
    return start, end


def _period_end(end: str) -> datetime:
    year, month = (int(part) for part in domain.shift_month(end, 1).split("-"))
    return datetime(year, month, 1, tzinfo=UTC)


# ---- the reports


def client_base(session, caller: Caller, raw: dict) -> dict:
    """Per month: the clients in the base at its end, new, archived and net; new clients per source; tags."""
    _head_or_admin(caller)
    query = load_or_raise(ClientBaseQuerySchema, raw)
    scope = scope_of(caller, query["branch_id"])
    start, end = _period(query, default_months=12)
    counts = repo.client_months(session, scope, end)
    total = sum(new - archived for month, (new, archived) in counts.items() if month < start)
    months = []
    for month in domain.months_between(start, end):
        new, archived = counts.get(month, (0, 0))
        total += new - archived
        months.append({"month": month, "total": total, "new": new, "archived": archived, "net": new - archived})
    return {
        "branch_id": scope.branch_id, "from": start, "to": end, "months": months,
        "by_source": [{"source": source or None, "new": n} for source, n in repo.new_by_source(session, scope, start, end)],
        "by_tag": [{"tag": tag, "total": n} for tag, n in repo.tag_totals(session, scope, end)],
    }


def funnel(session, caller: Caller, raw: dict) -> dict:
    """Per stage of a pipeline: entries in the period, how many moved on or were lost there, and the days spent."""
    _head_or_admin(caller)
    query = load_or_raise(FunnelQuerySchema, raw)
    start, end = _period(query)
    pipeline = repo.pipeline(session, query["pipeline_id"])
    if pipeline is None or not (caller.is_admin or pipeline.branch_id == caller.branch_id):
        raise PipelineNotFound()
    if query["branch_id"] and query["branch_id"] != pipeline.branch_id:
        raise PipelineNotFound()
    owner_key = query["owner_id"] or ALL
    counts = repo.funnel_counts(session, pipeline.id, owner_key, start, end)
    histograms = repo.duration_histograms(session, pipeline.id, owner_key, start, end)
    stages = repo.stages(session, pipeline.id)
    listed = [s for s in stages if not s.removed or s.id in counts]
    known = {s.id for s in listed}
    listed.sort(key=lambda s: (s.removed, s.position if s.position is not None else 10**6, s.name or ""))
    lines = []
    for stage in listed:
        lines.append(_funnel_line(stage.id, stage.name, stage.kind, stage.position, stage.removed,
                                  counts.get(stage.id), histograms.get(stage.id, [])))
    for stage_id in sorted(set(counts) - known):  # a stage no event has named yet
        lines.append(_funnel_line(stage_id, None, None, None, False, counts[stage_id], histograms.get(stage_id, [])))
    return {"pipeline_id": pipeline.id, "name": pipeline.name, "branch_id": pipeline.branch_id,
            "owner_id": query["owner_id"], "from": start, "to": end, "stages": lines}


def _funnel_line(stage_id, name, kind, position, removed, counts, histogram) -> dict:
    entered, moved_on, lost, exited, duration = counts or (0, 0, 0, 0, 0.0)
    median = domain.median_from_histogram(histogram)
    return {
        "stage_id": stage_id, "name": name, "kind": kind, "position": position, "removed": bool(removed),
        "entered": int(entered), "moved_on": int(moved_on), "lost": int(lost),
        "conversion": domain.ratio(moved_on, entered),
        "median_days": domain.days(median),
        "mean_days": domain.days(float(duration) / int(exited)) if exited else None,
    }


def plan_report(session, caller: Caller, raw: dict) -> dict:
    """Plans of the month per branch and per manager against the deals they won that month."""
    _head_or_admin(caller)
    query = load_or_raise(MonthQuerySchema, raw)
    scope = scope_of(caller, query["branch_id"])
    month = query["month"] or _current_month()
    plans = repo.plans_of_month(session, scope, month)
    branch_plans = {p.branch_id: p for p in plans if p.user_id is None}
    user_plans = {p.user_id: p for p in plans if p.user_id is not None}
    won_by_branch, won_by_owner = {}, {}
    for branch_id, owner, currency, deals, amount in repo.won(session, scope, month, month, ("branch_id", "owner_key")):
        won_by_branch.setdefault(branch_id, []).append((currency, deals, amount))
        if owner != NONE:
            won_by_owner.setdefault(owner, []).append((currency, deals, amount))
    branch_rows = repo.branches(session, scope)
    branch_ids = sorted(set(branch_rows) | set(branch_plans) | set(won_by_branch)
                        | ({scope.branch_id} if scope.branch_id else set()))
    branches = []
    for branch_id in branch_ids:
        plan = branch_plans.get(branch_id)
        line = domain.plan_line(plan.amount_minor if plan else None, plan.currency if plan else None,
                                domain.split_by_currency(won_by_branch.get(branch_id, [])))
        branch = branch_rows.get(branch_id)
        branches.append({"branch_id": branch_id, "name": branch.name if branch else None, **_plan_ref(plan), **line})
    people = repo.users(session, scope, ids=set(user_plans) | set(won_by_owner), role="manager")
    managers = []
    for user_id in sorted(people, key=lambda u: ((people[u].name or "").lower(), u)):
        user = people[user_id]
        plan = user_plans.get(user_id)
        branch_plan = branch_plans.get(user.branch_id)
        line = domain.plan_line(plan.amount_minor if plan else None, plan.currency if plan else None,
                                domain.split_by_currency(won_by_owner.get(user_id, [])),
                                fallback_currency=branch_plan.currency if branch_plan else None)
        managers.append({"user_id": user_id, "name": user.name, "branch_id": user.branch_id, **_plan_ref(plan), **line})
    return {"month": month, "branches": branches, "managers": managers}


def _plan_ref(plan: Plan | None) -> dict:
    return {"plan_id": plan.id if plan else None, "miss_reason": _miss_reason(plan) if plan else None}


def _miss_reason(plan: Plan) -> dict | None:
    if not plan.miss_category:
        return None
    return {"category": plan.miss_category, "reason": plan.miss_reason, "recorded_by": plan.miss_recorded_by,
            "recorded_at": iso(plan.miss_recorded_at)}


def channels(session, caller: Caller, raw: dict) -> dict:
    """Per source: touchpoints, new clients, deals won and revenue of its clients, spend, ROI, cost per client."""
    _head_or_admin(caller)
    query = load_or_raise(PeriodQuerySchema, raw)
    scope = scope_of(caller, query["branch_id"])
    start, end = _period(query)
    touchpoints = repo.touchpoints_by_source(session, scope, start, end)
    new_clients = dict(repo.new_by_source(session, scope, start, end))
    revenue: dict[str, list] = {}
    for source, currency, deals, amount in repo.won(session, scope, start, end, ("source",)):
        revenue.setdefault(source, []).append((currency, deals, amount))
    spend: dict[str, dict[str, int]] = {}
    for source, currency, amount in repo.spend_by_source(session, scope, start, end):
        spend.setdefault(source, {})[currency] = amount
    lines = []
    for source in sorted(set(touchpoints) | set(new_clients) | set(revenue) | set(spend)):
        won = domain.split_by_currency(revenue.get(source, []))
        spent = spend.get(source, {})
        preferred = max(spent.items(), key=lambda item: (item[1], item[0]))[0] if spent else None
        currency = domain.main_currency(won, preferred)
        in_currency = won.get(currency, domain.CurrencyTotals())
        spend_minor = spent.get(currency, 0)
        per_client = domain.cost_per_client(spend_minor, new_clients.get(source, 0))
        others = [
            {"currency": code, "revenue": money(won.get(code, domain.CurrencyTotals()).amount_minor),
             "deals_won": won.get(code, domain.CurrencyTotals()).deals, "spend": money(spent.get(code, 0))}
            for code in sorted((set(won) | set(spent)) - {currency})
        ]
        lines.append({
            "source": source or None, "touchpoints": touchpoints.get(source, 0),
            "new_clients": new_clients.get(source, 0), "deals_won": in_currency.deals, "currency": currency,
            "revenue": money(in_currency.amount_minor), "spend": money(spend_minor),
            "roi": domain.roi(in_currency.amount_minor, spend_minor),
            "cost_per_client": money(per_client) if per_client is not None else None, "other_currencies": others,
        })
    lines.sort(key=lambda line: (-(line["roi"] if line["roi"] is not None else float("-inf")), line["source"] or ""))
    return {"branch_id": scope.branch_id, "from": start, "to": end, "channels": lines}


def managers(session, caller: Caller, raw: dict) -> dict:
    """Per manager: what they did in the month (calls, meetings, tasks, moves) and what came of it."""
    query = load_or_raise(MonthQuerySchema, raw)
    month = query["month"] or _current_month()
    only = caller.id if caller.is_manager else None
    scope = Scope(caller.branch_id) if caller.is_manager else scope_of(caller, query["branch_id"])
    if caller.is_manager and query["branch_id"] and query["branch_id"] != caller.branch_id:
        raise BranchNotFound()
    activity = repo.activity(session, scope, month, only)
    penalties: dict[str, list] = {}
    for user, currency, n, total in repo.penalties(session, scope, month, only):
        penalties.setdefault(user, []).append((currency, n, total))
    won: dict[str, list] = {}
    for owner, currency, deals, amount in repo.won(session, scope, month, month, ("owner_key",)):
        if owner != NONE and (only is None or owner == only):
            won.setdefault(owner, []).append((currency, deals, amount))
    if only:
        people, ids = repo.users_by_id(session, [only]), [only]
    else:
        active = {u for u in set(activity) | set(penalties) | set(won) if u != NONE}
        people = repo.users(session, scope, ids=active, role="manager")
        ids = sorted(people.keys() | active, key=lambda u: ((people[u].name or "").lower() if u in people else "~", u))
    lines = []
    for user_id in ids:
        user = people.get(user_id)
        counts = activity.get(user_id, {})
        fines = penalties.get(user_id, [])
        wins = sorted(won.get(user_id, []), key=lambda row: (-row[2], row[0]))
        lines.append({
            "user_id": user_id, "name": user.name if user else None, "branch_id": user.branch_id if user else None,
            "role": user.role if user else None,
            **{name: counts.get(name, 0) for name in ("calls", "meetings", "interactions", "tasks_done_on_time",
                                                      "tasks_overdue", "deals_moved")},
            "penalties": sum(n for _, n, _ in fines),
            "penalty_amounts": [{"amount": money(total), "currency": c} for c, _, total in sorted(fines)],
            "deals_won": sum(deals for _, deals, _ in wins),
            "revenue": [{"amount": money(amount), "currency": c} for c, _, amount in wins],
        })
    return {"branch_id": scope.branch_id, "month": month, "managers": lines}


def scripts(session, caller: Caller, raw: dict) -> dict:
    """Per sales script: uses in the period, clients it was used with, deals those clients won after a use."""
    _head_or_admin(caller)
    query = load_or_raise(PeriodQuerySchema, raw)
    scope = scope_of(caller, query["branch_id"])
    start, end = _period(query)
    uses = repo.script_uses(session, scope, start, end)
    wins = repo.wins_after_script_use(session, scope, start, end, _period_end(end)) if uses else {}
    titles = repo.scripts(session, uses)
    lines = [
        {"script_id": script_id, "title": titles[script_id].title if script_id in titles else None,
         "uses": count, "clients": clients, "deals_won": wins.get(script_id, 0)}
        for script_id, (count, clients) in uses.items()
    ]
    lines.sort(key=lambda line: (-line["uses"], line["title"] or "", line["script_id"]))
    return {"branch_id": scope.branch_id, "from": start, "to": end, "scripts": lines}


def campaigns(session, caller: Caller, raw: dict) -> dict:
    """Per campaign running in the period (or touched in it): its audience, touchpoints and new clients of the
    period, deals won in the period by the clients it touched (after their first touch) and their revenue, its
    budget, ROI and cost per new client (the whole budget, whatever the period)."""
    _head_or_admin(caller)
    query = load_or_raise(PeriodQuerySchema, raw)
    scope = scope_of(caller, query["branch_id"])
    start, end = _period(query)
    period_start, period_end = _period_end(domain.shift_month(start, -1)), _period_end(end)
    first_day, last_day = period_start.date().isoformat(), (period_end - timedelta(days=1)).date().isoformat()
    listed = repo.campaigns_of_period(session, scope, start, end, first_day, last_day)
    ids = [c.id for c in listed]
    touches = repo.campaign_touches(session, ids, start, end)
    revenue: dict[str, list] = {}
    for campaign_id, currency, deals, amount in repo.campaign_wins(session, ids, period_start, period_end):
        revenue.setdefault(campaign_id, []).append((currency, deals, amount))
    lines = []
    for campaign in listed:
        touchpoints, new_clients = touches.get(campaign.id, (0, 0))
        won = domain.split_by_currency(revenue.get(campaign.id, []))
        currency = domain.main_currency(won, campaign.budget_currency)
        in_currency = won.get(currency, domain.CurrencyTotals())
        budget = campaign.budget_minor
        per_client = domain.cost_per_client(budget or 0, new_clients)
        lines.append({
            "campaign_id": campaign.id, "name": campaign.name, "segment_id": campaign.segment_id,
            "channel": campaign.channel, "starts_on": campaign.starts_on, "ends_on": campaign.ends_on,
            "audience": campaign.audience, "touchpoints": touchpoints, "new_clients": new_clients,
            "deals_won": in_currency.deals, "currency": currency, "revenue": money(in_currency.amount_minor),
            "budget": {"amount": money(budget), "currency": campaign.budget_currency} if budget is not None else None,
            "roi": domain.roi(in_currency.amount_minor, budget or 0),
            "cost_per_client": money(per_client) if per_client is not None else None,
            "other_currencies": [
                {"currency": code, "revenue": money(totals.amount_minor), "deals_won": totals.deals}
                for code, totals in sorted(won.items()) if code != currency
            ],
        })
    lines.sort(key=lambda line: (line["name"] or "", line["campaign_id"]))
    lines.sort(key=lambda line: line["starts_on"], reverse=True)  # the latest first, by name within a day
    return {"branch_id": scope.branch_id, "from": start, "to": end, "campaigns": lines}


REPORTS = {
    "client_base": client_base, "funnel": funnel, "plan": plan_report, "channels": channels,
    "managers": managers, "scripts": scripts, "campaigns": campaigns,
}


# ---- own records


def _upsert(session, model, values: dict, keys: list[str], updates: list[str]) -> None:
    insert = (pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert)(model).values(**values)
    session.execute(insert.on_conflict_do_update(index_elements=keys, set_={k: insert.excluded[k] for k in updates}))


def set_plan(uow, caller: Caller, raw: dict, directory: dict | None = None) -> dict:
    """Set (or replace) the plan of a manager or a branch for a month.

    ``directory``: what the gateway vouches for about the ``user_id`` named (``{"users": {id: {branch_id,
    role, active}}}``), as for deal owners; a plan for someone the caller may not plan for is refused."""
    _head_or_admin(caller)
    data = load_or_raise(PlanSetSchema, raw)
    branch_id, user_id = _plan_target(caller, data, directory or {})
    session, now = uow.session, utcnow()
    target = f"user:{user_id}" if user_id else f"branch:{branch_id}"
    _upsert(session, Plan, {
        "id": new_id(), "month": data["month"], "target": target, "branch_id": branch_id, "user_id": user_id,
        "amount_minor": domain.to_minor(data["amount"]), "currency": data["currency"], "set_by": caller.id,
        "created_at": now, "updated_at": now,
    }, ["month", "target"], ["branch_id", "amount_minor", "currency", "set_by", "updated_at"])
    plan = session.scalars(select(Plan).where(Plan.month == data["month"], Plan.target == target)).one()
    session.refresh(plan)
    return dump_plan(plan)


def _plan_target(caller: Caller, data: dict, directory: dict) -> tuple[str, str | None]:
    if data["user_id"]:
        user = (directory.get("users") or {}).get(data["user_id"])
        if user is None:
            raise ValidationError("unknown user", fields={"user_id": ["No such user."]})
        if not user.get("branch_id"):
            raise ValidationError("user without a branch", fields={"user_id": ["The user has no branch."]})
        if not caller.is_admin and user["branch_id"] != caller.branch_id:
            raise ValidationError("user of another branch", fields={"user_id": ["The user belongs to another branch."]})
        if not user.get("active", True):
            raise ValidationError("deactivated user", fields={"user_id": ["The user is deactivated."]})
        return user["branch_id"], data["user_id"]
    if data["branch_id"]:
        if not caller.is_admin and data["branch_id"] != caller.branch_id:
            raise ValidationError("another branch", fields={"branch_id": ["You may only plan for your own branch."]})
        return data["branch_id"], None
    if caller.is_admin:
        raise ValidationError("no target", fields={"branch_id": ["Give user_id or branch_id."]})
    return caller.branch_id, None


def dump_plan(plan: Plan) -> dict:
    return {
        "id": plan.id, "month": plan.month, "branch_id": plan.branch_id, "user_id": plan.user_id,
        "amount": money(plan.amount_minor), "currency": plan.currency, "miss_reason": _miss_reason(plan),
        "created_at": iso(plan.created_at), "updated_at": iso(plan.updated_at),
    }


def require_plan(session, caller: Caller, plan_id: str, for_update: bool = False) -> Plan:
    plan = session.get(Plan, plan_id, with_for_update=for_update) if is_uuid(plan_id) else None
    if plan is None or not (caller.is_admin or (caller.is_head and plan.branch_id == caller.branch_id)):
        raise PlanNotFound()
    return plan


def record_miss_reason(uow, caller: Caller, plan_id: str, raw: dict) -> dict:
    """Why a plan was (or will be) missed; recording it again replaces it."""
    _head_or_admin(caller)
    data = load_or_raise(MissReasonSchema, raw)
    plan = require_plan(uow.session, caller, plan_id, for_update=True)
    plan.miss_category, plan.miss_reason = data["category"], data["reason"]
    plan.miss_recorded_by, plan.miss_recorded_at = caller.id, utcnow()
    uow.session.flush()
    return dump_plan(plan)


SOURCE_FIELD = Text(64)


def set_spend(uow, caller: Caller, source, raw: dict) -> dict:
    """What a branch spent on a channel in a month; setting it again replaces it."""
    _head_or_admin(caller)
    data = load_or_raise(SpendSetSchema, raw)
    try:
        source = SOURCE_FIELD.deserialize(source)
    except Exception:  # noqa: BLE001 - marshmallow's error, named as the path's field
        raise ValidationError("invalid source", fields={"source": ["A channel name of 1 to 64 characters."]}) from None
    if caller.is_admin:
        if not data["branch_id"]:
            raise ValidationError("branch required", fields={"branch_id": ["An administrator names the branch."]})
        branch_id = data["branch_id"]
    else:
        if data["branch_id"] and data["branch_id"] != caller.branch_id:
            raise ValidationError("another branch", fields={"branch_id": ["Only your own branch."]})
        branch_id = caller.branch_id
    session, now = uow.session, utcnow()
    _upsert(session, ChannelSpend, {
        "id": new_id(), "branch_id": branch_id, "source": source, "month": data["month"],
        "amount_minor": domain.to_minor(data["amount"]), "currency": data["currency"], "set_by": caller.id,
        "created_at": now, "updated_at": now,
    }, ["branch_id", "source", "month"], ["amount_minor", "currency", "set_by", "updated_at"])
    row = session.scalars(select(ChannelSpend).where(
        ChannelSpend.branch_id == branch_id, ChannelSpend.source == source, ChannelSpend.month == data["month"])).one()
    session.refresh(row)
    return {"id": row.id, "branch_id": row.branch_id, "source": row.source, "month": row.month,
            "amount": money(row.amount_minor), "currency": row.currency, "updated_at": iso(row.updated_at)}
