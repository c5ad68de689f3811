"""What the gateway knows about users between requests, kept exact by PostgreSQL notifications.

Every authenticated request needs the user's ``active`` flag and ``token_version``. Reading them costs
a database round trip per request, so each gateway process keeps them in memory, but only while it
listens to the ``crm_user_changed`` channel: every change that affects authentication (deactivation,
a new password, role or branch) sends ``pg_notify`` in the same transaction, so every gateway replica
drops its copy the moment the change commits. A deactivated user's tokens therefore still stop working
at once, on every replica. When the listener is not connected (or the database is SQLite, which has
no notifications) nothing is cached and every request reads the database, as before.

A change that commits while a request is reading the user is handled with a generation count per
user: a notification that arrives during the read stops that read's result from being cached.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import eventlet
from eventlet.hubs import trampoline

log = logging.getLogger(__name__)

CHANNEL = "crm_user_changed"
MAX_AGE_S = 300.0
MAX_ENTRIES = 50_000


@dataclass(frozen=True)
class UserState:
    id: str
    role: str
    branch_id: str | None
    active: bool
    token_version: int
    cached_at: float


class UserCache:
    def __init__(self):
        self.listening = False
        self._entries: dict[str, UserState] = {}
        self._generations: dict[str, int] = {}
        self._running = False

    def generation(self, user_id: str) -> int:
        return self._generations.get(user_id, 0)

    def get(self, user_id: str) -> UserState | None:
        if not self.listening:
            return None
        state = self._entries.get(user_id)
        if state is not None and time.monotonic() - state.cached_at > MAX_AGE_S:
            self._entries.pop(user_id, None)
            return None
        return state

    def put(self, state: UserState, generation: int) -> None:
        """Keep ``state`` unless the user changed since ``generation`` was read (before the database read)."""
        if not self.listening or self.generation(state.id) != generation:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[state.id] = state

    def forget(self, user_id: str) -> None:
        self._generations[user_id] = self.generation(user_id) + 1
        self._entries.pop(user_id, None)

    def _forget_all(self) -> None:
        for user_id in list(self._entries):
            self.forget(user_id)

    def stop(self) -> None:
        self._running = False

    def listen(self, dsn: str) -> None:
        """Run in a managed thread: hold a LISTEN connection and apply notifications; reconnect on failure."""
        import psycopg2

        self._running = True
        failures = 0
        while self._running:
            connection = None
            try:
                connection = psycopg2.connect(dsn)
                connection.autocommit = True
                with connection.cursor() as cursor:
                    cursor.execute(f"LISTEN {CHANNEL}")
                self._forget_all()  # what was cached before listening may have changed unseen
                self.listening = True
                failures = 0
                while self._running:
                    trampoline(connection.fileno(), read=True, timeout=30, timeout_exc=eventlet.Timeout)
                    connection.poll()
                    while connection.notifies:
                        self.forget(connection.notifies.pop(0).payload)
            except eventlet.Timeout:
                continue
            except Exception as exc:  # noqa: BLE001 - the database is gone: stop caching, reconnect later
                failures = min(failures + 1, 5)
                log.warning("user cache listener lost its connection (%s); reading users from the database", exc)
            finally:
                self.listening = False
                self._entries.clear()
                if connection is not None:
                    connection.close()
            if self._running:
                eventlet.sleep(min(30.0, 2.0**failures))
