"""The reports service's tables (its own database): its own records, the read model built from other
services' events, and the counters the reports are answered from.

- own records: ``plans`` (with their miss reasons) and ``channel_spend``: never rebuilt;
- what other services own, as their events last described it: ``r_*`` tables;
- counters shaped for the answers, moved by ``domain.difference`` of each record's contributions: ``c_*``.

Months are ``YYYY-MM`` strings (UTC); ``owner_key`` is an owner id, ``""`` for none or (in ``c_duration``)
``"*"`` for all owners; ``source`` is ``""`` when a client has none.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crm_common.bookkeeping import COMMAND_LOG, PROCESSED_EVENTS, bookkeeping_models
from crm_common.clock import utcnow
from crm_common.columns import UtcDateTime, json_type
from crm_common.schemas import new_id


class Base(DeclarativeBase):
    pass


def _id():
    return mapped_column(String(36), primary_key=True)


def _key(length: int = 36):
    return mapped_column(String(length), primary_key=True)


def _count():
    return mapped_column(BigInteger, default=0, nullable=False)


# ---- own records


class Plan(Base):
    """A sales plan for a month: a branch's (``user_id`` null) or a manager's; ``target`` makes it unique."""

    __tablename__ = "plans"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    month: Mapped[str] = mapped_column(String(7))
    target: Mapped[str] = mapped_column(String(48))  # "user:<id>" or "branch:<id>"
    branch_id: Mapped[str] = mapped_column(String(36))
    user_id: Mapped[str | None] = mapped_column(String(36))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    set_by: Mapped[str | None] = mapped_column(String(36))
    miss_category: Mapped[str | None] = mapped_column(String(16))
    miss_reason: Mapped[str | None] = mapped_column(Text)
    miss_recorded_by: Mapped[str | None] = mapped_column(String(36))
    miss_recorded_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("month", "target", name="uq_plans_month_target"),
        Index("ix_plans_month_branch", "month", "branch_id"),
    )


class ChannelSpend(Base):
    """What a branch spent on a marketing channel (a client source) in a month."""

    __tablename__ = "channel_spend"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    branch_id: Mapped[str] = mapped_column(String(36))
    source: Mapped[str] = mapped_column(String(64))
    month: Mapped[str] = mapped_column(String(7))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    set_by: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("branch_id", "source", "month", name="uq_channel_spend"),
        Index("ix_channel_spend_month", "month"),
    )


class RebuildState(Base):
    """One row while ``crm-reports rebuild`` runs: event handlers put their events back until it is done."""

    __tablename__ = "rebuild_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    running: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    summary: Mapped[dict | None] = mapped_column(json_type())


# ---- what other services own, as their events last described it


class RBranch(Base):
    __tablename__ = "r_branches"

    id: Mapped[str] = _id()
    name: Mapped[str | None] = mapped_column(String(200))
    code: Mapped[str | None] = mapped_column(String(32))


class RUser(Base):
    __tablename__ = "r_users"

    id: Mapped[str] = _id()
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    role: Mapped[str | None] = mapped_column(String(16))
    branch_id: Mapped[str | None] = mapped_column(String(36), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class RPipeline(Base):
    __tablename__ = "r_pipelines"

    id: Mapped[str] = _id()
    branch_id: Mapped[str] = mapped_column(String(36), index=True)
    name: Mapped[str | None] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer, default=0)  # 0: only known from its deals so far


class RStage(Base):
    __tablename__ = "r_stages"

    id: Mapped[str] = _id()
    pipeline_id: Mapped[str] = mapped_column(String(36), index=True)
    name: Mapped[str | None] = mapped_column(String(100))
    kind: Mapped[str | None] = mapped_column(String(8))
    position: Mapped[int | None] = mapped_column(Integer)
    removed: Mapped[bool] = mapped_column(Boolean, default=False)


class RScript(Base):
    __tablename__ = "r_scripts"

    id: Mapped[str] = _id()
    branch_id: Mapped[str | None] = mapped_column(String(36))
    title: Mapped[str | None] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer, default=0)


class RClient(Base):
    __tablename__ = "r_clients"

    id: Mapped[str] = _id()
    branch_id: Mapped[str] = mapped_column(String(36))
    source: Mapped[str | None] = mapped_column(String(64))
    tags: Mapped[list] = mapped_column(json_type(), default=list)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    archived_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    version: Mapped[int] = mapped_column(Integer, default=0)


class RDeal(Base):
    __tablename__ = "r_deals"

    id: Mapped[str] = _id()
    branch_id: Mapped[str] = mapped_column(String(36))
    pipeline_id: Mapped[str] = mapped_column(String(36))
    client_id: Mapped[str | None] = mapped_column(String(36))
    owner_id: Mapped[str | None] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(8))
    stage_id: Mapped[str | None] = mapped_column(String(36))
    amount_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    version: Mapped[int] = mapped_column(Integer, default=0)  # 0: only known from a move out of its stage
    source: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_r_deals_client", "client_id", "status", "closed_at"),)


class RVisit(Base):
    """One entry of a deal into a stage (``seq`` as in the deal's history) and how it left."""

    __tablename__ = "r_visits"

    deal_id: Mapped[str] = _key()
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    stage_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(8))
    position: Mapped[int | None] = mapped_column(Integer)
    entered_at: Mapped[datetime] = mapped_column(UtcDateTime())
    exited_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    duration_s: Mapped[float | None] = mapped_column(Float)
    outcome: Mapped[str | None] = mapped_column(String(8))
    moved_by: Mapped[str | None] = mapped_column(String(36))
    entry_known: Mapped[bool] = mapped_column(Boolean, default=True)


class RInteraction(Base):
    __tablename__ = "r_interactions"

    id: Mapped[str] = _id()
    branch_id: Mapped[str] = mapped_column(String(36))
    client_id: Mapped[str] = mapped_column(String(36))
    author_id: Mapped[str | None] = mapped_column(String(36))
    type: Mapped[str] = mapped_column(String(16))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())
    script_id: Mapped[str | None] = mapped_column(String(36))


class RTouchpoint(Base):
    __tablename__ = "r_touchpoints"

    id: Mapped[str] = _id()
    branch_id: Mapped[str] = mapped_column(String(36))
    client_id: Mapped[str] = mapped_column(String(36))
    source: Mapped[str | None] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())
    campaign_id: Mapped[str | None] = mapped_column(String(36))  # utm.campaign, when it names a campaign id
    created_client: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class RCampaign(Base):
    """A campaign as ``campaign_created`` / ``campaign_updated`` last described it (the clients service owns it)."""

    __tablename__ = "r_campaigns"

    id: Mapped[str] = _id()
    branch_id: Mapped[str] = mapped_column(String(36), index=True)
    segment_id: Mapped[str | None] = mapped_column(String(36))
    name: Mapped[str | None] = mapped_column(String(200))
    channel: Mapped[str | None] = mapped_column(String(50))
    starts_on: Mapped[str] = mapped_column(String(10))
    ends_on: Mapped[str] = mapped_column(String(10))
    budget_minor: Mapped[int | None] = mapped_column(BigInteger)
    budget_currency: Mapped[str | None] = mapped_column(String(3))
    audience: Mapped[int | None] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer, default=0)


class RTask(Base):
    __tablename__ = "r_tasks"

    id: Mapped[str] = _id()
    branch_id: Mapped[str] = mapped_column(String(36))
    assignee_id: Mapped[str | None] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    overdue: Mapped[bool] = mapped_column(Boolean, default=False)
    on_time: Mapped[bool | None] = mapped_column(Boolean)
    version: Mapped[int] = mapped_column(Integer, default=0)


class RPenalty(Base):
    __tablename__ = "r_penalties"

    id: Mapped[str] = _id()
    branch_id: Mapped[str] = mapped_column(String(36))
    user_id: Mapped[str] = mapped_column(String(36))
    month: Mapped[str] = mapped_column(String(7))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(8))


# ---- counters (primary keys in the order the reports filter them)


class CClientMonth(Base):
    __tablename__ = "c_client_month"

    branch_id: Mapped[str] = _key()
    month: Mapped[str] = _key(7)
    new: Mapped[int] = _count()
    archived: Mapped[int] = _count()


class CClientSource(Base):
    __tablename__ = "c_client_source"

    branch_id: Mapped[str] = _key()
    month: Mapped[str] = _key(7)
    source: Mapped[str] = _key(64)
    new: Mapped[int] = _count()


class CClientTag(Base):
    __tablename__ = "c_client_tag"

    branch_id: Mapped[str] = _key()
    month: Mapped[str] = _key(7)
    tag: Mapped[str] = _key(50)
    new: Mapped[int] = _count()
    archived: Mapped[int] = _count()


class CFunnel(Base):
    __tablename__ = "c_funnel"

    pipeline_id: Mapped[str] = _key()
    owner_key: Mapped[str] = _key()
    month: Mapped[str] = _key(7)
    stage_id: Mapped[str] = _key()
    entered: Mapped[int] = _count()
    moved_on: Mapped[int] = _count()
    lost: Mapped[int] = _count()
    exited: Mapped[int] = _count()
    duration_s: Mapped[float] = mapped_column(Float, default=0.0, nullable=False)


class CDuration(Base):
    """How long stage visits lasted, as a histogram (``domain.duration_bucket``), for medians."""

    __tablename__ = "c_duration"

    pipeline_id: Mapped[str] = _key()
    owner_key: Mapped[str] = _key()
    month: Mapped[str] = _key(7)
    stage_id: Mapped[str] = _key()
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = _count()
    duration_s: Mapped[float] = mapped_column(Float, default=0.0, nullable=False)


class CWon(Base):
    __tablename__ = "c_won"

    branch_id: Mapped[str] = _key()
    month: Mapped[str] = _key(7)
    owner_key: Mapped[str] = _key()
    source: Mapped[str] = _key(64)
    currency: Mapped[str] = _key(3)
    deals: Mapped[int] = _count()
    amount_minor: Mapped[int] = _count()

    __table_args__ = (Index("ix_c_won_month", "month"),)


class CActivity(Base):
    __tablename__ = "c_activity"

    branch_id: Mapped[str] = _key()
    month: Mapped[str] = _key(7)
    user_id: Mapped[str] = _key()
    calls: Mapped[int] = _count()
    meetings: Mapped[int] = _count()
    interactions: Mapped[int] = _count()
    deals_moved: Mapped[int] = _count()
    tasks_on_time: Mapped[int] = _count()
    tasks_overdue: Mapped[int] = _count()

    __table_args__ = (Index("ix_c_activity_month", "month"),)


class CPenalty(Base):
    __tablename__ = "c_penalty"

    branch_id: Mapped[str] = _key()
    month: Mapped[str] = _key(7)
    user_id: Mapped[str] = _key()
    currency: Mapped[str] = _key(3)
    penalties: Mapped[int] = _count()
    amount_minor: Mapped[int] = _count()


class CTouchpoint(Base):
    __tablename__ = "c_touchpoints"

    branch_id: Mapped[str] = _key()
    month: Mapped[str] = _key(7)
    source: Mapped[str] = _key(64)
    touchpoints: Mapped[int] = _count()


class CScriptUse(Base):
    """Uses of a script with one client in a month; distinct clients and later wins are counted from it."""

    __tablename__ = "c_script_use"

    branch_id: Mapped[str] = _key()
    month: Mapped[str] = _key(7)
    script_id: Mapped[str] = _key()
    client_id: Mapped[str] = _key()
    uses: Mapped[int] = _count()
    first_used_at: Mapped[datetime] = mapped_column(UtcDateTime())


class CCampaignTouch(Base):
    """Touchpoints of a campaign per client and month (with the first one): new clients, and the deals those
    clients won after their first touch (``repository.campaign_wins``)."""

    __tablename__ = "c_campaign_touch"

    branch_id: Mapped[str] = _key()
    month: Mapped[str] = _key(7)
    campaign_id: Mapped[str] = _key()
    client_id: Mapped[str] = _key()
    touchpoints: Mapped[int] = _count()
    new_clients: Mapped[int] = _count()
    first_touch_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_c_campaign_touch_campaign", "campaign_id", "month"),)


ProcessedEvent, CommandLog = bookkeeping_models(Base, PROCESSED_EVENTS, COMMAND_LOG)

COUNTERS = {model.__tablename__: model for model in (
    CClientMonth, CClientSource, CClientTag, CFunnel, CDuration, CWon, CActivity, CPenalty, CTouchpoint, CScriptUse,
    CCampaignTouch,
)}

# Everything a rebuild recomputes from the owning services (never the plans, spend or bookkeeping).
DERIVED = (
    RBranch, RUser, RPipeline, RStage, RScript, RClient, RDeal, RVisit, RInteraction, RTouchpoint, RTask, RPenalty,
    RCampaign, *COUNTERS.values(),
)
