"""The tables every service keeps for reliable messaging, declared once.

- ``outbox``: events written in the transaction that caused them, relayed to the bus afterwards
  (``crm_common.outbox``);
- ``processed_events``: ids of events a service has handled, so a redelivered event changes nothing
  (``WorkerDatabase.first_delivery``);
- ``command_log``: results of writes under a request's key, so a retried or redelivered write
  returns its first result instead of running again (``WorkerDatabase.write``).

A service's models declare them on its own ``Base`` in one line::

    OutboxMessage, ProcessedEvent, CommandLog = bookkeeping_models(Base)

and its first migration creates them with ``create_bookkeeping_tables(op)``.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from crm_common.clock import utcnow
from crm_common.columns import UtcDateTime

OUTBOX, PROCESSED_EVENTS, COMMAND_LOG = "outbox", "processed_events", "command_log"
ALL_TABLES = (OUTBOX, PROCESSED_EVENTS, COMMAND_LOG)


class OutboxMixin:
    """Events waiting to be relayed to RabbitMQ, written in the transaction that caused them."""

    __tablename__ = OUTBOX

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict] = mapped_column(sa.JSON())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)


class ProcessedEventMixin:
    """Ids of events this service has handled, so a redelivered event changes nothing."""

    __tablename__ = PROCESSED_EVENTS

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64))
    handled_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class CommandLogMixin:
    """Results of writes made under a request's key, so a retried command returns them instead of
    writing again (the key reaches services in the call's context data)."""

    __tablename__ = COMMAND_LOG

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    result: Mapped[dict | list | None] = mapped_column(sa.JSON())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)


MIXINS = {
    OUTBOX: ("OutboxMessage", OutboxMixin),
    PROCESSED_EVENTS: ("ProcessedEvent", ProcessedEventMixin),
    COMMAND_LOG: ("CommandLog", CommandLogMixin),
}


def bookkeeping_models(base, *tables: str) -> tuple[type, ...]:
    """Mapped classes of the bookkeeping tables on a service's declarative ``base``, in the order asked
    (all three by default): ``OutboxMessage, ProcessedEvent, CommandLog = bookkeeping_models(Base)``."""
    models = []
    for table in tables or ALL_TABLES:
        class_name, mixin = MIXINS[table]
        model = type(class_name, (mixin, base), {"__module__": base.__module__})
        if table == OUTBOX:
            unpublished_index(model)
        models.append(model)
    return tuple(models)


UNPUBLISHED_INDEX = "ix_outbox_unpublished"


def unpublished_index(outbox) -> sa.Index:
    """The relay asks for the oldest unpublished rows (``WHERE published_at IS NULL ORDER BY id``); published rows
    stay a week, and an outbox that wrote an import's or a scan's events holds hundreds of thousands of them.
    Without this partial index the query read every published row first (0.5 s per batch of 200 at 300,000)."""
    return sa.Index(UNPUBLISHED_INDEX, outbox.id, postgresql_where=outbox.published_at.is_(None),
                    sqlite_where=outbox.published_at.is_(None))


def create_unpublished_index(op) -> None:
    """In a migration: the outbox's ``ix_outbox_unpublished`` (``create_bookkeeping_tables`` makes it for a new
    service; a service whose first migration is older adds it with this, a no-op where it exists)."""
    where = sa.text("published_at IS NULL")
    op.create_index(UNPUBLISHED_INDEX, OUTBOX, ["id"], unique=False, postgresql_where=where, sqlite_where=where,
                    if_not_exists=True)


def drop_unpublished_index(op) -> None:
    op.drop_index(UNPUBLISHED_INDEX, table_name=OUTBOX, if_exists=True)


def model_for(base, table: str):
    """The mapped class of ``table`` among ``base``'s models, or None."""
    for mapper in base.registry.mappers:
        if getattr(mapper.class_, "__tablename__", None) == table:
            return mapper.class_
    return None


def claim_events(session, model, events: list[tuple[str, str]]) -> set[str]:
    """Record many ``(event_id, event_type)`` as handled in one query and one insert; the ids among them that
    had not been handled before (each once, however often it is listed). A duplicate that another
    transaction records at the same moment makes the flush raise ``IntegrityError``: the caller's
    transaction is then to be rolled back as a whole."""
    listed = dict(events)
    if not listed:
        return set()
    seen = set(session.scalars(sa.select(model.event_id).where(model.event_id.in_(list(listed)))))
    new = {event_id: event_type for event_id, event_type in listed.items() if event_id not in seen}
    session.add_all(model(event_id=event_id, event_type=event_type) for event_id, event_type in new.items())
    session.flush()
    return set(new)


def create_bookkeeping_tables(op, *tables: str) -> None:
    """In a service's first migration: create the bookkeeping tables as the mixins above declare them."""
    tables = tables or ALL_TABLES
    if OUTBOX in tables:
        op.create_table(
            OUTBOX,
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("event_id", sa.String(length=36), nullable=False),
            sa.Column("event_type", sa.String(length=64), nullable=False),
            sa.Column("payload", sa.JSON(), nullable=False),
            sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
            sa.Column("published_at", UtcDateTime(timezone=True), nullable=True),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("event_id"),
        )
        op.create_index("ix_outbox_published_at", OUTBOX, ["published_at"], unique=False)
        create_unpublished_index(op)
    if PROCESSED_EVENTS in tables:
        op.create_table(
            PROCESSED_EVENTS,
            sa.Column("event_id", sa.String(length=36), nullable=False),
            sa.Column("event_type", sa.String(length=64), nullable=False),
            sa.Column("handled_at", UtcDateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("event_id"),
        )
    if COMMAND_LOG in tables:
        op.create_table(
            COMMAND_LOG,
            sa.Column("key", sa.String(length=400), nullable=False),
            sa.Column("result", sa.JSON(), nullable=True),
            sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("key"),
        )
        op.create_index("ix_command_log_created_at", COMMAND_LOG, ["created_at"], unique=False)


def drop_bookkeeping_tables(op, *tables: str) -> None:
    for table in reversed(tables or ALL_TABLES):
        op.drop_table(table)
