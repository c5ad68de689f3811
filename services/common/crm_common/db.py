"""SQLAlchemy 2 for nameko services: engines and the ``Database`` dependency provider.

``Database(Base)`` gives each worker ``self.db`` with a lazily opened session, ``emit()`` to write an
event into the transactional outbox in the same transaction as the data, and ``transaction()``.
PostgreSQL goes through psycopg2 made green by psycogreen, so workers wait on the database
concurrently instead of one at a time; SQLite runs in WAL mode with a busy timeout.
"""

from __future__ import annotations

import hashlib
import json
import logging
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from nameko.extensions import DependencyProvider
from sqlalchemy import Executable, bindparam, create_engine, event, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from crm_common import faults
from crm_common.bookkeeping import COMMAND_LOG, OUTBOX, PROCESSED_EVENTS, claim_events, model_for
from crm_common.bulk import insert_rows
from crm_common.clock import utcnow
from crm_common.config import Settings
from crm_common.outbox import OutboxRelay

log = logging.getLogger(__name__)


_green_patched = False


def make_green() -> None:
    """Let psycopg2 yield to other greenthreads while it waits on the server."""
    global _green_patched
    if not _green_patched:
        from psycogreen.eventlet import patch_psycopg

        patch_psycopg()
        _green_patched = True


def overflow_for(pool_size: int) -> int:
    """Connections a pool may open beyond its size under a burst: a third more."""
    return pool_size // 3


def connections_per_process(pool_size: int) -> int:
    """The most a process may hold: two pools (transactions, autocommit reads), each full and overflowing."""
    return 2 * (pool_size + overflow_for(pool_size))


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
        url, pool_size=pool_size, max_overflow=overflow_for(pool_size), pool_recycle=1800, **options
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


# connections left for what runs beside the processes: migrations, crm-backup's dumps and snapshots, crm-reports,
# psql, a benchmark's own reads
SPARE_CONNECTIONS = 12


def pool_size_that_fits(free: int, processes: int, gateways: int, largest: int) -> int:
    """The largest pool size up to ``largest`` whose worst case fits in ``free`` server connections: every process
    at ``connections_per_process``, each gateway one ``LISTEN`` more (operations.md, "Connections"). At least 1: a
    server too full for that is reported by its own error."""
    for size in range(largest, 0, -1):
        if processes * connections_per_process(size) + gateways + SPARE_CONNECTIONS <= free:
            return size
    return 1


def free_connections(url: str) -> int:
    """``max_connections`` less what is reserved for superusers and what is open now (other systems, other runs)."""
    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            return int(conn.scalar(text(
                "SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int"
                " - count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")))
    finally:
        admin.dispose()


IDEMPOTENCY_CONTEXT_KEY = "idempotency_key"
# the request message's correlation id, set by crm_common.rpc.Rpc: the request id of a call without a key
MESSAGE_ID_CONTEXT_KEY = "rpc_message_id"


def call_digest(worker_ctx) -> str:
    """The call's arguments, hashed. One request may call one write method more than once (the rows of an
    import, in chunks): each call is its own write. The same call repeated (a retry, a redelivery) is one."""
    arguments = json.dumps([worker_ctx.args, worker_ctx.kwargs], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(arguments.encode()).hexdigest()[:16]


class WorkerDatabase:
    """What a worker sees as ``self.db``."""

    def __init__(self, provider: Database, worker_ctx=None):
        self._provider = provider
        self._worker_ctx = worker_ctx
        self._session: Session | None = None
        self._reader: Session | None = None
        self._emitted = False
        self._claimed: str | None = None  # the command-log key this transaction holds

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

    def emit_many(self, event_type: str, payloads: list[dict]) -> list[dict]:
        """Queue events of one type built by the same code (an import's thousands of ``client_created``): the
        first is checked in full, the rest for their keys (``validate_event(full=False)``), and they are
        written at once (``crm_common.bulk.insert_rows``) rather than as one ORM object each."""
        from crm_common.events import validate_event

        checked = [validate_event(event_type, payload, full=index == 0) for index, payload in enumerate(payloads)]
        if not checked:
            return []
        model = self._provider.outbox_model
        if model is None:
            raise RuntimeError(f"{self._provider.container.service_name} has no outbox table")
        now = utcnow()
        insert_rows(self.session, model.__table__, [
            {"event_id": p["event_id"], "event_type": event_type, "payload": p, "created_at": now} for p in checked
        ])
        self._emitted = True
        return checked

    def commit(self) -> None:
        self.session.commit()
        self._claimed = None
        if self._emitted:
            self._emitted = False
            self._provider.wake_relay()

    def rollback(self) -> None:
        if self._session is not None:
            self._session.rollback()
        self._emitted = False
        self._claimed = None

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        try:
            yield self.session
            self.commit()
        except BaseException:
            self.rollback()
            raise

    def write(self, command):
        """Run ``command()`` in a transaction and commit it, once per request id.

        The request id is the caller's idempotency key (the gateway sets one for every write) or else
        the request message's correlation id, which a redelivered message keeps. The transaction first
        claims ``<service>.<method>:<id>`` in ``command_log`` and stores the command's result there
        before it commits, so the result exists if and only if the write does:

        - a redelivery or retry after the commit finds the key taken and returns the stored result;
        - a duplicate running at the same moment waits on the key (PostgreSQL holds the second insert
          of a unique key until the first transaction ends) and then returns the first one's result,
          instead of running the command and failing on some other unique constraint;
        - a command that fails rolls its claim back with everything else, so a retry runs it again.

        A command may roll back and try again (the claim is taken again before the commit) but must not
        commit on its own: that would commit the claim before its result.
        """
        key = self._command_key()
        if key is None or not self._provider.command_log:
            with self.transaction():
                result = command()
            self._provider.after_commit(self._worker_ctx, key)
            return result
        statements = self._provider.command_statements(self.session.get_bind().dialect.name)
        for _attempt in range(3):
            with self.transaction() as session:
                if not self._claim(statements, key):
                    stored = session.connection().execute(statements.stored, {"k": key}).first()
                    if stored is None:
                        continue  # the row was purged between the two statements: claim again
                    return stored.result
                result = command()
                if self._claimed != key and not self._claim(statements, key):
                    # the command rolled back (and so lost the claim) and a duplicate committed meanwhile
                    self.rollback()
                    continue
                session.connection().execute(statements.store, {"k": key, "result": result})
            self._provider.after_commit(self._worker_ctx, key)
            return result
        raise RuntimeError(f"could not claim the command-log key {key!r}")

    def _claim(self, statements, key: str) -> bool:
        """Insert the key unless it exists; False when another transaction committed it first."""
        claimed = self.session.connection().execute(statements.claim, {"key": key, "created_at": utcnow()}).rowcount == 1
        if claimed:
            self._claimed = key
        return claimed

    def _command_key(self) -> str | None:
        data = getattr(self._worker_ctx, "data", None) or {}
        request_id = data.get(IDEMPOTENCY_CONTEXT_KEY)
        if not request_id and data.get(MESSAGE_ID_CONTEXT_KEY):
            request_id = f"rpc:{data[MESSAGE_ID_CONTEXT_KEY]}"
        if not request_id:
            return None
        method = f"{self._worker_ctx.service_name}.{self._worker_ctx.entrypoint.method_name}"
        return f"{method}:{call_digest(self._worker_ctx)}:{request_id}"[:400]

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

    def first_deliveries(self, events: list[tuple[str, str]]) -> set[str]:
        """``first_delivery`` for many ``(event_id, event_type)`` at once: the ids not handled before, now
        recorded. A concurrent duplicate raises ``IntegrityError``; roll the whole transaction back then."""
        return claim_events(self.session, self._provider.processed_model, events)

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
    table names (each service declares the ones it uses with ``crm_common.bookkeeping.bookkeeping_models``).
    """

    def __init__(self, base):
        self.base = base
        self.outbox_model = model_for(base, OUTBOX)
        self.processed_model = model_for(base, PROCESSED_EVENTS)
        self.command_model = model_for(base, COMMAND_LOG)
        self.workers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.engine: Engine | None = None
        self.read_engine: Engine | None = None
        self.relay = None
        self.hold_after_commit = None
        self.command_log = self.command_model is not None
        self._command_statements: dict[str, CommandStatements] = {}

    def setup(self):
        self.settings = Settings.from_config(self.container.config)
        self.hold_after_commit = faults.hold_folder(self.container.service_name, self.settings.is_production)
        self.command_log = self.command_model is not None and self.settings.command_log
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

    def command_statements(self, dialect: str) -> CommandStatements:
        """The command log's three statements, built once: Core statements on the table, not ORM ones, as
        they run in every write (building and executing ORM DML costs several times more CPU)."""
        statements = self._command_statements.get(dialect)
        if statements is None:
            table = self.command_model.__table__
            insert = pg_insert if dialect == "postgresql" else sqlite_insert
            statements = self._command_statements[dialect] = CommandStatements(
                claim=insert(table).values(key=bindparam("key"), created_at=bindparam("created_at"))
                .on_conflict_do_nothing(index_elements=["key"]),
                store=update(table).where(table.c.key == bindparam("k")).values(result=bindparam("result")),
                stored=select(table.c.result).where(table.c.key == bindparam("k")),
            )
        return statements

    def after_commit(self, worker_ctx, key: str | None) -> None:
        """Between a write's commit and its reply: where the test hook of ``crm_common.faults`` holds."""
        if self.hold_after_commit is not None:
            faults.hold_after_commit(self.hold_after_commit, worker_ctx, key)

    def wake_relay(self) -> None:
        if self.relay is not None:
            self.relay.wake()

    def unit_of_work(self) -> WorkerDatabase:
        """A ``self.db`` of no worker, for a thread of the service's own (``crm_common.batching``); close it after use."""
        return WorkerDatabase(self)

    def get_dependency(self, worker_ctx):
        worker_db = WorkerDatabase(self, worker_ctx)
        self.workers[worker_ctx] = worker_db
        return worker_db

    def worker_teardown(self, worker_ctx):
        worker_db = self.workers.pop(worker_ctx, None)
        if worker_db is not None:
            worker_db.close()


@dataclass(frozen=True)
class CommandStatements:
    claim: Executable
    store: Executable
    stored: Executable
