"""The delivery workers: a pool of greenthreads in every webhooks process, fed by one dispatching loop.

The loop wakes when this process records deliveries or finishes one, and otherwise every
``CRM_WEBHOOK_POLL_S``; it leases as many due webhooks as the pool has free workers (``commands.claim``:
``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so replicas never take the same webhook) and gives each to a
worker, which sends that webhook's first pending delivery and records the outcome. A webhook is leased by
one worker at a time, so each has at most one delivery in flight and its deliveries go in order; a receiver
that hangs holds one worker for at most ``CRM_WEBHOOK_TIMEOUT_S`` and no other webhook waits for it.
"""

from __future__ import annotations

import logging

import eventlet
from eventlet.greenpool import GreenPool
from eventlet.queue import Empty, Full, LightQueue
from nameko.extensions import DependencyProvider

from crm_common.clock import utcnow
from crm_common.config import Settings
from crm_common.db import Database, WorkerDatabase
from webhooks import commands
from webhooks.secrets import SecretBox
from webhooks.sender import Outcome, Sender

log = logging.getLogger(__name__)

RETRY_MAX_S = 5.0
DRAIN = 50  # deliveries a worker sends in a row for one webhook before its lease goes back


class DeliveryWorkers(DependencyProvider):
    """``deliveries = DeliveryWorkers()`` on the service; ``self.deliveries.wake()`` after recording some."""

    def setup(self):
        self.settings = Settings.from_config(self.container.config)
        self.database = next(d for d in self.container.dependencies if isinstance(d, Database))
        self.policy = commands.Policy.from_settings(self.settings)
        self.box = SecretBox.from_settings(self.settings)
        self.sender = Sender(self.settings.webhook_allow_private, self.settings.webhook_timeout_s,
                             connections=self.settings.webhook_workers)
        self.pool = GreenPool(self.settings.webhook_workers)
        self._wakeups: LightQueue = LightQueue(maxsize=1)
        self._running = False

    def start(self):
        self._running = True
        self.container.spawn_managed_thread(self.run)

    def stop(self):
        self._running = False
        self.wake()
        # deliveries in flight get their answer (at most the timeout); one cut short is sent again after its lease
        with eventlet.Timeout(self.policy.timeout_s + 1, False):
            self.pool.waitall()
        self.sender.close()

    def kill(self):
        self._running = False
        for thread in list(self.pool.coroutines_running):
            thread.kill()
        self.sender.close()

    def get_dependency(self, worker_ctx):
        return self

    def wake(self) -> None:
        try:
            self._wakeups.put_nowait(True)
        except Full:
            pass

    def run(self) -> None:
        failures = 0
        while self._running:
            try:
                self._wakeups.get(timeout=self.settings.webhook_poll_s if not failures
                                  else min(RETRY_MAX_S, 2.0 ** (failures - 1)))
            except Empty:
                pass
            if not self._running:
                break
            try:
                self.dispatch()
                failures = 0
            except Exception as exc:  # the database is down: try again shortly
                failures = min(failures + 1, 5)
                if failures == 1:
                    log.exception("webhook deliveries could not be claimed; will retry")
                else:
                    log.warning("webhook deliveries could not be claimed again (%s); will retry", exc)

    def dispatch(self) -> int:
        """Lease due webhooks for every free worker; returns how many were handed out."""
        handed = 0
        while self._running:
            free = self.pool.free()
            if free <= 0:
                break
            jobs = self._transaction(lambda uow, free=free: commands.claim(uow, free, self.policy, self.box))
            for job in jobs:
                self.pool.spawn_n(self._deliver, job)
            handed += len(jobs)
            if len(jobs) < free:
                break
        return handed

    def _deliver(self, job: commands.Job) -> None:
        """Send the job; while the webhook's next delivery is due at once, send that too, up to ``DRAIN``
        in a row (then the lease goes back, so webhooks with a backlog take turns when workers are short)."""
        try:
            for sent in range(1, DRAIN + 1):
                at = utcnow()
                if job.unreadable:
                    outcome = Outcome(False, None, job.unreadable, 0.0)
                else:
                    outcome = self.sender.post(job.url, job.payload, job.headers)
                box = self.box if sent < DRAIN and self._running else None
                result, following = self._transaction(
                    lambda uow, job=job, outcome=outcome, at=at, box=box: commands.finish(uow, job, outcome, at,
                                                                                          self.policy, box))
                if result == "failed":
                    log.warning("webhook %s is failing: delivery %s gave up after its retry period (%s)",
                                job.webhook_id, job.delivery_id, outcome.error)
                if following is None:
                    return
                job = following
        except Exception:  # its lease runs out and the delivery is tried again
            log.exception("delivering for webhook %s failed", job.webhook_id)
        finally:
            self.wake()  # its next delivery may be due now, or another webhook may use this worker

    def _transaction(self, command):
        uow = WorkerDatabase(self.database)
        try:
            with uow.transaction():
                return command(uow)
        finally:
            uow.close()
