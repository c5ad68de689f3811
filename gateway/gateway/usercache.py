"""What the gateway knows about users between requests, kept exact by PostgreSQL notifications.

Every authenticated request needs the user's ``active`` flag and ``token_version``. Reading them costs
a database round trip per request, so each gateway process keeps them in memory, but only while it
listens to the ``crm_user_changed`` channel: every change that affects authentication (deactivation,
a new password, role or branch) sends ``pg_notify`` in the same transaction, so every gateway replica
drops its copy the moment the change commits. A deactivated user's tokens therefore still stop working
at once, on every replica. When the listener is not connected (or the database is SQLite, which has
no notifications) nothing is cached and every request reads the database, as before.

A change that commits while a request is reading the user is handled with a generation count per
user: a notification that arrives during the read stops that read's result from being cached. The
listener's connects and disconnects bump an epoch that is part of every generation, so a read that
began before LISTEN took effect (and may have missed a change no notification will repeat) is never
cached either.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import eventlet
from eventlet.hubs import trampoline

log = logging.getLogger(__name__)

CHANNEL = "crm_user_changed"
APPLICATION_NAME = "crm-gateway-user-cache"  # how the listener shows in pg_stat_activity
MAX_AGE_S = 300.0
PEOPLE = "people"  # the id of every active user's telephony directory entry (gateway/telephony.py)
MAX_ENTRIES = 50_000


@dataclass(frozen=True)
class UserState:
    id: str
    role: str
    branch_id: str | None
    active: bool
    token_version: int
    cached_at: float
    revoked: frozenset[str] = frozenset()  # ids of the user's tokens ended by logging out, not yet expired


class UserCache:
    idle_s = 30.0  # how long the listener waits quietly before it checks its connection still works

    def __init__(self):
        self.idle_checks = 0
        self._listening = False
        self._epoch = 0
        self._entries: dict[str, UserState] = {}
        self._generations: dict[str, int] = {}
        self._running = False

    @property
    def listening(self) -> bool:
        return self._listening

    @listening.setter
    def listening(self, value: bool) -> None:
        """Starting or stopping to listen starts a new epoch: reads begun in the old one are not kept."""
        self._epoch += 1
        self._listening = value
        self._entries.clear()

    def generation(self, user_id: str) -> tuple[int, int]:
        """An opaque stamp to take before reading ``user_id`` and hand to ``put``."""
        return self._epoch, self._generations.get(user_id, 0)

    def get(self, user_id: str) -> UserState | None:
        if not self.listening:
            return None
        state = self._entries.get(user_id)
        if state is not None and time.monotonic() - state.cached_at > MAX_AGE_S:
            self._entries.pop(user_id, None)
            return None
        return state

    def put(self, state: UserState, generation: tuple[int, int]) -> None:
        """Keep ``state`` unless the user changed since ``generation`` was read (before the database read)."""
        if not self.listening or self.generation(state.id) != generation:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[state.id] = state

    def forget(self, user_id: str) -> None:
        self._generations[user_id] = self._generations.get(user_id, 0) + 1
        self._entries.pop(user_id, None)

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
                connection = psycopg2.connect(
                    dsn, application_name=APPLICATION_NAME, connect_timeout=5,
                    keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3,
                )
                connection.autocommit = True
                with connection.cursor() as cursor:
                    cursor.execute(f"LISTEN {CHANNEL}")
                self.listening = True  # a new epoch: nothing read before LISTEN is kept
                failures = 0
                while self._running:
                    self._wait_for_notifications(connection)
            except Exception as exc:  # noqa: BLE001 - the database is gone: stop caching, reconnect later
                failures = min(failures + 1, 5)
                log.warning("user cache listener lost its connection (%s); reading users from the database", exc)
            finally:
                if self.listening:
                    self.listening = False
                if connection is not None:
                    connection.close()
            if self._running:
                eventlet.sleep(min(30.0, 2.0**failures))

    def _wait_for_notifications(self, connection) -> None:
        """Apply the notifications that arrive within ``idle_s``; after a quiet spell, make sure the
        connection still works (a server that vanished without closing the socket would leave us
        caching while deaf), raising if it does not."""
        try:
            trampoline(connection.fileno(), read=True, timeout=self.idle_s, timeout_exc=eventlet.Timeout)
        except eventlet.Timeout:
            self.idle_checks += 1
            with eventlet.Timeout(10, ConnectionError("the database did not answer the listener's check")):
                with connection.cursor() as cursor:
                    cursor.execute("SELECT 1")
        connection.poll()
        while connection.notifies:
            self.forget(connection.notifies.pop(0).payload)
