"""SQLAlchemy 2 for nameko services: engines, the ``Database`` dependency provider, shared columns.

``Database(Base)`` gives each worker ``self.db`` with a lazily opened session, ``emit()`` to write an
event into the transactional outbox in the same transaction as the data, and ``transaction()``.
PostgreSQL goes through psycopg2 made green by psycogreen, so workers wait on the database
concurrently instead of one at a time; SQLite runs in WAL mode with a busy timeout.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from nameko.extensions import DependencyProvider
from sqlalchemy import DateTime, String, create_engine, event, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import JSON, TypeDecorator

from crm_common.config import Settings

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no offset, so we add it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UtcDateTime column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def json_type():
    from sqlalchemy.dialects.postgresql import JSONB

    return JSON().with_variant(JSONB(), "postgresql")


_green_patched = False


def make_green() -> None:
    """Let psycopg2 yield to other greenthreads while it waits on the server."""
    global _green_patched
    if not _green_patched:
        from psycogreen.eventlet import patch_psycopg

        patch_psycopg()
        _green_patched = True


def create_engine_for(url: str, pool_size: int = 12, autocommit: bool = False) -> Engine:
    """An engine for one service database; ``autocommit`` for the read-only engine (see ``reader``).

    The autocommit engine has its own pool, so its connections are switched to autocommit once,
    when they are opened, not on every checkout and checkin.
    """
    parsed = make_url(url)
    options = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **options)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    make_green()
    return create_engine(
        # no pre-ping: it costs a round trip per request; a connection found dead fails that request
        # (503) and SQLAlchemy then drops every pooled connection of the lost server
        url, pool_size=pool_size, max_overflow=pool_size // 3, pool_recycle=1800, **options
    )


def ensure_database(url: str) -> bool:
    """Create the service's PostgreSQL database (or SQLite folder) if missing. True if created."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        return False
    name = parsed.database
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            if exists:
                return False
            try:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            except Exception as exc:  # another replica created it first
                if "already exists" in str(exc):
                    return False
                raise
            return True
    finally:
        admin.dispose()


def drop_database(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and Path(parsed.database).exists():
            for suffix in ("", "-wal", "-shm"):
                Path(parsed.database + suffix).unlink(missing_ok=True)
        return
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
    finally:
        admin.dispose()


class OutboxMixin:
    """Events waiting to be relayed to RabbitMQ, written in the transaction that caused them."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict] = mapped_column(JSON())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)


class ProcessedEventMixin:
    """Ids of events this service has handled, so a redelivered event changes nothing."""

    __tablename__ = "processed_events"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64))
    handled_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class CommandLogMixin:
    """Results of writes made under an idempotency key, so a retried command returns them instead of
    writing again (the gateway's Idempotency-Key reaches services in the call's context data)."""

    __tablename__ = "command_log"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    result: Mapped[dict | list | None] = mapped_column(JSON())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)


IDEMPOTENCY_CONTEXT_KEY = "idempotency_key"


class WorkerDatabase:
    """What a worker sees as ``self.db``."""

    def __init__(self, provider: Database, worker_ctx=None):
        self._provider = provider
        self._worker_ctx = worker_ctx
        self._session: Session | None = None
        self._reader: Session | None = None
        self._emitted = False

    @property
    def session(self) -> Session:
        if self._session is None:
            self._session = self._provider.session_factory()
        return self._session

    @property
    def reader(self) -> Session:
        """A session for reads only, in autocommit: no BEGIN, COMMIT or ROLLBACK round trips.

        Each statement sees the data committed when it runs; use ``session`` when several reads
        must agree with each other or lead to a write.
        """
        if self._reader is None:
            self._reader = self._provider.reader_factory()
        return self._reader

    def emit(self, event_type: str, payload: dict, full_check: bool = True) -> dict:
        """Queue an event in the outbox; it is published only if the transaction commits."""
        from crm_common.events import validate_event

        payload = validate_event(event_type, payload, full=full_check)
        model = self._provider.outbox_model
        if model is None:
            raise RuntimeError(f"{self._provider.container.service_name} has no outbox table")
        self.session.add(
            model(event_id=payload["event_id"], event_type=event_type, payload=payload)
        )
        self._emitted = True
        return payload

    def commit(self) -> None:
        self.session.commit()
        if self._emitted:
            self._emitted = False
            self._provider.wake_relay()

    def rollback(self) -> None:
        if self._session is not None:
            self._session.rollback()
        self._emitted = False

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        try:
            yield self.session
            self.commit()
        except BaseException:
            self.rollback()
            raise

    def write(self, command):
        """Run ``command()`` in a transaction and commit; under an idempotency key, only once.

        When the call carries an idempotency key (a retry of a request whose answer was lost), the
        result of the first run is returned and nothing is written again.
        """
        key = self._command_key()
        model = self._provider.command_model
        if key is None or model is None:
            with self.transaction():
                return command()
        done = self.session.get(model, key)
        if done is not None:
            return done.result
        try:
            with self.transaction() as session:
                result = command()
                session.add(model(key=key, result=result, created_at=utcnow()))
        except IntegrityError:
            self.rollback()
            done = self.session.get(model, key)
            if done is None:
                raise
            return done.result  # the same command ran at the same moment and won
        return result

    def _command_key(self) -> str | None:
        data = getattr(self._worker_ctx, "data", None) or {}
        key = data.get(IDEMPOTENCY_CONTEXT_KEY)
        if not key:
            return None
        return f"{self._worker_ctx.service_name}.{self._worker_ctx.entrypoint.method_name}:{key}"[:400]

    def first_delivery(self, event_id: str, event_type: str) -> bool:
        """Record that an event is being handled; False if it was handled before.

        Call it first in a handler's transaction: a concurrent duplicate loses on the primary key
        and its (empty) transaction is rolled back.
        """
        model = self._provider.processed_model
        session = self.session
        if session.get(model, event_id) is not None:
            return False
        session.add(model(event_id=event_id, event_type=event_type))
        try:
            session.flush()
        except IntegrityError:
            self.rollback()
            return False
        return True

    def ping(self) -> None:
        self.reader.execute(select(1))

    def close(self) -> None:
        for session in (self._session, self._reader):
            if session is not None:
                session.close()
        self._session = self._reader = None


class Database(DependencyProvider):
    """``db = Database(Base)`` on a nameko service class.

    The outbox, processed-events and command-log tables are found among ``Base``'s models by their
    table names (each service declares the ones it uses from the mixins above, in its own models).
    """

    def __init__(self, base):
        self.base = base
        self.outbox_model = _model_for(base, OutboxMixin.__tablename__)
        self.processed_model = _model_for(base, ProcessedEventMixin.__tablename__)
        self.command_model = _model_for(base, CommandLogMixin.__tablename__)
        self.workers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.engine: Engine | None = None
        self.read_engine: Engine | None = None
        self.relay = None

    def setup(self):
        from crm_common.outbox import OutboxRelay

        self.settings = Settings.from_config(self.container.config)
        self.url = self.settings.database_url_for(self.container.service_name)
        self.engine = create_engine_for(self.url, pool_size=self.settings.db_pool_size)
        self.read_engine = create_engine_for(self.url, pool_size=self.settings.db_pool_size, autocommit=True)
        self.session_factory = sessionmaker(self.engine, expire_on_commit=False)
        self.reader_factory = sessionmaker(self.read_engine, expire_on_commit=False)
        if self.outbox_model is not None:
            self.relay = OutboxRelay(
                session_factory=self.session_factory,
                model=self.outbox_model,
                command_model=self.command_model,
                config=self.container.config,
                service_name=self.container.service_name,
                poll_s=self.settings.outbox_poll_s,
            )

    def start(self):
        if self.relay is not None:
            self.container.spawn_managed_thread(self.relay.run)

    def stop(self):
        if self.relay is not None:
            self.relay.stop()
        for engine in (self.engine, self.read_engine):
            if engine is not None:
                engine.dispose()

    def kill(self):
        self.stop()

    def wake_relay(self) -> None:
        if self.relay is not None:
            self.relay.wake()

    def get_dependency(self, worker_ctx):
        worker_db = WorkerDatabase(self, worker_ctx)
        self.workers[worker_ctx] = worker_db
        return worker_db

    def worker_teardown(self, worker_ctx):
        worker_db = self.workers.pop(worker_ctx, None)
        if worker_db is not None:
            worker_db.close()


def _model_for(base, table_name: str):
    for mapper in base.registry.mappers:
        if getattr(mapper.class_, "__tablename__", None) == table_name:
            return mapper.class_
    return None
