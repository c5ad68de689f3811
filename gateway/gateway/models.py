"""The gateway's own tables: identity (branches, users) and HTTP bookkeeping."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, Float, ForeignKey, Index, Integer, LargeBinary, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crm_common.bookkeeping import OUTBOX, bookkeeping_models
from crm_common.clock import utcnow
from crm_common.columns import UtcDateTime, json_type
from crm_common.schemas import new_id


class Base(DeclarativeBase):
    pass


class Branch(Base):
    __tablename__ = "branches"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    code: Mapped[str] = mapped_column(String(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    branch_id: Mapped[str | None] = mapped_column(String(36), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # bumped when the password, role, branch or active flag changes: older tokens stop working
    token_version: Mapped[int] = mapped_column(Integer, default=1)
    # telephony: whom incoming calls are put through to (gateway/telephony.py)
    phone: Mapped[str | None] = mapped_column(String(16))
    extension: Mapped[str | None] = mapped_column(String(10))
    on_shift: Mapped[bool] = mapped_column(Boolean, default=True)
    # a head may export clients only while an administrator allows it (gateway/exports.py)
    can_export: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    __table_args__ = (Index("ix_users_created", "created_at", "id"),)


class LoginAttempts(Base):
    """Password checks counted per email and per source address in the current window (gateway/throttle.py)."""

    __tablename__ = "login_attempts"

    # "email:<email>" or "address:<ip>" (an IPv6 client counts by its /64)
    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime())


class IdempotencyRecord(Base):
    """The first response to a write sent with an Idempotency-Key, replayed for 24 hours."""

    __tablename__ = "idempotency_records"

    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[dict | None] = mapped_column(json_type())
    headers: Mapped[dict | None] = mapped_column(json_type())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)


class ApiKey(Base):
    """A key for a machine (the telephone exchange, the website): only its SHA-256 is kept (gateway/apikeys.py)."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    branch_id: Mapped[str | None] = mapped_column(String(36))
    scopes: Mapped[list] = mapped_column(json_type(), default=list)
    created_by: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_api_keys_created", "created_at", "id"),)


class Recording(Base):
    """A call's recording: where the store keeps it and what it is (the bytes never pass through the bus)."""

    __tablename__ = "recordings"

    call_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(36))
    branch_id: Mapped[str] = mapped_column(String(36))
    store_key: Mapped[str] = mapped_column(String(300))
    content_type: Mapped[str] = mapped_column(String(32))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    duration_s: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class Offboarding(Base):
    """A saga handing a leaving user's clients, open deals and open tasks to another user (gateway/offboarding.py):
    its state survives any process; a gateway holds a running one under a lease while it runs its steps."""

    __tablename__ = "offboardings"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(36))
    to_user_id: Mapped[str] = mapped_column(String(36))
    branch_id: Mapped[str | None] = mapped_column(String(36))
    requested_by: Mapped[str | None] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(8), default="running")  # running | done | failed
    step: Mapped[str | None] = mapped_column(String(8))  # clients | deals | tasks; null once finished
    clients: Mapped[int] = mapped_column(Integer, default=0)
    deals: Mapped[int] = mapped_column(Integer, default=0)
    tasks: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # step calls that failed, in a row
    error: Mapped[str | None] = mapped_column(String(1000))
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    started_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (
        Index("ix_offboardings_started", "started_at", "id"),
        Index("ix_offboardings_user", "user_id", "started_at"),
        # one running saga per user: two requests at once, one wins
        Index("uq_offboardings_running_user", "user_id", unique=True,
              postgresql_where=text("status = 'running'"), sqlite_where=text("status = 'running'")),
    )


class Export(Base):
    """A CSV export of clients (gateway/exports.py): who asked, the filter, the rows reserved against their daily cap,
    the marker rows put in the file; a gateway replica holding the lease builds the file."""

    __tablename__ = "exports"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(36))
    # the caller as it was when asking: the export sees what they saw
    role: Mapped[str] = mapped_column(String(16))
    branch_id: Mapped[str | None] = mapped_column(String(36))
    filter: Mapped[dict] = mapped_column(json_type())
    status: Mapped[str] = mapped_column(String(16))  # running, done, failed, expired
    reserved: Mapped[int] = mapped_column(Integer)  # rows counted when asked, reserved against the cap
    quota_day: Mapped[date] = mapped_column(Date)
    rows: Mapped[int | None] = mapped_column(Integer)
    markers: Mapped[list] = mapped_column(json_type(), default=list)  # [{line, id, name, phone, email}]
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (
        Index("ix_exports_created", "created_at", "id"),
        Index("ix_exports_user_created", "user_id", "created_at", "id"),
        Index("ix_exports_status", "status"),
    )


class ExportChunk(Base):
    """An export's file in pieces of at most 256 KiB, in the database so that any gateway replica serves it."""

    __tablename__ = "export_chunks"

    export_id: Mapped[str] = mapped_column(String(36), ForeignKey("exports.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ExportMarker(Base):
    """The values of an export's marker rows, as a trace looks them up (phone: its last ten digits). Kept after the
    file is deleted: a leaked copy may turn up much later."""

    __tablename__ = "export_markers"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # phone, email, client_id
    value: Mapped[str] = mapped_column(String(254), primary_key=True)
    export_id: Mapped[str] = mapped_column(String(36), ForeignKey("exports.id", ondelete="CASCADE"), primary_key=True)


class ExportQuota(Base):
    """Rows a user has exported (or has running) on a UTC day: one row per user and day, moved by single statements so
    every gateway replica sees one count."""

    __tablename__ = "export_quota"

    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    rows: Mapped[int] = mapped_column(Integer, default=0)
class AuditEntry(Base):
    """One entry of the append-only audit log, chained by hash to the one before it (gateway/auditrules.py)."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    user_id: Mapped[str | None] = mapped_column(String(36))
    branch_id: Mapped[str | None] = mapped_column(String(36))
    # read | list | create | update | archive | restore | merge | login | export | offboard
    action: Mapped[str] = mapped_column(String(32))
    ref_type: Mapped[str | None] = mapped_column(String(32))
    ref_id: Mapped[str | None] = mapped_column(String(36))
    count: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    request_id: Mapped[str | None] = mapped_column(String(100))
    address: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_audit_log_user", "user_id", "seq"), Index("ix_audit_log_branch", "branch_id", "seq"))


class AuditHead(Base):
    """The chain's head: one row (id 1), locked by the writer that appends, so replicas chain one after another."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class ClientRead(Base):
    """The clients each user read within the last hour, once each (the bulk-read window)."""

    __tablename__ = "client_reads"

    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    read_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_client_reads_user", "user_id", "read_at"), Index("ix_client_reads_at", "read_at"))


class ReadWatch(Base):
    """Per user: when the bulk-read alarm last went off, and until when their client reads are refused."""

    __tablename__ = "read_watch"

    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    alerted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    blocked_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)


(OutboxMessage,) = bookkeeping_models(Base, OUTBOX)


class RevokedToken(Base):
    """Bearer tokens ended by ``POST /auth/logout`` before they expire (gateway/auth.py); purged once expired."""

    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)  # the token's jti (a SHA-256 for older tokens)
    user_id: Mapped[str] = mapped_column(String(36), index=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
