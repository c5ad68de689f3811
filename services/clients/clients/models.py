"""The clients service's tables (its own database; no other service reads them)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crm_common.bookkeeping import bookkeeping_models
from crm_common.clock import utcnow
from crm_common.columns import UtcDateTime, json_type
from crm_common.schemas import new_id


class Base(DeclarativeBase):
    pass


class Client(Base):
    __tablename__ = "clients"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    branch_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    owner_id: Mapped[str | None] = mapped_column(String(36))
    source: Mapped[str | None] = mapped_column(String(64))
    phones: Mapped[list] = mapped_column(json_type(), default=list)
    emails: Mapped[list] = mapped_column(json_type(), default=list)
    tags: Mapped[list] = mapped_column(json_type(), default=list)
    custom_fields: Mapped[dict] = mapped_column(json_type(), default=dict)
    search_text: Mapped[str] = mapped_column(Text, default="")
    archived_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        Index("ix_clients_branch_created", "branch_id", "created_at", "id"),
        Index("ix_clients_branch_owner_created", "branch_id", "owner_id", "created_at", "id"),
        Index("ix_clients_created", "created_at", "id"),
        Index(
            "ix_clients_search_trgm", "search_text",
            postgresql_using="gin", postgresql_ops={"search_text": "gin_trgm_ops"},
        ).ddl_if(dialect="postgresql"),
        Index(
            "ix_clients_tags", "tags", postgresql_using="gin", postgresql_ops={"tags": "jsonb_path_ops"}
        ).ddl_if(dialect="postgresql"),
    )

    @property
    def archived(self) -> bool:
        return self.archived_at is not None


class ClientContact(Base):
    """One phone or email of a client; unique per branch, which is what makes duplicates impossible."""

    __tablename__ = "client_contacts"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    branch_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(8))
    value: Mapped[str] = mapped_column(String(254))

    __table_args__ = (UniqueConstraint("branch_id", "kind", "value", name="uq_contact_per_branch"),)


class Interaction(Base):
    __tablename__ = "interactions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    branch_id: Mapped[str] = mapped_column(String(36))
    type: Mapped[str] = mapped_column(String(16))
    direction: Mapped[str | None] = mapped_column(String(3))
    text: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())
    duration_s: Mapped[int | None] = mapped_column(Integer)
    script_id: Mapped[str | None] = mapped_column(String(36), index=True)
    author_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Touchpoint(Base):
    __tablename__ = "touchpoints"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    branch_id: Mapped[str] = mapped_column(String(36))
    channel: Mapped[str] = mapped_column(String(50))
    name: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(40))
    email: Mapped[str | None] = mapped_column(String(254))
    message: Mapped[str | None] = mapped_column(Text)
    utm: Mapped[dict] = mapped_column(json_type(), default=dict)
    created_client: Mapped[bool] = mapped_column(default=False)
    recorded_by: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class TimelineEntry(Base):
    """Everything that happened with a client, newest first: its own records and other services' events."""

    __tablename__ = "timeline_entries"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    type: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ref_id: Mapped[str | None] = mapped_column(String(36))
    actor_id: Mapped[str | None] = mapped_column(String(36))
    data: Mapped[dict] = mapped_column(json_type(), default=dict)
    source_event_id: Mapped[str | None] = mapped_column(String(36), unique=True)

    __table_args__ = (Index("ix_timeline_client_time", "client_id", "occurred_at", "id"),)


class RoundRobinCursor(Base):
    """The manager who got the last new client of a branch, so the next one goes to the one after."""

    __tablename__ = "round_robin"

    branch_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    last_owner_id: Mapped[str | None] = mapped_column(String(36))


class Call(Base):
    """A telephone call: one interaction on the client's timeline (same id), changed by the exchange's events."""

    __tablename__ = "calls"

    id: Mapped[str] = mapped_column(ForeignKey("interactions.id", ondelete="CASCADE"), primary_key=True)
    branch_id: Mapped[str] = mapped_column(String(36))
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    external_id: Mapped[str] = mapped_column(String(100))  # the exchange's call_id
    direction: Mapped[str] = mapped_column(String(3))
    from_number: Mapped[str] = mapped_column(String(40))
    to_number: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    duration_s: Mapped[int | None] = mapped_column(Integer)
    user_id: Mapped[str | None] = mapped_column(String(36))
    route_user_id: Mapped[str | None] = mapped_column(String(36))
    route_phone: Mapped[str | None] = mapped_column(String(40))
    route_extension: Mapped[str | None] = mapped_column(String(20))
    client_created: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    __table_args__ = (UniqueConstraint("branch_id", "external_id", name="uq_calls_branch_external"),
                      Index("ix_calls_external", "external_id"))


class CallEvent(Base):
    """Each event of a call once: the exchange may send an event again, and it changes nothing the second time."""

    __tablename__ = "call_events"

    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True)
    event: Mapped[str] = mapped_column(String(16), primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


OutboxMessage, ProcessedEvent, CommandLog = bookkeeping_models(Base)
