"""``audit = Audit()``: every read and change of clients, and every login, on record; bulk reading noticed and stopped.

The route wrapper (``gateway.http.api``) asks ``before(route, caller)`` — a user at the read cap gets 429
``read_cap`` with ``Retry-After`` before their client read runs — and hands the route's answer to ``after(...)``,
which turns it into an entry by the route's rule in ``ROUTES``. ``record(...)`` is the same for routes that write
their own entries (an export's rows).

**Recording** (decisions.md 60). A request appends its entry (and the clients it showed) to the process's audit
journal, a local append-only file (``auditjournal.py``: one ``write()``, no ``fsync``, so it survives the process
dying), and to the current in-memory batch, and answers at once. One writer greenthread per gateway takes the whole
batch (at most every 50 ms) and writes it in one transaction (``auditlog.flush``): the window's upserts and counts,
an alarm event into the outbox, the entries chained under the head's row lock; then it deletes the batch's journal
segment. A batch is whatever arrived while the previous one was being written. A batch that fails is kept and
written again with the next one; a process that dies leaves its segment, which a gateway replays at its start or
within a minute.

**The cap** is checked against what this process knows: the users whose window was at the cap when it last
wrote a batch or looked (every second when idle), as the database says, so across replicas too. Reads answered
before the batch that crossed the cap was written still pass (up to ~50 ms; a list page can carry the count past
the cap by up to one page).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import eventlet
from eventlet.event import Event
from nameko.extensions import DependencyProvider

from crm_common.caller import Caller
from crm_common.clock import utcnow
from crm_common.config import Settings
from crm_common.db import Database
from crm_common.errors import RateLimited
from crm_common.schemas import new_id
from gateway import auditlog
from gateway.auditjournal import Journal, Segment
from gateway.auth import read_token
from gateway.models import User
from gateway.throttle import client_address

log = logging.getLogger(__name__)

IDLE_REFRESH_S = 1.0  # how often an idle writer learns which users other replicas capped
PURGE_EVERY_S = 60.0  # reads that left the window are deleted, journals of dead processes replayed
RETRY_AFTER_FAILURE_S = 1.0
# a batch at most every 50 ms: requests do not wait for it, and a batch's cost is mostly per transaction
BATCH_EVERY_S = 0.05


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
    segments: list[Segment] = field(default_factory=list)  # the journal's lines of these entries


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
        self.journal: Journal | None = None

    def start(self):
        self._db = next(d for d in self.container.extensions if isinstance(d, Database))
        if self.on:
            self.journal = Journal(Path(self.settings.data_dir) / "audit-journal")
            self._running = True
            self.container.spawn_managed_thread(self._run)

    def stop(self):
        self._running = False
        if not self._signal.ready():
            self._signal.send()
        if self.journal is not None:
            if self.current.entries:  # what the writer has not taken yet; if this fails the journal keeps it
                self._write(self._take())
            self.journal.close()
            self.journal = None

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

    def after(self, rule: RouteRule | None, caller: Caller | None, request, path_values: dict, result, reader):
        """Record the route's successful answer by its rule, then give the answer back. ``reader``: the worker's
        read session, for the one rule that must look a user up (a login names its user only in the token)."""
        if rule is None or self.journal is None:
            return result
        status, payload = _status_and_payload(result)
        if status >= 300 or not isinstance(payload, dict):
            return result
        ref_id = rule.ref_id(path_values, payload)
        if rule.ref == "token":
            caller = self._caller_of_token(payload.get("access_token"), reader)
            ref_id = caller.id if caller else None
        if caller is None:
            return result
        clients = rule.reveals(payload, ref_id) if rule.reveals else []
        self.record(caller, rule.action, rule.ref_type, ref_id, len(clients) if rule.reveals else 1, request,
                    clients=clients)
        return result

    def record(self, caller: Caller, action: str, ref_type: str | None, ref_id: str | None = None, count: int = 1,
               request=None, clients: list[str] = ()) -> None:
        """Put one entry on record (and ``clients`` into the caller's read window):
        ``self.audit.record(caller, "export", "export", export_id, rows, request)``. It is in the journal when
        this returns, and in the database a moment later."""
        if self.journal is None:
            return
        entry = {
            "id": new_id(), "user_id": caller.id, "branch_id": caller.branch_id, "action": action,
            "ref_type": ref_type, "ref_id": ref_id, "count": count, "at": utcnow(),
            "request_id": getattr(request, "request_id", None),
            "address": client_address(request, self.settings.trusted_proxies)[:64] if request is not None else None,
        }
        reads = [(caller.id, client) for client in clients]
        self.journal.append(entry, reads)
        self.current.entries.append(entry)
        self.current.reads.extend(reads)
        if not self._signal.ready():
            self._signal.send()

    def _caller_of_token(self, token, reader) -> Caller | None:
        """The token's user, read through the worker's own read session: a worker that holds a connection and
        waits for a second one of the same pool deadlocks once a small pool's connections are all held so."""
        if not token:
            return None
        row = reader.get(User, str(read_token(self.settings, token)["sub"]))
        return Caller(row.id, row.role, row.branch_id) if row is not None else None

    # ---- the writer

    def _take(self) -> Batch:
        """The current batch with the journal segment holding it; new entries go to a new batch and segment."""
        batch, self.current = self.current, Batch()
        batch.segments.append(self.journal.rotate())
        return batch

    def _run(self):
        last_refresh = last_purge = 0.0
        self._replay_orphans()
        while self._running:
            self._signal = Event()
            if not self.current.entries:
                self._signal.wait(IDLE_REFRESH_S)
            if self.current.entries and self._running:
                started = time.monotonic()
                if not self._write(self._take()):
                    eventlet.sleep(RETRY_AFTER_FAILURE_S)
                last_refresh = time.monotonic()
                eventlet.sleep(max(0.0, BATCH_EVERY_S - (last_refresh - started)))
                continue
            now_s = time.monotonic()
            if now_s - last_purge >= PURGE_EVERY_S:
                last_purge = now_s
                self._replay_orphans()
                self._housekeeping(purge=self.limits.watching)
            elif self.limits.cap > 0 and now_s - last_refresh >= IDLE_REFRESH_S:
                last_refresh = now_s
                self._housekeeping(purge=False)

    def _write(self, batch: Batch, replayed: bool = False) -> bool:
        try:
            with self._db.session_factory() as session:
                with session.begin():
                    outcome = auditlog.flush(session, batch.entries, batch.reads, self.limits, utcnow())
        except Exception as exc:  # noqa: BLE001 - kept for the next batch; the journal still has it
            log.error("the audit batch of %d entries was not written (tried again): %r", len(batch.entries), exc)
            if not replayed:
                self.current = Batch(batch.entries + self.current.entries, batch.reads + self.current.reads,
                                     batch.segments + self.current.segments)
            return False
        for segment in batch.segments:
            segment.release(delete=True)
        if self.limits.cap > 0:
            self.blocked = outcome.blocked
        if outcome.alerts:
            self._db.wake_relay()
        return True

    def _replay_orphans(self) -> None:
        """Entries a dead process journaled: chained now (those it committed before dying are skipped)."""
        for segment, records in self.journal.orphans():
            try:
                with self._db.reader_factory() as session:
                    done = auditlog.committed(session, [entry["id"] for entry, _ in records])
            except Exception as exc:  # noqa: BLE001 - the segment stays for the next attempt
                log.warning("the audit journal %s could not be replayed yet: %r", segment.path.name, exc)
                segment.release(delete=False)
                continue
            records = [(entry, reads) for entry, reads in records if entry["id"] not in done]
            batch = Batch([entry for entry, _ in records], [read for _, reads in records for read in reads],
                          [segment])
            if not batch.entries:
                segment.release(delete=True)
            elif self._write(batch, replayed=True):
                log.warning("replayed %d audit entries of a gateway that stopped: %s", len(batch.entries),
                            segment.path.name)
            else:
                segment.release(delete=False)

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
