"""Event queues declared before anyone publishes, so no event of a fresh install is lost.

RabbitMQ drops an event that no queue is bound to. nameko declares a service's event queue (durable,
one per handler: ``evt-<source>-<event>--<service>.<method>``) when that service starts, so on a fresh
install the events a publisher sends before its consumers first start would vanish. ``migrate`` runs
before every process starts (``make run``, each compose container), so it declares the queues of
*every* registered service's event handlers, exactly as nameko would: whichever process migrates first,
the queues exist before the first event is published.
"""

from __future__ import annotations

import importlib
import logging

from kombu import Connection, Queue
from nameko.events import SERVICE_POOL, EventHandler
from nameko.standalone.events import get_event_exchange

from crm_common import registry

log = logging.getLogger(__name__)


def service_class(spec: registry.ServiceSpec):
    module, _, name = spec.entry.partition(":")
    return getattr(importlib.import_module(module), name)


def handler_queues(service_cls, config: dict) -> list[Queue]:
    """The durable queues nameko binds for ``service_cls``'s pooled event handlers (same names and flags)."""
    queues = []
    for method_name in dir(service_cls):
        method = getattr(service_cls, method_name, None)
        for entrypoint in getattr(method, "nameko_entrypoints", ()):
            if not isinstance(entrypoint, EventHandler) or entrypoint.handler_type != SERVICE_POOL:
                continue
            name = f"evt-{entrypoint.source_service}-{entrypoint.event_type}--{service_cls.name}.{method_name}"
            exchange = get_event_exchange(entrypoint.source_service, config)
            queues.append(Queue(name, exchange=exchange, routing_key=entrypoint.event_type, durable=True,
                                auto_delete=not entrypoint.reliable_delivery, exclusive=False))
    return queues


def consumer_queues(config: dict) -> list[Queue]:
    return [queue for spec in registry.REGISTRY for queue in handler_queues(service_class(spec), config)]


def declare_consumer_queues(config: dict) -> int:
    """Declare every registered service's event queues with their bindings; the number declared.

    A broker that cannot be reached is logged, not raised: the services declare their own queues when
    they start, so only events published before then would be missed.
    """
    queues = consumer_queues(config)
    try:
        with Connection(config["AMQP_URI"], connect_timeout=5) as connection:
            connection.ensure_connection(max_retries=1)
            channel = connection.default_channel
            for queue in queues:
                queue.bind(channel).declare()
    except Exception as exc:  # noqa: BLE001 - see the docstring
        log.warning("event queues not declared (%s: %s); each service declares its own when it starts",
                    exc.__class__.__name__, exc)
        return 0
    return len(queues)
