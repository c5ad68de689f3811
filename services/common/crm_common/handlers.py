"""Event handlers that do not lose events when a failure is temporary.

nameko acknowledges an event whose handler failed (unless ``requeue_on_error``, which would retry a
broken message forever). ``event_handler`` here puts the event back on the queue only when the
failure is temporary — the service's database or another service unreachable — after a fixed pause
(``RETRY_PAUSE_S``) that keeps a worker from spinning, so a database outage delays events instead of
dropping them.
A failure caused by the event itself is logged and the event acknowledged. Handlers must be
idempotent (see ``WorkerDatabase.first_delivery``), as a requeued event may have been half handled.
"""

from __future__ import annotations

import logging

import eventlet
import sqlalchemy.exc
from nameko.events import EventHandler

from crm_common.bus import BUS_ERRORS, QueueConsumer
from crm_common.errors import Unavailable

log = logging.getLogger(__name__)

TEMPORARY = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, Unavailable, *BUS_ERRORS)
RETRY_PAUSE_S = 1.0


def is_temporary(exc: BaseException | None) -> bool:
    return isinstance(exc, TEMPORARY)


class ReliableEventHandler(EventHandler):
    queue_consumer = QueueConsumer()  # the process's one consumer, shared with the RPC entrypoints

    def handle_message_processed(self, message, result=None, exc_info=None):
        if exc_info is not None and is_temporary(exc_info[1]):
            log.warning("requeueing %s after a temporary failure: %s", self.event_type, exc_info[1])
            eventlet.sleep(RETRY_PAUSE_S)  # a database outage must not turn into a hot redelivery loop
            self.queue_consumer.requeue_message(message)
            return
        if exc_info is not None:
            log.error("dropping %s: its handler failed", self.event_type, exc_info=exc_info)
        self.queue_consumer.ack_message(message)


event_handler = ReliableEventHandler.decorator
