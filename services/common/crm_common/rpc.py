"""RPC between services: an entrypoint that sends errors as shared contracts, and a proxy with a timeout.

``rpc`` replaces ``nameko.rpc.rpc``: a ``CrmError`` subclass raised by a service (or a marshmallow
``ValidationError`` that escaped) travels as its shared category from ``crm_common.errors``.

``RpcProxy`` replaces ``nameko.rpc.RpcProxy``: every call waits at most ``rpc_timeout_s`` and the
request message expires after the same time, so a service that was down does not execute a stale
request the caller was already told failed. Timeouts and unknown services raise ``Unavailable``.

Requests are published transient and replies without publisher confirms: a request cannot outlive its
timeout anyway, and a lost reply is a timeout for the caller either way, so neither disk writes nor
confirm round trips buy anything on these messages. Events (``crm_common.outbox``) keep both.

Every request carries a request id to the service: the caller's idempotency key when it has one (the
gateway always sets one for writes), else the request message's correlation id, which a redelivered
message keeps. ``WorkerDatabase.write`` runs each write once per id (see ``crm_common.db``).

Consumers reconnect by themselves and a reply that cannot be sent is logged, never fatal
(``crm_common.bus``).
"""

from __future__ import annotations

import logging
import sys
from functools import partial

import eventlet
import marshmallow
import sqlalchemy.exc
import sqlalchemy.orm.exc
from nameko import rpc as nameko_rpc
from nameko.amqp.publish import Publisher
from nameko.constants import (
    AMQP_SSL_CONFIG_KEY,
    AMQP_URI_CONFIG_KEY,
    DEFAULT_SERIALIZER,
    LOGIN_METHOD_CONFIG_KEY,
    SERIALIZER_CONFIG_KEY,
)
from nameko.constants import (
    NON_PERSISTENT as TRANSIENT,
)
from nameko.exceptions import ContainerBeingKilled, MalformedRequest, UnknownService
from nameko.rpc import get_rpc_exchange

from crm_common.bus import BUS_ERRORS, QueueConsumer
from crm_common.config import Settings
from crm_common.db import MESSAGE_ID_CONTEXT_KEY
from crm_common.errors import (
    Conflict,
    CrmError,
    Unavailable,
    ValidationError,
    VersionConflict,
    flatten_messages,
    wire_class,
)

log = logging.getLogger(__name__)

UNSTORABLE = {"body": ["A value is out of the range that can be stored."]}


def to_wire_error(exc: BaseException) -> BaseException:
    """The shared error a failure travels as. Commands catch their expected races themselves (with a
    message naming the record); the database errors below are the safety net for races and limits a
    command did not foresee, so the caller gets a 409 or 422 to act on rather than a 500 (nameko still
    logs them with their traceback: they are not expected exceptions)."""
    if isinstance(exc, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)):
        return Unavailable("the service's database is unreachable")
    if isinstance(exc, sqlalchemy.orm.exc.StaleDataError):
        return VersionConflict("the record changed meanwhile; read it again and retry")
    if isinstance(exc, sqlalchemy.exc.IntegrityError):
        return Conflict("the request conflicts with a concurrent change; read the records again and retry")
    if isinstance(exc, sqlalchemy.exc.DataError):
        return ValidationError("a value is out of the range that can be stored", fields=UNSTORABLE)
    if isinstance(exc, marshmallow.ValidationError):
        return ValidationError("invalid input", fields=flatten_messages(exc.messages))
    if isinstance(exc, CrmError):
        cls = wire_class(exc)
        if type(exc) is not cls:
            return cls(exc.message, exc.fields, exc.details)
    return exc


class _ReplyPublisher(Publisher):
    # a lost reply is a timeout for the caller with or without a confirm: waiting for it only adds a round trip
    use_confirms = False


class _Responder(nameko_rpc.Responder):
    publisher_cls = _ReplyPublisher


class RpcConsumer(nameko_rpc.RpcConsumer):
    """nameko's, replying without publisher confirms; a reply lost with the broker is logged, not fatal."""

    queue_consumer = QueueConsumer()

    def handle_result(self, message, result, exc_info):
        config = self.container.config
        responder = _Responder(
            config[AMQP_URI_CONFIG_KEY], get_rpc_exchange(config), config.get(SERIALIZER_CONFIG_KEY, DEFAULT_SERIALIZER),
            message, ssl=config.get(AMQP_SSL_CONFIG_KEY), login_method=config.get(LOGIN_METHOD_CONFIG_KEY),
        )
        try:
            result, exc_info = responder.send_response(result, exc_info)
        except BUS_ERRORS as exc:
            # the caller times out; a write's result is in the command log for its retry
            log.warning(
                "could not send the reply to %s (%s); the caller will time out",
                message.delivery_info.get("routing_key"), exc,
            )
        self.queue_consumer.ack_message(message)
        return result, exc_info


class Rpc(nameko_rpc.Rpc):
    rpc_consumer = RpcConsumer()

    def __init__(self, expected_exceptions=(CrmError, marshmallow.ValidationError), **kwargs):
        super().__init__(expected_exceptions=expected_exceptions, **kwargs)

    def handle_message(self, body, message):
        """nameko's, plus the message's correlation id in the context data: the request id of a call without
        an idempotency key (``crm_common.db``), never forwarded to the calls the worker makes."""
        try:
            args = body["args"]
            kwargs = body["kwargs"]
        except KeyError:
            raise MalformedRequest("Message missing `args` or `kwargs`") from None
        self.check_signature(args, kwargs)
        context_data = self.unpack_message_headers(message)
        context_data[MESSAGE_ID_CONTEXT_KEY] = message.properties.get("correlation_id")
        try:
            self.container.spawn_worker(
                self, args, kwargs, context_data=context_data, handle_result=partial(self.handle_result, message)
            )
        except ContainerBeingKilled:
            self.rpc_consumer.requeue_message(message)

    def handle_result(self, message, worker_ctx, result, exc_info):
        if exc_info is not None:
            wire = to_wire_error(exc_info[1])
            if wire is not exc_info[1]:
                exc_info = (type(wire), wire, exc_info[2])
        return super().handle_result(message, worker_ctx, result, exc_info)


rpc = Rpc.decorator


class TimedMethodProxy(nameko_rpc.MethodProxy):
    def __init__(self, worker_ctx, service_name, method_name, reply_listener, timeout, **options):
        self.timeout = timeout
        options.setdefault("expiration", timeout)
        # a request outlives neither its timeout nor a broker restart: keeping it on disk buys nothing
        options.setdefault("delivery_mode", TRANSIENT)
        # reconnecting to a broker that is down must not outlast the timeout the caller was promised
        options.setdefault(
            "retry_policy", {"max_retries": 2, "interval_start": 0, "interval_step": timeout / 4, "interval_max": timeout / 2}
        )
        super().__init__(worker_ctx, service_name, method_name, reply_listener, **options)

    def __call__(self, *args, **kwargs):
        return self.call_async(*args, **kwargs).result()

    def get_message_headers(self, worker_ctx):
        headers = super().get_message_headers(worker_ctx)
        headers.pop(self._get_header_name(MESSAGE_ID_CONTEXT_KEY), None)
        return headers

    def call_async(self, *args, **kwargs):
        try:
            reply = self._call(*args, **kwargs)
        except UnknownService:
            raise Unavailable(f"service '{self.service_name}' is not running") from None
        except BUS_ERRORS as exc:
            raise Unavailable(f"message bus unreachable: {exc}") from None
        return TimedReply(reply, self)


class TimedReply:
    def __init__(self, reply, proxy: TimedMethodProxy):
        self.reply = reply
        self.proxy = proxy
        self.timeout = proxy.timeout

    def result(self):
        try:
            with eventlet.Timeout(self.timeout):
                return self.reply.result()
        except eventlet.Timeout:
            self._forget()
            raise Unavailable(
                f"service '{self.proxy.service_name}' did not answer "
                f"{self.proxy.method_name} within {self.timeout:g}s"
            ) from None

    def _forget(self):
        events = self.proxy.reply_listener._reply_events
        for correlation_id, event in list(events.items()):
            if event is self.reply.reply_event:
                events.pop(correlation_id, None)


class TimedServiceProxy(nameko_rpc.ServiceProxy):
    def __init__(self, worker_ctx, service_name, reply_listener, timeout, **options):
        super().__init__(worker_ctx, service_name, reply_listener, **options)
        self.timeout = timeout

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return TimedMethodProxy(
            self.worker_ctx, self.service_name, name, self.reply_listener, self.timeout, **self.options
        )


class ReplyListener(nameko_rpc.ReplyListener):
    queue_consumer = QueueConsumer()


class RpcProxy(nameko_rpc.RpcProxy):
    """``RpcProxy("clients")``: calls ``self.clients_rpc.get_client(...)`` with a timeout."""

    rpc_reply_listener = ReplyListener()

    def __init__(self, target_service, timeout: float | None = None, **options):
        super().__init__(target_service, **options)
        self.timeout = timeout

    def setup(self):
        if self.timeout is None:
            self.timeout = Settings.from_config(self.container.config).rpc_timeout_s
        super().setup()

    def get_dependency(self, worker_ctx):
        return TimedServiceProxy(
            worker_ctx, self.target_service, self.rpc_reply_listener, self.timeout, **self.options
        )


class ServiceDirectory:
    def __init__(self, worker_ctx, reply_listener, timeout, options):
        self._args = (worker_ctx, reply_listener, timeout, options)

    def __getitem__(self, service_name: str) -> TimedServiceProxy:
        worker_ctx, reply_listener, timeout, options = self._args
        return TimedServiceProxy(worker_ctx, service_name, reply_listener, timeout, **options)


class ClusterRpc(RpcProxy):
    """``services = ClusterRpc(timeout=2)``: ``self.services["clients"].health()`` for any service by name."""

    def __init__(self, timeout: float | None = None, **options):
        super().__init__(None, timeout=timeout, **options)

    def get_dependency(self, worker_ctx):
        return ServiceDirectory(worker_ctx, self.rpc_reply_listener, self.timeout, self.options)


def spawn_calls(calls):
    """Run several ``(callable, args)`` concurrently and return their results in order.

    A failing call yields its exception instead of a result, so a caller can report each one.
    """
    pool = eventlet.GreenPool(len(calls) or 1)

    def run(call):
        fn, args = call
        try:
            return fn(*args)
        except Exception:  # noqa: BLE001 - reported to the caller per call
            return sys.exc_info()[1]

    return list(pool.imap(run, calls))
