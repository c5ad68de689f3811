"""Group commit: the events a process's workers hold at one moment, applied in one transaction.

A read model that counts (the reports service) moves the same few counter rows with almost every event.
Applied in a transaction each, concurrent events queue on those rows' locks and every one pays a
commit; the bus then delivers faster than the read model applies. Here each handler hands its event
to one green thread of the process and waits: the thread takes every event waiting (those that came
while it committed the previous group) and applies them together, with one commit and one update per
counter row. A handler returns, and so its message is acknowledged, only once its event is committed,
or raises what applying it raised: delivery stays at least once, and handlers stay idempotent by the
processed-events table, written in the same transaction.

When a group fails for a temporary reason (the database gone, a rebuild running), every handler of the group
raises it and ``event_handler`` puts the events back on the queue. When it fails for another (a duplicate
committed by another replica at the same moment, a bad event), each of its events is applied again alone, in
a transaction of its own, so one event's failure is that event's only.

    class ReportsService:
        db = Database(Base)
        events = GroupCommit(projection.commit_events, projection.commit_event)

        @event_handler("deals", "deal_won")
        def handle_deal_won(self, payload):
            self.events.apply("deal_won", payload)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from eventlet.event import Event
from eventlet.queue import Empty, LightQueue
from nameko.extensions import DependencyProvider

from crm_common.db import Database
from crm_common.handlers import is_temporary

log = logging.getLogger(__name__)

GROUP_LIMIT = 200  # events per transaction at most (a process holds no more than its max_workers anyway)


@dataclass
class Pending:
    event_type: str
    payload: dict
    done: Event = field(default_factory=Event)


class GroupCommit(DependencyProvider):
    """``GroupCommit(apply_many, apply_one)`` on a service that has a ``Database``:

    - ``apply_many(uow, [(event_type, payload), ...])`` applies the events and commits them, in one transaction;
    - ``apply_one(uow, event_type, payload)`` applies one and commits it (the fallback of a failed group).
    """

    def __init__(self, apply_many: Callable, apply_one: Callable, limit: int = GROUP_LIMIT):
        self.apply_many = apply_many
        self.apply_one = apply_one
        self.limit = limit
        self.queue: LightQueue | None = None
        self.database: Database | None = None

    def setup(self):
        databases = [dep for dep in self.container.dependencies if isinstance(dep, Database)]
        if len(databases) != 1:
            raise RuntimeError(f"{self.container.service_name}: GroupCommit needs the service's one Database")
        self.database = databases[0]
        self.queue = LightQueue()

    def start(self):
        self.container.spawn_managed_thread(self._run, identifier=f"{self.container.service_name}.group_commit")

    def get_dependency(self, worker_ctx):
        return self

    def apply(self, event_type: str, payload: dict) -> None:
        """Hand one event to the group commit; return once it is committed, or raise why it was not."""
        pending = Pending(event_type, payload)
        self.queue.put(pending)
        pending.done.wait()

    def _run(self) -> None:
        while True:
            group = [self.queue.get()]
            while len(group) < self.limit:
                try:
                    group.append(self.queue.get_nowait())
                except Empty:
                    break
            self._commit(group)

    def _commit(self, group: list[Pending]) -> None:
        uow = self.database.unit_of_work()
        try:
            if len(group) > 1:
                try:
                    self.apply_many(uow, [(item.event_type, item.payload) for item in group])
                except Exception as exc:  # noqa: BLE001 - every event gets its own chance below
                    if is_temporary(exc):  # the database or a rebuild: alone, each would meet it again
                        for item in group:
                            item.done.send_exception(exc)
                        return
                    log.info("a group of %d events failed (%s): applying each alone", len(group), exc)
                else:
                    for item in group:
                        item.done.send(None)
                    return
            for item in group:
                try:
                    self.apply_one(uow, item.event_type, item.payload)
                except Exception as exc:  # noqa: BLE001 - the handler raises it, and event_handler decides
                    item.done.send_exception(exc)
                else:
                    item.done.send(None)
        finally:
            for item in group:  # never leave a handler waiting, whatever happened above
                if not item.done.ready():
                    item.done.send_exception(RuntimeError("the group commit stopped before applying this event"))
            uow.close()
