"""``audit = Audit()``: every read and change of clients, and every login, on record; bulk reading noticed and stopped.

The route wrapper (``gateway.http.api``) asks ``before(route, caller)`` — a user at the read cap gets 429
``read_cap`` with ``Retry-After`` before their client read runs — and hands the route's answer to ``after(...)``,
which turns it into an entry by the route's rule in ``ROUTES`` and waits until the entry is written.
``record(...)`` is the same for routes that write their own entries (exports, offboarding).

**Group commit** (decisions.md 60). A request appends its entry (and the clients it revealed) to the process's
current batch and waits; one writer greenthread per process takes the whole batch at once and writes it in one
transaction (``auditlog.flush``): the window's upserts and counts, an alarm event into the outbox, the entries
chained under the head's row lock. Only then are the waiting requests answered. So the answer is never sent
before its entry is committed: a process that dies loses the batch and the answers with it, never an entry of
something shown; if the database cannot be written the request is 503 and shows nothing. A batch is whatever
arrived while the previous one was being written: under load one transaction carries many requests.

**The cap** is checked against what this process knows: the users whose window was at the cap when it last
wrote a batch or looked (every second when idle), as the database says, so across replicas too. Requests in
flight at that moment may still pass (a list page can carry the count past the cap by up to one page).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import eventlet
from eventlet.event import Event
from nameko.extensions import DependencyProvider

from crm_common.caller import Caller
from crm_common.clock import utcnow
from crm_common.config import Settings
from crm_common.db import Database
from crm_common.errors import RateLimited, Unavailable
from crm_common.schemas import new_id
from gateway import auditlog
from gateway.auth import read_token
from gateway.models import User
from gateway.throttle import client_address

log = logging.getLogger(__name__)

WAIT_S = 10.0  # a request waits this long for its entry to be written, then 503
IDLE_REFRESH_S = 1.0  # how often an idle writer learns which users other replicas capped
PURGE_EVERY_S = 60.0


class ReadCapReached(RateLimited):
    """Too many distinct clients read within an hour."""

    code = "read_cap"


@dataclass(frozen=True)
class RouteRule:
    action: str
    ref_type: str
    ref: str | None = None  # "path:<name>" (a path value), "result" (the answer's id) or "token" (login)
    reveals: Callable[[dict, str | None], list[str]] | None = None  # the clients an answer shows

    def ref_id(self, path_values: dict, payload: dict) -> str | None:
        if self.ref is None:
            return None
        if self.ref.startswith("path:"):
            return path_values.get(self.ref[5:])
        return payload.get("id") if self.ref == "result" else None


def _the_client(payload: dict, ref_id: str | None) -> list[str]:
    return [ref_id] if ref_id else []


def _items(payload: dict, ref_id: str | None) -> list[str]:
    return [item["id"] for item in payload.get("items", ())]


def _duplicates(payload: dict, ref_id: str | None) -> list[str]:
    return [item["client"]["id"] for item in payload.get("items", ())]


# route (function) name → what its successful answer records; a route showing clients is also under the cap
ROUTES: dict[str, RouteRule] = {
    "get_client": RouteRule("read", "client", "path:client_id", _the_client),
    "get_timeline": RouteRule("read", "timeline", "path:client_id", _the_client),
    "list_clients": RouteRule("list", "client", None, _items),
    "find_duplicates": RouteRule("list", "duplicates", "path:client_id", _duplicates),
    "create_client": RouteRule("create", "client", "result"),
    "update_client": RouteRule("update", "client", "path:client_id"),
    "archive_client": RouteRule("archive", "client", "path:client_id"),
    "restore_client": RouteRule("restore", "client", "path:client_id"),
    "merge_clients": RouteRule("merge", "client", "path:client_id"),
    "login": RouteRule("login", "user", "token"),
    # routes of issue 10's other parts (segments, offboarding), recorded once they are merged
    "list_segment_clients": RouteRule("list", "segment", "path:segment_id", _items),
    "offboard_user": RouteRule("offboard", "user", "path:id"),
}


@dataclass
class Batch:
    entries: list[dict] = field(default_factory=list)
    reads: list[tuple[str, str]] = field(default_factory=list)
    done: Event = field(default_factory=Event)


class Audit(DependencyProvider):
    def setup(self):
        self.settings = Settings.from_config(self.container.config)
        self.on = self.settings.audit
        self.limits = auditlog.Limits(self.settings.read_alert_per_hour, self.settings.read_cap_per_hour)
        self.blocked: dict[str, datetime] = {}
        self.current = Batch()
        self._signal = Event()
        self._running = False
        self._db: Database | None = None

    def start(self):
        self._db = next(d for d in self.container.extensions if isinstance(d, Database))
        if self.on:
            self._running = True
            self.container.spawn_managed_thread(self._run)

    def stop(self):
        self._running = False
        if not self._signal.ready():
            self._signal.send()
        if self.current.entries:  # answer the requests still waiting, as the writer would have
            batch, self.current = self.current, Batch()
            self._write(batch)

    def kill(self):
        self._running = False

    def get_dependency(self, worker_ctx):
        return self

    # ---- the request side

    def before(self, route: str, caller: Caller | None) -> RouteRule | None:
        """The route's rule (None: not audited); 429 ``read_cap`` for a capped caller of a route showing clients."""
        rule = ROUTES.get(route) if self.on else None
        if rule is not None and rule.reveals is not None and caller is not None:
            self.check_cap(caller)
        return rule

    def check_cap(self, caller: Caller) -> None:
        until = self.blocked.get(caller.id)
        if until is None:
            return
        wait = (until - utcnow()).total_seconds()
        if wait > 0:
            raise ReadCapReached(
                f"you read more than {self.limits.cap} clients within an hour; reading clients is paused",
                details={"retry_after": max(1, math.ceil(wait))},
            )

    def after(self, rule: RouteRule | None, caller: Caller | None, request, path_values: dict, result):
        """Record the route's successful answer by its rule, then give the answer back."""
        if rule is None:
            return result
        status, payload = _status_and_payload(result)
        if status >= 300 or not isinstance(payload, dict):
            return result
        ref_id = rule.ref_id(path_values, payload)
        if rule.ref == "token":
            caller = self._caller_of_token(payload.get("access_token"))
            ref_id = caller.id if caller else None
        if caller is None:
            return result
        clients = rule.reveals(payload, ref_id) if rule.reveals else []
        self.record(caller, rule.action, rule.ref_type, ref_id, len(clients) if rule.reveals else 1, request,
                    clients=clients)
        return result

    def record(self, caller: Caller, action: str, ref_type: str | None, ref_id: str | None = None, count: int = 1,
               request=None, clients: list[str] = ()) -> None:
        """Put one entry on record (and ``clients`` into the caller's read window); returns once it is written.
        ``self.audit.record(caller, "export", "export", export_id, rows, request)``."""
        if not self.on:
            return
        entry = {
            "id": new_id(), "user_id": caller.id, "branch_id": caller.branch_id, "action": action,
            "ref_type": ref_type, "ref_id": ref_id, "count": count, "at": utcnow(),
            "request_id": getattr(request, "request_id", None),
            "address": client_address(request, self.settings.trusted_proxies)[:64] if request is not None else None,
        }
        batch = self.current
        batch.entries.append(entry)
        batch.reads.extend((caller.id, client) for client in clients)
        if not self._signal.ready():
            self._signal.send()
        try:
            with eventlet.Timeout(WAIT_S):
                batch.done.wait()
        except eventlet.Timeout:
            raise Unavailable("the audit log could not be written in time; nothing was shown") from None

    def _caller_of_token(self, token) -> Caller | None:
        if not token:
            return None
        user_id = str(read_token(self.settings, token)["sub"])
        with self._db.reader_factory() as session:
            row = session.get(User, user_id)
            return Caller(row.id, row.role, row.branch_id) if row is not None else None

    # ---- the writer

    def _run(self):
        last_refresh = last_purge = 0.0
        while self._running:
            self._signal = Event()
            if not self.current.entries:
                self._signal.wait(IDLE_REFRESH_S)
            if self.current.entries:
                batch, self.current = self.current, Batch()
                self._write(batch)
                last_refresh = time.monotonic()
                continue
            now_s = time.monotonic()
            if self.limits.watching and now_s - last_refresh >= IDLE_REFRESH_S:
                last_refresh = now_s
                self._housekeeping(purge=now_s - last_purge >= PURGE_EVERY_S)
                last_purge = now_s if now_s - last_purge >= PURGE_EVERY_S else last_purge

    def _write(self, batch: Batch) -> None:
        try:
            with self._db.session_factory() as session:
                with session.begin():
                    outcome = auditlog.flush(session, batch.entries, batch.reads, self.limits, utcnow())
        except Exception as exc:  # noqa: BLE001 - the waiting requests answer 503; the writer goes on
            log.error("the audit batch of %d entries was not written: %r", len(batch.entries), exc)
            batch.done.send_exception(Unavailable("the audit log could not be written; nothing was shown"))
            return
        if self.limits.cap > 0:
            self.blocked = outcome.blocked
        if outcome.alerts:
            self._db.wake_relay()
        batch.done.send(None)

    def _housekeeping(self, purge: bool) -> None:
        try:
            with self._db.session_factory() as session:
                with session.begin():
                    now = utcnow()
                    if purge:
                        auditlog.purge_reads(session, now)
                    if self.limits.cap > 0:
                        self.blocked = auditlog.blocked_users(session, now)
        except Exception as exc:  # noqa: BLE001 - tried again in a second
            log.warning("the read window could not be refreshed: %r", exc)


def _status_and_payload(result) -> tuple[int, object]:
    if isinstance(result, tuple):
        return result[0], result[1]
    return (200, result) if isinstance(result, dict) else (0, None)
