"""The webhooks service's tables: webhooks, one delivery per event and webhook, and every attempt made."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy import text as sql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crm_common.bookkeeping import bookkeeping_models
from crm_common.clock import utcnow
from crm_common.columns import UtcDateTime, json_type
from crm_common.schemas import new_id


class Base(DeclarativeBase):
    pass


def _deliverable():
    return sql("active AND failing_since IS NULL")


class Webhook(Base):
    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    branch_id: Mapped[str | None] = mapped_column(String(36))  # null: every branch's events
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list] = mapped_column(json_type())
    secret: Mapped[str] = mapped_column(Text)  # sealed (webhooks.secrets): never the secret itself
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failing_since: Mapped[datetime | None] = mapped_column(UtcDateTime())
    failure_reason: Mapped[str | None] = mapped_column(String(1000))
    created_by: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    # when its first pending delivery (the only one that may be sent: order per webhook) is due; null: none
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # a worker sending its delivery holds the webhook until then (a crashed worker's lease runs out)
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    lease_token: Mapped[str | None] = mapped_column(String(36))

    __table_args__ = (
        Index("ix_webhooks_created", "created_at", "id"),
        # what the delivery workers look for: webhooks that may deliver, by due time
        Index("ix_webhooks_due", "next_attempt_at", postgresql_where=_deliverable(), sqlite_where=_deliverable()),
    )


class Delivery(Base):
    """One event for one webhook, with every attempt to send it."""

    __tablename__ = "deliveries"

    # the order of deliveries per webhook; BIGINT on PostgreSQL, SQLite's INTEGER rowid
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True, default=new_id)
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(36))
    event_type: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())
    data: Mapped[dict] = mapped_column(json_type())  # the event's payload, sent as the body's data
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending | delivered | failed
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)  # failed attempts in a row in its retry period
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # the start of its retry period: its first attempt (again after the webhook is re-activated)
    first_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # delivered or given up
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("event_id", "webhook_id", name="uq_deliveries_event_webhook"),
        Index("ix_deliveries_webhook", "webhook_id", "seq"),
        Index("ix_deliveries_pending", "webhook_id", "seq", postgresql_where=sql("status = 'pending'"),
              sqlite_where=sql("status = 'pending'")),
        Index("ix_deliveries_finished", "finished_at"),
    )


class Attempt(Base):
    __tablename__ = "delivery_attempts"

    delivery_seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("deliveries.seq", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    duration_ms: Mapped[float] = mapped_column(Float)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(1000))


OutboxMessage, ProcessedEvent, CommandLog = bookkeeping_models(Base)
