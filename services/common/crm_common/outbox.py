"""Relays events from a service's outbox table to its nameko event exchange.

Rows are written in the same transaction as the data they describe, so an event exists if and only
if its data was committed. The relay publishes them in id order with publisher confirms and marks
them published; after a crash between publish and mark an event is sent again, which is why every
handler is idempotent on ``event_id``. Several replicas may relay the same table: on PostgreSQL rows
are claimed with ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import eventlet
from eventlet.queue import Empty, Full, LightQueue
from nameko.amqp.publish import Publisher
from nameko.standalone.events import get_event_exchange
from sqlalchemy import delete, select

from crm_common.clock import utcnow

log = logging.getLogger(__name__)

BATCH = 200
KEEP_PUBLISHED = timedelta(days=7)
KEEP_COMMANDS = timedelta(hours=25)  # longer than the gateway keeps an Idempotency-Key
PURGE_EVERY_S = 3600.0
# after a failure the relay tries again in 1, 2, 4, then every 5 s: events flow again a few seconds
# after the broker or database returns (a publish attempt against a stopped broker costs ~3 s anyway)
RETRY_MAX_S = 5.0


class OutboxRelay:
    def __init__(
        self, session_factory, model, config: dict, service_name: str, poll_s: float = 1.0, command_model=None
    ):
        self.session_factory = session_factory
        self.model = model
        self.command_model = command_model
        self.service_name = service_name
        self.poll_s = poll_s
        self.exchange = get_event_exchange(service_name, config)
        self.publisher = Publisher(config["AMQP_URI"], serializer="json", use_confirms=True, declare=[self.exchange])
        self._wakeups: LightQueue = LightQueue(maxsize=1)
        self._running = True
        self._last_purge = 0.0

    def wake(self) -> None:
        try:
            self._wakeups.put_nowait(True)
        except Full:
            pass

    def stop(self) -> None:
        self._running = False
        self.wake()

    def run(self) -> None:
        failures = 0
        while self._running:
            try:
                self._wakeups.get(timeout=self.poll_s if not failures else min(RETRY_MAX_S, 2.0 ** (failures - 1)))
            except Empty:
                pass
            if not self._running:
                break
            try:
                self.flush()
                self._purge_if_due()
                failures = 0
            except Exception as exc:  # the broker or database is down: keep the rows, try again later
                failures = min(failures + 1, 5)
                if failures == 1:
                    log.exception("outbox relay of %s failed; will retry", self.service_name)
                else:
                    log.warning("outbox relay of %s failed again (%s); will retry", self.service_name, exc)

    def flush(self) -> int:
        """Publish everything pending; returns how many events were sent."""
        sent = 0
        while True:
            with self.session_factory() as session:
                query = (
                    select(self.model)
                    .where(self.model.published_at.is_(None))
                    .order_by(self.model.id)
                    .limit(BATCH)
                )
                if session.bind.dialect.name == "postgresql":
                    query = query.with_for_update(skip_locked=True)
                rows = session.scalars(query).all()
                if not rows:
                    return sent
                for row in rows:
                    self.publisher.publish(
                        row.payload, exchange=self.exchange, routing_key=row.event_type
                    )
                    row.published_at = utcnow()
                    sent += 1
                session.commit()
            eventlet.sleep(0)

    def _purge_if_due(self) -> None:
        now = time.monotonic()
        if now - self._last_purge < PURGE_EVERY_S:
            return
        self._last_purge = now
        with self.session_factory() as session:
            session.execute(
                delete(self.model).where(self.model.published_at < utcnow() - KEEP_PUBLISHED)
            )
            if self.command_model is not None:
                session.execute(
                    delete(self.command_model).where(self.command_model.created_at < utcnow() - KEEP_COMMANDS)
                )
            session.commit()
