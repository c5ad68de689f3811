"""A fake unit of work for the clients use cases: an in-memory SQLite session and a list of events."""

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from clients.models import Base, ProcessedEvent
from crm_common.events import validate_event


class FakeUnitOfWork:
    def __init__(self, session: Session):
        self.session = session
        self.events: list[tuple[str, dict]] = []

    def first_delivery(self, event_id: str, event_type: str) -> bool:
        """As the real one: a row in processed_events, gone again if the transaction rolls back."""
        if self.session.get(ProcessedEvent, event_id) is not None:
            return False
        self.session.add(ProcessedEvent(event_id=event_id, event_type=event_type))
        self.session.flush()
        return True

    def emit(self, event_type: str, payload: dict, full_check: bool = True) -> dict:
        # every event a test emits is checked in full, whatever the code under test asks for
        payload = validate_event(event_type, payload)
        self.events.append((event_type, payload))
        return payload

    def rollback(self) -> None:
        self.session.rollback()

    def commit(self) -> None:
        self.session.commit()

    def event_types(self) -> list[str]:
        return [event_type for event_type, _ in self.events]


@pytest.fixture
def uow():
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    Base.metadata.create_all(engine)
    with Session(engine, expire_on_commit=False) as session:
        yield FakeUnitOfWork(session)
    engine.dispose()
