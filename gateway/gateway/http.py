"""The HTTP layer on nameko's web server: JSON in and out, one error shape, route metadata for OpenAPI.

``@api("POST", "/clients", ...)`` declares a route under ``/api/v1``. Before the route body runs,
the wrapper authenticates the caller (unless ``public``), applies the rate limit and role check, and
replays or records ``Idempotency-Key`` requests, so no route can forget any of them. The route gets
``(self, request, caller, **path_values)`` and returns a payload, ``(status, payload)`` or
``(status, payload, headers)``.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import time
import uuid
from functools import partial

from eventlet.event import Event
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer, WsgiApp
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.exceptions import NotFound as RouteNotFound
from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from crm_common.config import Settings
from crm_common.errors import BadRequest, CrmError, Forbidden, NotAcceptable, PayloadTooLarge, ValidationError
from crm_common.schemas import find_unstorable
from gateway.errors import error_response

log = logging.getLogger(__name__)
access_log = logging.getLogger("crm.access")

API_PREFIX = "/api/v1"
JSON = "application/json"
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
BODY_METHODS = {"POST", "PUT", "PATCH"}
MAX_BODY_BYTES = 1024 * 1024


def json_response(status: int, payload, headers: dict | None = None) -> Response:
    if payload is None:
        return Response(status=status, headers=headers)
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return Response(body, status=status, headers=headers, content_type="application/json; charset=utf-8")


def _http_error(exc: HTTPException) -> Response:
    if isinstance(exc, RouteNotFound):
        error = {"code": "not_found", "message": "no such route"}
    elif isinstance(exc, MethodNotAllowed):
        allowed = ", ".join(sorted(exc.valid_methods or []))
        error = {"code": "method_not_allowed", "message": f"method not allowed here; use {allowed}"}
        return json_response(405, {"error": error}, {"Allow": allowed})
    else:
        error = {"code": "bad_request" if exc.code < 500 else "error", "message": exc.description or exc.name}
    return json_response(exc.code or 400, {"error": error})


class JsonWsgiApp(WsgiApp):
    """Unknown routes and wrong methods answer in the API's JSON error shape too."""

    def __call__(self, environ, start_response):
        request = Request(environ, shallow=True)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            provider, values = adapter.match()
            request.path_values = values
            response = provider.handle_request(request)
        except HTTPException as exc:
            response = _http_error(exc)
        return response(environ, start_response)


class JsonWebServer(WebServer):
    def get_wsgi_app(self):
        return JsonWsgiApp(self)

    def run(self):
        while self._is_accepting:
            sock, addr = self._sock.accept()
            # the server writes a response in more than one segment: with Nagle's algorithm the last one
            # waits for the client's delayed ACK, 40 ms on every response that does not fit one segment
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(self._serv.socket_timeout)
            self.container.spawn_managed_thread(partial(self.process_request, sock, addr))


class ApiEntrypoint(HttpRequestHandler):
    server = JsonWebServer()

    def __init__(
        self,
        method: str,
        path: str,
        *,
        public: bool = False,
        roles: tuple[str, ...] | None = None,
        status: int = 200,
        summary: str = "",
        body=None,
        query=None,
        response=None,
        errors: tuple[int, ...] = (),
        tag: str | None = None,
        prefix: str = API_PREFIX,
        raw: bool = False,
        if_match: bool = False,
        formats: tuple[str, ...] = (JSON,),
        **kwargs,
    ):
        kwargs.setdefault("expected_exceptions", CrmError)
        super().__init__(method, prefix + path, **kwargs)
        self.path = path
        self.public = public
        self.roles = roles
        self.status = status
        self.summary = summary
        self.body = body
        self.query = query
        self.response = response
        self.errors = errors
        self.tag = tag
        self.raw = raw
        self.if_match = if_match
        self.formats = formats

    def get_url_rule(self):
        return Rule(self.url, methods=[self.method], strict_slashes=False)

    def setup(self):
        super().setup()
        self.max_body_bytes = Settings.from_config(self.container.config).max_body_bytes

    def handle_request(self, request):
        started = time.monotonic()
        request.shallow = False
        request.request_id = request.headers.get("X-Request-Id", "")[:100] or str(uuid.uuid4())
        try:
            request.media_type = self._negotiate(request)
            request.json_body = self._parse_body(request)
            args, kwargs = self.get_entrypoint_parameters(request)
            self.check_signature(args, kwargs)
            event = Event()
            # the request id travels in nameko's context data to every service the request reaches
            self.container.spawn_worker(
                self, args, kwargs, context_data={"request_id": request.request_id},
                handle_result=partial(self.handle_result, event),
            )
            response = self.response_from_result(event.wait())
        except Exception as exc:  # noqa: BLE001 - every failure becomes the JSON error shape
            response = self.response_from_exception(exc)
        response.headers["X-Request-Id"] = request.request_id
        access_log.info(
            "%s %s %s", request.method, request.path, response.status_code,
            extra={"request_id": request.request_id, "status": response.status_code,
                   "duration_ms": round((time.monotonic() - started) * 1000, 1)},
        )
        return response

    def _negotiate(self, request) -> str:
        """The format of the answer: the first of the route's ``formats`` the Accept header prefers (JSON when
        it names none of them, or for routes that speak only JSON, which ignore Accept as before)."""
        if len(self.formats) == 1 or not request.headers.get("Accept"):
            return self.formats[0]
        chosen = request.accept_mimetypes.best_match(self.formats)
        if chosen is None:
            offered = ", ".join(self.formats)
            raise NotAcceptable(f"this route answers {offered}",
                                fields={"Accept": [f"Accept one of: {offered}."]})
        return chosen

    def _parse_body(self, request):
        if self.method not in BODY_METHODS:
            return None
        limit = getattr(self, "max_body_bytes", MAX_BODY_BYTES)
        if (request.content_length or 0) > limit:
            raise PayloadTooLarge(f"the body is larger than {limit} bytes")
        data = request.stream.read(limit + 1)  # never more than the limit in memory
        if len(data) > limit:
            raise PayloadTooLarge(f"the body is larger than {limit} bytes")
        if not data.strip():
            if self.body is None:
                return {}
            raise BadRequest("a JSON body is required", fields={"body": ["Missing JSON body."]})
        if request.mimetype != "application/json":
            raise BadRequest(
                "Content-Type must be application/json",
                fields={"Content-Type": [f"Expected application/json, got {request.mimetype or 'nothing'}."]},
            )
        try:
            parsed = json.loads(data.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float)
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadRequest("malformed JSON", fields={"body": [f"Malformed JSON: {exc}"]}) from None
        except RecursionError:
            raise BadRequest("JSON nested too deeply", fields={"body": ["Nested too deeply."]}) from None
        if not isinstance(parsed, dict):
            raise BadRequest("the body must be a JSON object", fields={"body": ["Must be a JSON object."]})
        bad_text = find_unstorable(parsed)
        if bad_text:
            raise ValidationError("invalid text", fields={bad_text: ["Contains a NUL character or invalid Unicode."]})
        return parsed

    def response_from_result(self, result):
        if isinstance(result, Response):
            return result
        headers = None
        if isinstance(result, tuple):
            if len(result) == 3:
                status, payload, headers = result
            else:
                status, payload = result
        else:
            status, payload = self.status, result
        return json_response(status, payload, headers)

    def response_from_exception(self, exc):
        if not isinstance(exc, CrmError):
            log.error("unexpected error in %s %s", self.method, self.url, exc_info=exc)
        status, payload, headers = error_response(exc)
        return json_response(status, payload, headers)


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large a number")
    return value


def api(method: str, path: str, **options):
    """Declare a JSON route; see the module docstring for what the wrapper does before the body runs."""

    def decorate(fn):
        public = options.get("public", False)
        roles = options.get("roles")

        def route(self, request, **path_values):
            caller = None
            if not public:
                caller = self.auth.authenticate(request)
                self.rate_limit.check(caller.id)
                if roles and caller.role not in roles:
                    raise Forbidden(f"this needs the role {' or '.join(roles)}")

            def run():
                return fn(self, request, caller, **path_values)

            key = request.headers.get("Idempotency-Key")
            if key is not None and method in WRITE_METHODS and caller is not None:
                return self.idempotency.run(caller, request, key, run, options.get("status", 200))
            return run()

        route.__name__ = fn.__name__
        route.__doc__ = fn.__doc__
        route.__qualname__ = fn.__qualname__
        route.route_body = fn  # not __wrapped__: nameko checks call signatures against the wrapper
        return ApiEntrypoint.decorator(method, path, **options)(route)

    return decorate
