"""The one table that turns errors into HTTP responses: ``{"error": {code, message, fields?, ...}}``."""

from __future__ import annotations

import logging

from nameko.exceptions import ContainerBeingKilled, MalformedRequest, MethodNotFound, RemoteError, UnknownService
from sqlalchemy.exc import DataError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm.exc import StaleDataError

from crm_common.bus import BUS_ERRORS
from crm_common.errors import CrmError
from crm_common.rpc import to_wire_error

log = logging.getLogger(__name__)

# races and limits a command did not foresee: answered with a 4xx, logged as the errors they are
UNFORESEEN_DATABASE_ERRORS = (StaleDataError, IntegrityError, DataError)

# a 503 tells the client to come back: a service restarts or the broker reconnects within seconds
UNAVAILABLE_RETRY_AFTER_S = 2

# status and code for errors that are not CrmErrors (the CrmErrors carry their own)
FOREIGN_ERRORS: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], int, str, str], ...] = (
    (UnknownService, 503, "unavailable", "a service behind the gateway is not running"),
    (MethodNotFound, 503, "unavailable", "a service behind the gateway is an incompatible version"),
    (MalformedRequest, 500, "internal_error", "the gateway sent a malformed request"),
    (RemoteError, 500, "internal_error", "a service failed while handling the request"),
    (ContainerBeingKilled, 503, "unavailable", "the gateway is stopping; another instance or a retry will answer"),
    (OperationalError, 503, "unavailable", "the gateway's database is unreachable"),
    (InterfaceError, 503, "unavailable", "the gateway's database is unreachable"),
    (BUS_ERRORS, 503, "unavailable", "the message bus or a database is unreachable"),
)

ERROR_STATUSES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    406: "not_acceptable",
    409: "conflict",
    410: "gone",
    413: "payload_too_large",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


def error_response(exc: BaseException) -> tuple[int, dict, dict]:
    """``(status, body, headers)`` for any exception raised while serving a request."""
    headers: dict[str, str] = {}
    if isinstance(exc, UNFORESEEN_DATABASE_ERRORS):  # the gateway's own: answered as a service's would be
        log.error("internal error: %r", exc)
        exc = to_wire_error(exc)
    if isinstance(exc, CrmError):
        body = exc.to_body()
        if exc.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="crm"'
        retry_after = exc.details.get("retry_after")
        if retry_after is not None:
            headers["Retry-After"] = str(int(retry_after))
        elif exc.status == 503:
            headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER_S)
        return exc.status, body, headers
    for cls, status, code, message in FOREIGN_ERRORS:
        if isinstance(exc, cls):
            if status >= 500 and status != 503:
                log.error("internal error: %r", exc)
            if status == 503:
                headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER_S)
            return status, {"error": {"code": code, "message": message}}, headers
    log.error("unhandled error: %r", exc)
    return 500, {"error": {"code": "internal_error", "message": "unexpected error; it has been logged"}}, headers
