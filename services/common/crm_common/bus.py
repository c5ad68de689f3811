"""Living through a broker outage: consumers that reconnect quickly, acks and replies that cannot kill a service.

nameko 2.14 already reconnects a consumer whose connection is lost (kombu's ``ConsumerMixin.run``
catches the connection error and consumes again), but two things turn an outage into dead processes
or a slow recovery:

- a worker that finishes while the broker is away fails to publish its RPC reply (kombu
  ``OperationalError`` after the publisher's retries), or to ack its message on a connection that
  closed after nameko's ``message.channel.connection`` check (py-amqp's ``RecoverableConnectionError``
  is not the built-in ``ConnectionError`` nameko catches); the exception escapes the worker thread and
  nameko kills the container, so the process exits;
- the consumer retries its connection after 2, 4, 6 ... up to 30 s, so after a long outage a service
  may wait half a minute before it consumes again.

``QueueConsumer`` here retries every ``RECONNECT_MAX_S`` at most and swallows bus errors on ack and
requeue (the broker has already put the message back when its connection closed: redelivery covers
it). The RPC entrypoint (``crm_common.rpc``) logs a reply it could not send instead of dying: the
caller has timed out by then, and a write's result waits in the service's command log for its retry.
Every consumer of a process must use this class, which nameko shares per class: ``Rpc``,
``event_handler`` and ``RpcProxy`` from ``crm_common`` do.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

import amqp.exceptions
import kombu.exceptions
from nameko import messaging

log = logging.getLogger(__name__)

# what a lost or refused broker connection raises: kombu's wrapper, py-amqp's own connection errors
# (not subclasses of the built-in ConnectionError), and socket errors
BUS_ERRORS: tuple[type[BaseException], ...] = (
    kombu.exceptions.OperationalError,
    amqp.exceptions.ConnectionError,
    amqp.exceptions.RecoverableChannelError,
    OSError,
)

RECONNECT_START_S = 0.2
RECONNECT_STEP_S = 0.4
RECONNECT_MAX_S = 1.0  # after the broker returns, a consumer is back within a second


def is_bus_error(exc: BaseException | None) -> bool:
    return isinstance(exc, BUS_ERRORS)


class QueueConsumer(messaging.QueueConsumer):
    """nameko's consumer: reconnects within ``RECONNECT_MAX_S``; acks and requeues never raise bus errors."""

    @contextmanager
    def establish_connection(self):
        with self.create_connection() as conn:
            conn.ensure_connection(
                self.on_connection_error, self.connect_max_retries,
                interval_start=RECONNECT_START_S, interval_step=RECONNECT_STEP_S, interval_max=RECONNECT_MAX_S,
            )
            yield conn

    def ack_message(self, message):
        try:
            super().ack_message(message)
        except BUS_ERRORS as exc:  # the connection closed: the broker requeued the message itself
            log.info("could not acknowledge a message (%s); the broker will deliver it again", exc)

    def requeue_message(self, message):
        try:
            super().requeue_message(message)
        except BUS_ERRORS as exc:
            log.info("could not requeue a message (%s); the broker will deliver it again", exc)
