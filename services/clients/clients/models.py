"""The clients service's tables (its own database; no other service reads them)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, event, text, true
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from clients.domain import name_key
from crm_common.bookkeeping import bookkeeping_models
from crm_common.clock import utcnow
from crm_common.columns import UtcDateTime, json_type
from crm_common.schemas import new_id
from crm_common.transfers import owner_transfer_model


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
    # the name as likely duplicates are matched (see domain.name_key); kept by the mapper events below
    name_key: Mapped[str] = mapped_column(String(200), default="")
    archived_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # a client merged into another one is a redirect to it: left out of lists, refused for writes
    merged_into: Mapped[str | None] = mapped_column(String(36))
    merged_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # the client's open deals as the deals service's events tell them (client_deals), for segments; written by a
    # plain UPDATE that leaves the version alone: it is the deals service's fact, not an edit of the client
    open_deals: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # the newest interaction's time, kept by the database itself (LAST_INTERACTION_TRIGGERS below) for a segment's
    # no_interaction_since; like open_deals, not an edit of the client
    last_interaction_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        Index("ix_clients_branch_created", "branch_id", "created_at", "id"),
        Index("ix_clients_branch_owner_created", "branch_id", "owner_id", "created_at", "id"),
        Index("ix_clients_created", "created_at", "id"),
        Index("ix_clients_branch_name_key", "branch_id", "name_key"),
        Index(
            "ix_clients_search_trgm", "search_text",
            postgresql_using="gin", postgresql_ops={"search_text": "gin_trgm_ops"},
        ).ddl_if(dialect="postgresql"),
        Index(
            "ix_clients_tags", "tags", postgresql_using="gin", postgresql_ops={"tags": "jsonb_path_ops"}
        ).ddl_if(dialect="postgresql"),
        # segments (decisions.md 57): the active clients of a branch, and custom fields by containment
        Index("ix_clients_active_segment", "branch_id", "kind", "created_at", "owner_id", "source", "open_deals", "id",
              postgresql_where=text("archived_at IS NULL AND merged_into IS NULL"),
              sqlite_where=text("archived_at IS NULL AND merged_into IS NULL")),
        # counts over most of a branch read these narrow ones, index only (decisions.md 74): the whole branch (one
        # key, deduplicated: a few hundred kB for 100,000 clients), and by open deals and creation
        Index("ix_clients_active_branch", "branch_id", postgresql_where=text("archived_at IS NULL AND merged_into IS NULL"),
              sqlite_where=text("archived_at IS NULL AND merged_into IS NULL")),
        Index("ix_clients_active_open_created", "branch_id", "open_deals", "created_at", "id",
              postgresql_where=text("archived_at IS NULL AND merged_into IS NULL"),
              sqlite_where=text("archived_at IS NULL AND merged_into IS NULL")),
        Index("ix_clients_active_open_silence", "branch_id", "open_deals", "last_interaction_at",
              postgresql_where=text("archived_at IS NULL AND merged_into IS NULL"),
              sqlite_where=text("archived_at IS NULL AND merged_into IS NULL")),
        Index(
            "ix_clients_custom_fields", "custom_fields", postgresql_using="gin",
            postgresql_ops={"custom_fields": "jsonb_path_ops"},
        ).ddl_if(dialect="postgresql"),
    )

    @property
    def archived(self) -> bool:
        return self.archived_at is not None

    @property
    def merged(self) -> bool:
        return self.merged_into is not None


@event.listens_for(Client, "before_insert")
@event.listens_for(Client, "before_update")
def _keep_name_key(_mapper, _connection, client: Client) -> None:
    client.name_key = name_key(client.name, client.kind)


class ClientContact(Base):
    """One phone or email of a client. At most one client of a branch claims a value (the partial unique
    index): ``POST /clients`` refuses a second one, touchpoints find the claimer. A client created on purpose
    as a duplicate (an import with ``create_anyway``) or given a contact someone else claims (a merge) lists
    it unclaimed, so the duplicate can still be found and merged."""

    __tablename__ = "client_contacts"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    branch_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(8))
    value: Mapped[str] = mapped_column(String(254))
    claimed: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())

    __table_args__ = (
        Index(
            "uq_contact_claimed", "branch_id", "kind", "value", unique=True,
            postgresql_where=text("claimed"), sqlite_where=text("claimed"),
        ),
        Index("ix_contact_value", "branch_id", "kind", "value"),
    )


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

    # a client's interactions by time (the timeline; the newest one, for clients.last_interaction_at)
    __table_args__ = (Index("ix_interactions_client_time", "client_id", "occurred_at"),)


# clients.last_interaction_at follows the client's interactions whatever writes them (a logged interaction, a
# call's ringing, a merge moving them, a bulk load): an interaction added moves it forward, one moved or deleted
# has it read again from the client's interactions (ix_interactions_client_time). The migration 0008 holds a copy.
_NEWEST = "(SELECT max(occurred_at) FROM interactions WHERE client_id = {row}.client_id)"
LAST_INTERACTION_TRIGGERS = {
    "postgresql": [
        f"""CREATE FUNCTION clients_last_interaction() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    UPDATE clients SET last_interaction_at = greatest(last_interaction_at, NEW.occurred_at)
     WHERE id = NEW.client_id AND last_interaction_at IS DISTINCT FROM greatest(last_interaction_at, NEW.occurred_at);
    RETURN NULL;
  END IF;
  IF TG_OP = 'UPDATE' THEN
    UPDATE clients SET last_interaction_at = {_NEWEST.format(row="NEW")} WHERE id = NEW.client_id;
  END IF;
  UPDATE clients SET last_interaction_at = {_NEWEST.format(row="OLD")} WHERE id = OLD.client_id;
  RETURN NULL;
END $$""",
        "CREATE TRIGGER interactions_last_interaction AFTER INSERT OR DELETE OR UPDATE OF client_id, occurred_at "
        "ON interactions FOR EACH ROW EXECUTE FUNCTION clients_last_interaction()",
    ],
    "sqlite": [
        "CREATE TRIGGER interactions_last_interaction_insert AFTER INSERT ON interactions BEGIN "
        f"UPDATE clients SET last_interaction_at = {_NEWEST.format(row='NEW')} WHERE id = NEW.client_id; END",
        "CREATE TRIGGER interactions_last_interaction_update AFTER UPDATE OF client_id, occurred_at ON interactions "
        f"BEGIN UPDATE clients SET last_interaction_at = {_NEWEST.format(row='NEW')} WHERE id = NEW.client_id; "
        f"UPDATE clients SET last_interaction_at = {_NEWEST.format(row='OLD')} WHERE id = OLD.client_id; END",
        "CREATE TRIGGER interactions_last_interaction_delete AFTER DELETE ON interactions BEGIN "
        f"UPDATE clients SET last_interaction_at = {_NEWEST.format(row='OLD')} WHERE id = OLD.client_id; END",
    ],
}


@event.listens_for(Interaction.__table__, "after_create")
def _create_last_interaction_triggers(table, connection, **_kw) -> None:
    for statement in LAST_INTERACTION_TRIGGERS.get(connection.dialect.name, []):
        connection.exec_driver_sql(statement)


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


class Import(Base):
    """A CSV import: uploaded by the gateway in chunks (``uploading``), then processed in batches by one
    replica at a time (``queued`` → ``running`` → ``done``, or ``failed``). ``last_row`` is the last row
    whose outcome is committed: a crash continues after it."""

    __tablename__ = "imports"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    branch_id: Mapped[str] = mapped_column(String(36))
    created_by: Mapped[str] = mapped_column(String(36))
    created_by_role: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="uploading")
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    on_duplicate: Mapped[str] = mapped_column(String(16), default="skip")
    file_name: Mapped[str | None] = mapped_column(String(255))
    mapping: Mapped[dict] = mapped_column(json_type(), default=dict)
    # the branch's active managers when the import was started, for rows without an owner (round robin)
    managers: Mapped[list] = mapped_column(json_type(), default=list)
    total: Mapped[int] = mapped_column(Integer, default=0)
    rows_received: Mapped[int] = mapped_column(Integer, default=0)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    last_row: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    merged: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    rows_with_errors: Mapped[int] = mapped_column(Integer, default=0)
    errors_count: Mapped[int] = mapped_column(Integer, default=0)
    # the replica processing it and until when its claim holds (renewed every batch)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    failures: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (
        Index("ix_imports_status", "status", "created_at"),
        Index("ix_imports_branch_created", "branch_id", "created_at", "id"),
        Index("ix_imports_created", "created_at", "id"),
    )


class ImportRow(Base):
    """One row of an imported file as the gateway mapped it (see ``clients/import_rules.py``)."""

    __tablename__ = "import_rows"

    import_id: Mapped[str] = mapped_column(ForeignKey("imports.id", ondelete="CASCADE"), primary_key=True)
    row_no: Mapped[int] = mapped_column(Integer, primary_key=True)  # as in the file: the header is row 1
    data: Mapped[dict] = mapped_column(json_type())


class ImportOutcome(Base):
    """What became of a row: written (not updated into ``import_rows``) in the batch that decided it."""

    __tablename__ = "import_outcomes"

    import_id: Mapped[str] = mapped_column(ForeignKey("imports.id", ondelete="CASCADE"), primary_key=True)
    row_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(8))  # created | merged | skipped | error
    client_id: Mapped[str | None] = mapped_column(String(36))
    errors: Mapped[list | None] = mapped_column(json_type())  # [{field, message}]
    note: Mapped[str | None] = mapped_column(String(300))

    __table_args__ = (
        Index("ix_import_outcomes_errors", "import_id", "row_no", postgresql_where=text("status = 'error'"),
              sqlite_where=text("status = 'error'")),
    )


class ImportContact(Base):
    """The normalised phones and emails of an import's processed rows, first holder only: a later row with
    one of them is a duplicate within the file (found even in a dry run, which creates no client)."""

    __tablename__ = "import_contacts"

    import_id: Mapped[str] = mapped_column(ForeignKey("imports.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    value: Mapped[str] = mapped_column(String(254), primary_key=True)
    row_no: Mapped[int] = mapped_column(Integer)
    client_id: Mapped[str | None] = mapped_column(String(36))
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


class ClientDeal(Base):
    """The clients service's copy of each deal's state, from the deals service's events (never asked over RPC):
    what a segment's ``has_open_deal`` reads. A snapshot replaces the row only if it is at least as new."""

    __tablename__ = "client_deals"

    deal_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(8))
    version: Mapped[int] = mapped_column(Integer, default=0)  # 0: known from the timeline only (migration 0005)

    __table_args__ = (
        Index("ix_client_deals_open", "client_id", postgresql_where=text("status = 'open'"),
              sqlite_where=text("status = 'open'")),
    )


class Segment(Base):
    """A saved filter over a branch's clients; its members are computed when asked (``segment_queries``)."""

    __tablename__ = "segments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    branch_id: Mapped[str] = mapped_column(String(36))
    name: Mapped[str] = mapped_column(String(200))
    filter: Mapped[dict] = mapped_column(json_type(), default=dict)
    created_by: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (Index("ix_segments_branch_created", "branch_id", "created_at", "id"),
                      Index("ix_segments_created", "created_at", "id"))


class Campaign(Base):
    """A marketing activity planned for a segment; ``audience`` is the segment's size in its branch when created."""

    __tablename__ = "campaigns"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    branch_id: Mapped[str] = mapped_column(String(36))
    segment_id: Mapped[str] = mapped_column(ForeignKey("segments.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(50))
    starts_on: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD
    ends_on: Mapped[str] = mapped_column(String(10))
    budget_minor: Mapped[int | None] = mapped_column(BigInteger)
    budget_currency: Mapped[str | None] = mapped_column(String(3))
    message: Mapped[str | None] = mapped_column(Text)
    audience: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (Index("ix_campaigns_branch_created", "branch_id", "created_at", "id"),
                      Index("ix_campaigns_created", "created_at", "id"))


OutboxMessage, ProcessedEvent, CommandLog = bookkeeping_models(Base)
OwnerTransfer = owner_transfer_model(Base)  # the clients step of each offboarding (crm_common/transfers.py)
Index("ix_clients_owner", Client.owner_id)
