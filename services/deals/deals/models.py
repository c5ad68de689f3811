"""The deals service's tables: pipelines and stages, deals, their stage history, the sales book."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crm_common.bookkeeping import bookkeeping_models
from crm_common.clock import utcnow
from crm_common.columns import UtcDateTime
from crm_common.schemas import new_id
from crm_common.transfers import owner_transfer_model


class Base(DeclarativeBase):
    pass


class Pipeline(Base):
    __tablename__ = "pipelines"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    branch_id: Mapped[str] = mapped_column(String(36), index=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}


class Stage(Base):
    """A step of a pipeline. Removed stages are kept (removed_at) so history still names them."""

    __tablename__ = "stages"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    pipeline_id: Mapped[str] = mapped_column(ForeignKey("pipelines.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(8))
    position: Mapped[int] = mapped_column(Integer)
    max_days: Mapped[float | None] = mapped_column(Float)
    script_id: Mapped[str | None] = mapped_column(String(36))
    removed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class Deal(Base):
    __tablename__ = "deals"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    branch_id: Mapped[str] = mapped_column(String(36))
    client_id: Mapped[str] = mapped_column(String(36))
    pipeline_id: Mapped[str] = mapped_column(ForeignKey("pipelines.id"))
    stage_id: Mapped[str] = mapped_column(ForeignKey("stages.id"))
    status: Mapped[str] = mapped_column(String(8), default="open")
    title: Mapped[str] = mapped_column(String(200))
    # money in minor units (kopecks, cents): exact on every database
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    owner_id: Mapped[str | None] = mapped_column(String(36))
    stage_entered_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # when the deal becomes stuck in its current stage (entered + max_days); null if the stage is untimed
    stage_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # set when deal_stuck was raised for the current stage entry; cleared on every move
    stuck_raised_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    lost_reason: Mapped[str | None] = mapped_column(String(500))
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        Index("ix_deals_branch_created", "branch_id", "created_at", "id"),
        Index("ix_deals_stage_owner_created", "stage_id", "owner_id", "created_at", "id"),
        Index("ix_deals_owner_created", "owner_id", "created_at", "id"),
        Index("ix_deals_client", "client_id", "status"),
        Index("ix_deals_pipeline_created", "pipeline_id", "created_at", "id"),
        Index("ix_deals_created", "created_at", "id"),
        Index(
            "ix_deals_due", "stage_due_at",
            postgresql_where=text("status = 'open' AND stuck_raised_at IS NULL"),
            sqlite_where=text("status = 'open' AND stuck_raised_at IS NULL"),
        ),
        Index(
            "ix_deals_stuck", "stage_due_at",
            postgresql_where=text("status = 'open'"), sqlite_where=text("status = 'open'"),
        ),
    )


class StageVisit(Base):
    """One entry of a deal into a stage, with when it left: the deal's stage history, never rewritten."""

    __tablename__ = "stage_history"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    deal_id: Mapped[str] = mapped_column(ForeignKey("deals.id"))
    pipeline_id: Mapped[str] = mapped_column(String(36))
    stage_id: Mapped[str] = mapped_column(String(36))
    stage_name: Mapped[str] = mapped_column(String(100))
    stage_kind: Mapped[str] = mapped_column(String(8))
    from_stage_id: Mapped[str | None] = mapped_column(String(36))
    entered_at: Mapped[datetime] = mapped_column(UtcDateTime())
    exited_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    time_spent_s: Mapped[float | None] = mapped_column(Float)
    moved_by: Mapped[str | None] = mapped_column(String(36))
    lost_reason: Mapped[str | None] = mapped_column(String(500))
    seq: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_stage_history_deal", "deal_id", "seq"),
        Index("ix_stage_history_stage", "stage_id", "entered_at"),
    )


class Script(Base):
    """A sales script of the branch's sales book; every change makes a new version."""

    __tablename__ = "scripts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    branch_id: Mapped[str] = mapped_column(String(36), index=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    stage_id: Mapped[str | None] = mapped_column(String(36), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class ScriptVersion(Base):
    __tablename__ = "script_versions"

    script_id: Mapped[str] = mapped_column(ForeignKey("scripts.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    stage_id: Mapped[str | None] = mapped_column(String(36))
    author_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


OutboxMessage, ProcessedEvent, CommandLog = bookkeeping_models(Base)
OwnerTransfer = owner_transfer_model(Base)  # the deals step of each offboarding (crm_common/transfers.py)
