"""The fake unit of work for unit tests of any service's commands: what a worker sees as ``self.db``,
on an in-memory SQLite database, with the events it emitted kept in a list.

    @pytest.fixture
    def uow():
        with FakeUnitOfWork(Base) as unit:
            yield unit

Events behave as the outbox makes them behave: an event emitted in a transaction that is rolled back
is gone (``uow.events`` holds the events emitted and not rolled back, in order). Every event is
checked against its contract in full, whatever the code under test asks for.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from crm_common.bookkeeping import PROCESSED_EVENTS, claim_events, model_for
from crm_common.events import validate_event


class FakeUnitOfWork:
    def __init__(self, base):
        self.engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
        base.metadata.create_all(self.engine)
        self.processed_model = model_for(base, PROCESSED_EVENTS)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._session: Session | None = None
        self._uncommitted = 0
        self.events: list[tuple[str, dict]] = []

    def __enter__(self) -> FakeUnitOfWork:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
        self.engine.dispose()

    @property
    def session(self) -> Session:
        if self._session is None:
            self._session = self._sessions()
        return self._session

    reader = session  # the real reader is an autocommit session; one session serves both here

    def emit(self, event_type: str, payload: dict, full_check: bool = True) -> dict:
        payload = validate_event(event_type, payload)
        self.events.append((event_type, payload))
        self._uncommitted += 1
        return payload

    def emit_many(self, event_type: str, payloads: list[dict]) -> list[dict]:
        return [self.emit(event_type, payload) for payload in payloads]

    def commit(self) -> None:
        self.session.commit()
        self._uncommitted = 0

    def rollback(self) -> None:
        if self._session is not None:
            self._session.rollback()
        if self._uncommitted:
            del self.events[-self._uncommitted:]
        self._uncommitted = 0

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        try:
            yield self.session
            self.commit()
        except BaseException:
            self.rollback()
            raise

    def write(self, command):
        with self.transaction():
            return command()

    def first_delivery(self, event_id: str, event_type: str) -> bool:
        """As the real one: a row in processed_events, gone again if the transaction rolls back."""
        if self.session.get(self.processed_model, event_id) is not None:
            return False
        self.session.add(self.processed_model(event_id=event_id, event_type=event_type))
        try:
            self.session.flush()
        except IntegrityError:
            self.rollback()
            return False
        return True

    def first_deliveries(self, events: list[tuple[str, str]]) -> set[str]:
        return claim_events(self.session, self.processed_model, events)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def call(self, command, *args, **kwargs):
        """Run a use case as its entrypoint does: a fresh session, one transaction, rolled back on any
        error; so no test leans on objects a previous call left in a session, which a worker never has."""
        try:
            result = command(self, *args, **kwargs)
            self.commit()
            return result
        except BaseException:
            self.rollback()
            raise
        finally:
            self.close()

    def read(self, query, *args, **kwargs):
        """Run a read-only query function that takes a session, in a fresh session."""
        try:
            return query(self.session, *args, **kwargs)
        finally:
            self.close()

    def event_types(self) -> list[str]:
        return [event_type for event_type, _ in self.events]

    def take_events(self) -> list[tuple[str, dict]]:
        events, self.events = self.events, []
        return events
