"""Pure rules of the reports read model: what each record adds to the report counters, and the arithmetic
of the answers (funnel conversion, median days, ROI, plan fulfilment). No SQLAlchemy, no nameko.

The read model keeps each record's current state (a client, a deal with its stage visits, a task...)
and counters shaped for the reports. A record *contributes* to counter rows: ``contributions(state)``
is a dict ``{(table, key): {column: amount}}``. When an event changes a record, the counters move by
``contributions(new) - contributions(old)``. So applying an event twice changes nothing (the state is the
same), events may come in any order (a record's state only moves forward by its version), and a rebuild
from the records' current state gives exactly the counters the events built.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

ALL = "*"  # owner key of the counter rows that sum every owner
NONE = ""  # owner / source key of records without one

Key = tuple
Contributions = dict[tuple[str, Key], dict[str, float]]

# Columns whose counter keeps the smallest value seen (a first use), not a sum.
MIN_COLUMNS = {"first_used_at", "first_touch_at"}


# ---- months


def month_of(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m")


def month_index(month: str) -> int:
    year, number = month.split("-")
    return int(year) * 12 + int(number) - 1


def month_at(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def shift_month(month: str, by: int) -> str:
    return month_at(month_index(month) + by)


def months_between(start: str, end: str) -> list[str]:
    return [month_at(i) for i in range(month_index(start), month_index(end) + 1)]


def parse_time(value) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# ---- money

CENT = Decimal("0.01")


def to_minor(amount) -> int:
    return int((Decimal(str(amount)) * 100).to_integral_value())


def money(minor: int | float | None) -> str:
    return f"{(Decimal(int(minor or 0)) / 100).quantize(CENT)}"


# ---- states

@dataclass
class ClientState:
    id: str
    branch_id: str
    source: str | None
    tags: list[str]
    created_at: datetime
    archived_at: datetime | None
    version: int = 0


@dataclass
class VisitState:
    seq: int
    stage_id: str
    kind: str
    position: int | None
    entered_at: datetime
    exited_at: datetime | None = None
    duration_s: float | None = None
    outcome: str | None = None  # moved_on | lost | back, once the deal left the stage
    moved_by: str | None = None
    entry_known: bool = True  # False while only the move out of the stage was seen


@dataclass
class DealState:
    id: str
    branch_id: str
    pipeline_id: str
    client_id: str | None
    owner_id: str | None
    status: str
    stage_id: str | None
    amount_minor: int
    currency: str
    created_at: datetime
    closed_at: datetime | None
    version: int = 0
    source: str | None = None  # the client's source, for the channels report
    visits: list[VisitState] = field(default_factory=list)


@dataclass
class TaskState:
    id: str
    branch_id: str
    assignee_id: str | None
    status: str
    due_at: datetime | None
    completed_at: datetime | None
    overdue: bool
    on_time: bool | None
    version: int = 0


@dataclass
class PenaltyState:
    id: str
    branch_id: str
    user_id: str
    month: str
    amount_minor: int
    currency: str
    status: str


@dataclass
class InteractionFact:
    id: str
    branch_id: str
    client_id: str
    author_id: str | None
    type: str
    occurred_at: datetime
    script_id: str | None


@dataclass
class TouchpointFact:
    id: str
    branch_id: str
    client_id: str
    source: str | None
    occurred_at: datetime
    campaign_id: str | None = None
    created_client: bool = False


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def campaign_of(utm: dict | None) -> str | None:
    """The campaign a touchpoint's UTM tags name: ``campaign`` or ``utm_campaign`` holding a campaign's id (any
    case, spaces around ignored); other values (a campaign's name in an ad system) name no campaign here."""
    for key in ("campaign", "utm_campaign"):
        value = (utm or {}).get(key)
        if isinstance(value, str) and _UUID.fullmatch(value.strip().lower()):
            return value.strip().lower()
    return None


# ---- what each record contributes


def _add(out: Contributions, table: str, key: Key, **amounts) -> None:
    row = out.get((table, key))
    if row is None:
        out[(table, key)] = amounts
        return
    for column, amount in amounts.items():
        if column in MIN_COLUMNS:
            row[column] = amount if column not in row else min(row[column], amount)
        else:
            row[column] = row.get(column, 0) + amount


def client_contributions(client: ClientState | None, out: Contributions | None = None) -> Contributions:
    """A client is new in the month it was created and archived in the month it was archived (if it still is)."""
    out = {} if out is None else out
    if client is None or client.created_at is None:
        return out
    created = month_of(client.created_at)
    archived = month_of(client.archived_at) if client.archived_at else None
    _add(out, "c_client_month", (client.branch_id, created), new=1)
    _add(out, "c_client_source", (client.branch_id, created, client.source or NONE), new=1)
    if archived:
        _add(out, "c_client_month", (client.branch_id, archived), archived=1)
    for tag in sorted(set(client.tags or [])):
        _add(out, "c_client_tag", (client.branch_id, created, tag), new=1)
        if archived:
            _add(out, "c_client_tag", (client.branch_id, archived, tag), archived=1)
    return out


def visit_outcome(from_kind: str, from_position, to_kind: str, to_position) -> str:
    """What leaving a stage for another says about it: moved on (to a later open or won stage), lost, or back."""
    if to_kind == "lost":
        return "lost"
    if to_kind in ("open", "won") and from_position is not None and to_position is not None \
            and to_position > from_position:
        return "moved_on"
    return "back"


def deal_contributions(deal: DealState | None, out: Contributions | None = None) -> Contributions:
    """Each stage visit counts in the funnel of the month it was entered, for the deal's owner (the report of
    all owners sums them: a row shared by every move would make every move wait for the one before); a visit
    after the first is a move by whoever made it; a won deal counts in the month it was won."""
    out = {} if out is None else out
    if deal is None:
        return out
    owner = deal.owner_id or NONE
    for visit in deal.visits:
        month = month_of(visit.entered_at)
        outcome = visit.outcome
        key = (deal.pipeline_id, owner, month, visit.stage_id)
        _add(out, "c_funnel", key, entered=1, moved_on=int(outcome == "moved_on"), lost=int(outcome == "lost"))
        if visit.duration_s is not None:
            _add(out, "c_funnel", key, exited=1, duration_s=visit.duration_s)
            bucket = duration_bucket(visit.duration_s)
            # histograms also for all owners at once: a median cannot be summed from per-owner medians, and
            # summing every owner's buckets would read far more rows
            for owner_key in (owner, ALL):
                _add(out, "c_duration", (deal.pipeline_id, owner_key, month, visit.stage_id, bucket),
                     n=1, duration_s=visit.duration_s)
        if visit.seq > 1 and visit.moved_by and visit.entry_known:
            _add(out, "c_activity", (deal.branch_id, month, visit.moved_by), deals_moved=1)
    if deal.status == "won" and deal.closed_at is not None:
        key = (deal.branch_id, month_of(deal.closed_at), deal.owner_id or NONE, deal.source or NONE, deal.currency)
        _add(out, "c_won", key, deals=1, amount_minor=deal.amount_minor)
    return out


def interaction_contributions(item: InteractionFact, out: Contributions | None = None) -> Contributions:
    out = {} if out is None else out
    month = month_of(item.occurred_at)
    _add(out, "c_activity", (item.branch_id, month, item.author_id or NONE),
         interactions=1, calls=int(item.type == "call"), meetings=int(item.type == "meeting"))
    if item.script_id:
        _add(out, "c_script_use", (item.branch_id, month, item.script_id, item.client_id),
             uses=1, first_used_at=item.occurred_at)
    return out


def touchpoint_contributions(item: TouchpointFact, out: Contributions | None = None) -> Contributions:
    out = {} if out is None else out
    _add(out, "c_touchpoints", (item.branch_id, month_of(item.occurred_at), item.source or NONE), touchpoints=1)
    if item.campaign_id:
        _add(out, "c_campaign_touch", (item.branch_id, month_of(item.occurred_at), item.campaign_id, item.client_id),
             touchpoints=1, new_clients=int(bool(item.created_client)), first_touch_at=item.occurred_at)
    return out


def task_contributions(task: TaskState | None, out: Contributions | None = None) -> Contributions:
    """Done on time counts in the month of completion, for whoever completed it. An overdue task counts through
    its penalty (``penalty_contributions``): for the assignee who missed the deadline, even once the task has
    been handed to someone else (an offboarding, a head's reassignment)."""
    out = {} if out is None else out
    if task is None or not task.assignee_id:
        return out
    if task.status == "done" and task.completed_at is not None and task.on_time:
        _add(out, "c_activity", (task.branch_id, month_of(task.completed_at), task.assignee_id), tasks_on_time=1)
    return out


def task_on_time(completed_at: datetime | None, due_at: datetime | None) -> bool | None:
    if completed_at is None:
        return None
    return due_at is None or completed_at <= due_at


def penalty_contributions(penalty: PenaltyState | None, out: Contributions | None = None) -> Contributions:
    out = {} if out is None else out
    if penalty is None:
        return out
    # one penalty per overdue task, against its assignee then, in the UTC month of its due_at (decision 28);
    # a waived penalty leaves the task overdue
    _add(out, "c_activity", (penalty.branch_id, penalty.month, penalty.user_id), tasks_overdue=1)
    if penalty.status != "active":
        return out
    _add(out, "c_penalty", (penalty.branch_id, penalty.month, penalty.user_id, penalty.currency),
         penalties=1, amount_minor=penalty.amount_minor)
    return out


def difference(old: Contributions, new: Contributions) -> Contributions:
    """How the counters move when a record's contributions change from ``old`` to ``new``."""
    out: Contributions = {}
    for row_key in set(old) | set(new):
        before, after = old.get(row_key, {}), new.get(row_key, {})
        delta = {}
        for column in set(before) | set(after):
            if column in MIN_COLUMNS:
                if column in after:
                    delta[column] = after[column]
                continue
            change = after.get(column, 0) - before.get(column, 0)
            if change:
                delta[column] = change
        if any(column not in MIN_COLUMNS for column in delta):
            out[row_key] = delta
    return out


def merge_into(total: Contributions, more: Contributions) -> None:
    for (table, key), amounts in more.items():
        _add(total, table, key, **amounts)


# ---- stage durations: a histogram, so a median needs no list of every visit

MINUTE = 60.0
BUCKET_RATIO = 1.02


def duration_bucket(seconds: float) -> int:
    """0 for under a minute; then buckets 2% wide (a median read from them is within 1% of the true one,
    and exact when the values in its bucket are equal)."""
    if seconds < MINUTE:
        return 0
    return 1 + int(math.log(seconds / MINUTE) / math.log(BUCKET_RATIO))


def median_from_histogram(buckets: Iterable[tuple[int, int, float]]) -> float | None:
    """Median of the durations in ``(bucket, count, sum)`` rows; each bucket stands for its mean value."""
    rows = sorted((b, n, s) for b, n, s in buckets if n)
    total = sum(n for _, n, _ in rows)
    if not total:
        return None
    middle = [(total - 1) // 2, total // 2]  # 0-based ranks of the middle value(s)
    values, seen = [], 0
    for _, n, s in rows:
        for rank in middle:
            if seen <= rank < seen + n:
                values.append(s / n)
        seen += n
    return sum(values) / len(values)


# ---- the arithmetic of the answers

DAY = 86400.0


def ratio(part, whole, places: int = 4) -> float | None:
    if not whole:
        return None
    return round(float(part) / float(whole), places)


def days(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / DAY, 3)


def roi(revenue_minor: int, spend_minor: int) -> float | None:
    """(revenue - spend) / spend; None without spend."""
    if not spend_minor:
        return None
    return round((revenue_minor - spend_minor) / spend_minor, 4)


def cost_per_client(spend_minor: int, new_clients: int) -> int | None:
    if not spend_minor or not new_clients:
        return None
    return int((Decimal(spend_minor) / new_clients).to_integral_value())


@dataclass
class CurrencyTotals:
    deals: int = 0
    amount_minor: int = 0


def split_by_currency(rows: Iterable[tuple[str, int, int]]) -> dict[str, CurrencyTotals]:
    out: dict[str, CurrencyTotals] = defaultdict(CurrencyTotals)
    for currency, deals, amount in rows:
        out[currency].deals += int(deals)
        out[currency].amount_minor += int(amount)
    return dict(out)


def main_currency(by_currency: dict[str, CurrencyTotals], preferred: str | None) -> str | None:
    """The currency a line is stated in: the plan's (or spend's) if there is one, else the largest."""
    if preferred:
        return preferred
    if not by_currency:
        return None
    return max(by_currency.items(), key=lambda item: (item[1].amount_minor, item[1].deals, item[0]))[0]


def plan_line(plan_minor: int | None, plan_currency: str | None, won: dict[str, CurrencyTotals],
              fallback_currency: str | None = None) -> dict:
    """Plan, fact and fulfilment of one line: the fact is stated in the plan's currency; deals won in other
    currencies are listed apart, never converted or summed in."""
    currency = main_currency(won, plan_currency or fallback_currency)
    in_currency = won.get(currency, CurrencyTotals()) if currency else CurrencyTotals()
    others = [
        {"currency": code, "fact": money(totals.amount_minor), "deals_won": totals.deals}
        for code, totals in sorted(won.items()) if code != currency
    ]
    return {
        "plan": money(plan_minor) if plan_minor is not None else None,
        "currency": currency,
        "fact": money(in_currency.amount_minor),
        "deals_won": in_currency.deals,
        "fulfilment": ratio(in_currency.amount_minor, plan_minor) if plan_minor is not None else None,
        "other_currencies": others,
    }
