"""The catalogue outside nameko: the unit of work crm-backup and the worker process use (plain blocking
connections, events into the same outbox the service's relay publishes from)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, pool
from sqlalchemy.orm import Session, sessionmaker

from backup.models import OutboxMessage
from crm_common.config import Settings
from crm_common.events import validate_event


class Local:
    """What ``self.db`` is in the service, for code that runs outside it: ``session``, ``emit``, ``commit``."""

    def __init__(self, settings: Settings):
        url = settings.database_url_for("backup")
        options = {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {}
        self.engine = create_engine(url, poolclass=pool.NullPool, **options)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        if self._session is None:
            self._session = self._sessions()
        return self._session

    reader = session

    def emit(self, event_type: str, payload: dict, full_check: bool = True) -> dict:
        payload = validate_event(event_type, payload, full=full_check)
        self.session.add(OutboxMessage(event_id=payload["event_id"], event_type=event_type, payload=payload))
        return payload

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        if self._session is not None:
            self._session.rollback()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        try:
            yield self.session
            self.commit()
        except BaseException:
            self.rollback()
            raise

    def write(self, command):
        """Run ``command()`` in its own transaction and a fresh session, as a service entrypoint does."""
        try:
            with self.transaction():
                return command()
        finally:
            self.close()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def dispose(self) -> None:
        self.close()
        self.engine.dispose()
