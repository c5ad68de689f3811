"""The backup catalogue: backups, the database each captured (parts), their off-site copies and their
verifications; a lease per scheduled tick; facts about the installation. No other service's tables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crm_common.bookkeeping import bookkeeping_models
from crm_common.clock import utcnow
from crm_common.columns import UtcDateTime, json_type
from crm_common.schemas import new_id


class Base(DeclarativeBase):
    pass


class Backup(Base):
    """One backup: an encrypted archive of every database at one moment."""

    __tablename__ = "backups"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    status: Mapped[str] = mapped_column(String(16))  # running | done | failed
    trigger: Mapped[str] = mapped_column(String(16))  # manual | schedule
    # the scheduled tick this backup is for: unique, so two replicas cannot both take a tick
    tick: Mapped[datetime | None] = mapped_column(UtcDateTime(), unique=True)
    requested_by: Mapped[str | None] = mapped_column(String(36))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    file_name: Mapped[str | None] = mapped_column(String(200))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    key_id: Mapped[str | None] = mapped_column(String(32))
    verified: Mapped[bool | None] = mapped_column(Boolean)
    verified_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    error: Mapped[str | None] = mapped_column(Text)
    manifest: Mapped[dict | None] = mapped_column(json_type())

    __table_args__ = (
        # at most one backup runs at a time, whoever started it (a replica's timer, the API, crm-backup)
        Index("ix_backups_one_running", "status", unique=True,
              postgresql_where=text("status = 'running'"), sqlite_where=text("status = 'running'")),
        Index("ix_backups_started", "started_at", "id"),
    )


class BackupPart(Base):
    """One database inside a backup: its dump's size and sha256, the rows and checksum of each table."""

    __tablename__ = "backup_parts"

    backup_id: Mapped[str] = mapped_column(ForeignKey("backups.id", ondelete="CASCADE"), primary_key=True)
    service: Mapped[str] = mapped_column(String(64), primary_key=True)
    engine: Mapped[str] = mapped_column(String(16))  # postgresql | sqlite
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    tables: Mapped[dict] = mapped_column(json_type())  # {table: rows}
    checksums: Mapped[dict] = mapped_column(json_type())  # {table: content checksum}


class BackupCopy(Base):
    """The archive's copy on one off-site target."""

    __tablename__ = "backup_copies"

    backup_id: Mapped[str] = mapped_column(ForeignKey("backups.id", ondelete="CASCADE"), primary_key=True)
    target: Mapped[str] = mapped_column(String(500), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # running | done | failed
    error: Mapped[str | None] = mapped_column(Text)
    copied_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class Verification(Base):
    """One restore test of a backup into scratch databases."""

    __tablename__ = "verifications"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    backup_id: Mapped[str] = mapped_column(ForeignKey("backups.id", ondelete="CASCADE"), index=True)
    trigger: Mapped[str] = mapped_column(String(16))  # schedule | manual | drill
    status: Mapped[str] = mapped_column(String(16))  # running | passed | failed
    started_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    error: Mapped[str | None] = mapped_column(Text)
    mismatches: Mapped[list | None] = mapped_column(json_type())

    __table_args__ = (
        Index("ix_verifications_one_running", "status", unique=True,
              postgresql_where=text("status = 'running'"), sqlite_where=text("status = 'running'")),
    )


class Installation(Base):
    """Facts about this installation, one row per key (``first_started_at``: when the backup service first
    ran, from which a new installation's backups are judged stale)."""

    __tablename__ = "installation"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


OutboxMessage, ProcessedEvent, CommandLog = bookkeeping_models(Base)

