"""An event whose handler failed for a temporary reason goes back to the queue; a bad event does not."""

import sys

import pytest
from sqlalchemy.exc import OperationalError

from crm_common import handlers
from crm_common.errors import Unavailable, ValidationError


class FakeQueueConsumer:
    def __init__(self):
        self.acked, self.requeued = [], []

    def ack_message(self, message):
        self.acked.append(message)

    def requeue_message(self, message):
        self.requeued.append(message)


@pytest.fixture
def handler(monkeypatch):
    monkeypatch.setattr(handlers, "RETRY_PAUSE_S", 0)
    entrypoint = handlers.ReliableEventHandler("deals", "deal_created")
    entrypoint.queue_consumer = FakeQueueConsumer()
    return entrypoint


def failure(exc):
    try:
        raise exc
    except Exception:  # noqa: BLE001 - building exc_info as nameko passes it
        return sys.exc_info()


@pytest.mark.parametrize(
    "exc",
    [OperationalError("SELECT 1", {}, Exception("server closed the connection")), Unavailable("deals is down"),
     ConnectionError("refused")],
)
def test_an_event_that_failed_for_a_temporary_reason_is_requeued(handler, exc):
    handler.handle_message_processed("message", exc_info=failure(exc))
    assert handler.queue_consumer.requeued == ["message"] and handler.queue_consumer.acked == []


@pytest.mark.parametrize("exc", [KeyError("deal"), ValidationError("bad payload")])
def test_an_event_its_handler_cannot_process_is_acknowledged_not_retried_forever(handler, exc):
    handler.handle_message_processed("message", exc_info=failure(exc))
    assert handler.queue_consumer.acked == ["message"] and handler.queue_consumer.requeued == []


def test_a_handled_event_is_acknowledged(handler):
    handler.handle_message_processed("message", result=True)
    assert handler.queue_consumer.acked == ["message"]
