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
import re
import socket
import time
import uuid
from functools import partial

import eventlet
from eventlet import wsgi
from eventlet.event import Event
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import HttpOnlyProtocol, WebServer, WsgiApp
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.exceptions import NotFound as RouteNotFound
from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from crm_common.bus import BUS_ERRORS
from crm_common.config import Settings
from crm_common.errors import BadRequest, CrmError, NotAcceptable, PayloadTooLarge, ValidationError
from crm_common.schemas import find_unstorable
from gateway import cors
from gateway.apikeys import check_access
from gateway.errors import error_response
from gateway.uploads import read_upload

log = logging.getLogger(__name__)
access_log = logging.getLogger("crm.access")

API_PREFIX = "/api/v1"
JSON = "application/json"
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
BODY_METHODS = {"POST", "PUT", "PATCH"}
MAX_BODY_BYTES = 1024 * 1024
# what the request headers the gateway reads may hold; the OpenAPI document states the same patterns
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]([\x20-\x7e]{0,253}[\x21-\x7e])?$"  # 1-255 visible ASCII characters
IF_MATCH_PATTERN = r'^((W/)?"[0-9]{1,18}"|[0-9]{1,18})$'  # 3, "3" or W/"3"
REQUEST_ID_PATTERN = r"^[\x21-\x7e]([\x20-\x7e]{0,98}[\x21-\x7e])?$"  # a client's X-Request-Id we echo
_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)
_DIGITS = re.compile("[0-9]+")
# connections the kernel queues for a process before accept(); eventlet's default of 50 drops bursts
LISTEN_BACKLOG = 1024


def json_response(status: int, payload, headers: dict | None = None) -> Response:
    if payload is None:
        return Response(status=status, headers=headers)
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return Response(body, status=status, headers=headers, content_type="application/json; charset=utf-8")


def request_id_of(headers) -> str:
    """The client's ``X-Request-Id`` if it is 1-100 visible ASCII characters, else a new UUID."""
    given = headers.get("X-Request-Id", "")
    return given if _REQUEST_ID.fullmatch(given) else str(uuid.uuid4())


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
    """Unknown routes and wrong methods answer in the API's JSON error shape too; CORS for the listed origins
    (gateway/cors.py)."""

    def __init__(self, server):
        super().__init__(server)
        self.cors_origins = Settings.from_config(server.container.config).cors_origins

    def __call__(self, environ, start_response):
        request = Request(environ, shallow=True)
        origin = cors.allowed_origin(environ, self.cors_origins, API_PREFIX)
        if origin is not None and cors.is_preflight(environ):
            return cors.preflight_response(origin)(environ, start_response)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            provider, values = adapter.match()
            request.path_values = values
            response = provider.handle_request(request)
        except HTTPException as exc:
            response = _http_error(exc)
            response.headers["X-Request-Id"] = request_id_of(request.headers)
        cors.add_headers(response, origin, self.cors_origins)
        return response(environ, start_response)


# what eventlet's server answers by itself, before any route, as (status, code, message)
URI_TOO_LONG = (414, "uri_too_long", f"the request line is longer than {wsgi.MAX_REQUEST_LINE} bytes")
HEADERS_TOO_LARGE = (431, "headers_too_large", f"a header line is longer than {wsgi.MAX_HEADER_LINE} bytes, or all "
                                               f"together more than {wsgi.MAX_TOTAL_HEADER_SIZE}")
BAD_FRAMING = (400, "bad_request", "the body must be framed by a Content-Length (a whole number) or by "
                                   "Transfer-Encoding: chunked, not both")


def raw_json_error(status: int, code: str, message: str, headers: dict | None = None) -> bytes:
    """A whole HTTP/1.1 response in the API's error shape, for answers written before any WSGI app runs."""
    body = json.dumps({"error": {"code": code, "message": message}}, separators=(",", ":")).encode()
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}", "Content-Type: application/json; charset=utf-8",
             f"Content-Length: {len(body)}", f"X-Request-Id: {uuid.uuid4()}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


_REASONS = {400: "Bad Request", 414: "URI Too Long", 431: "Request Header Fields Too Large",
            505: "HTTP Version Not Supported"}


class JsonHttpProtocol(HttpOnlyProtocol):
    """eventlet's HTTP protocol, whose own refusals (a request line or headers too long, a malformed request
    line, a bad Content-Length, an unsupported HTTP version) answer in the API's JSON error shape instead of
    an empty or HTML body."""

    def _read_request_line(self):
        line = super()._read_request_line()
        if len(line) >= self.server.url_length_limit:
            self._refuse(*URI_TOO_LONG)
            return ""  # eventlet then closes the connection without writing its own answer
        return line

    def parse_request(self):
        try:
            if not super().parse_request():  # it has answered through send_error
                return False
        except (wsgi.HeaderLineTooLong, wsgi.HeadersTooLarge):
            self._refuse(*HEADERS_TOO_LARGE)
            return False
        length, coding = self.headers.get("content-length"), self.headers.get("transfer-encoding")
        # eventlet reads a body by Content-Length or as chunks when the coding is exactly "chunked"; any other
        # framing would leave the body on the connection to be read as the next request
        if (length is not None and (not _DIGITS.fullmatch(length) or coding is not None)) or (
            coding is not None and coding.lower() != "chunked"
        ):
            self._refuse(*BAD_FRAMING)
            return False
        return True

    def send_error(self, code, message=None, explain=None):
        """What ``http.server`` calls for a malformed request line, too many headers or a bad HTTP version."""
        error_code = {431: "headers_too_large", 505: "http_version_not_supported"}.get(code, "bad_request")
        self._refuse(code, error_code, message or explain or "malformed request")

    def _refuse(self, status: int, code: str, message: str) -> None:
        self.close_connection = 1
        try:
            self.wfile.write(raw_json_error(status, code, message))
            self.wfile.flush()
        except OSError:  # the client went away
            pass


class JsonWebServer(WebServer):
    def get_wsgi_app(self):
        return JsonWsgiApp(self)

    def get_wsgi_server(self, sock, wsgi_app, protocol=JsonHttpProtocol, debug=False):
        return super().get_wsgi_server(sock, wsgi_app, protocol=protocol, debug=debug)
    def start(self):
        """nameko's start, but SO_REUSEPORT only when asked (CRM_HTTP_REUSE_PORT): then several gateway
        processes share the port and the kernel spreads connections over them. eventlet sets it by
        default, which would let any process of the same user silently take a share of the connections."""
        if not self._starting:
            self._starting = True
            reuse_port = Settings.from_config(self.container.config).http_reuse_port
            self._sock = eventlet.listen(self.bind_addr, backlog=LISTEN_BACKLOG, reuse_port=reuse_port)
            self._sock.settimeout(None)  # nameko's workaround for kombu/issues/838, kept
            self._serv = self.get_wsgi_server(self._sock, self.get_wsgi_app())
            self._gt = self.container.spawn_managed_thread(self.run)

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
        etag: bool = False,
        answers: dict | None = None,
        upload=None,
        produces: str | None = None,
        formats: tuple[str, ...] = (JSON,),
        scopes: tuple[str, ...] | None = None,
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
        self.etag = etag
        self.answers = answers or {}  # other statuses the route answers with a body of its own: {503: Schema}
        self.upload = upload  # the form schema of a multipart upload, read by the route's wrapper (uploads.py)
        self.produces = produces  # the media type of a raw route's body, for the OpenAPI document
        self.formats = formats
        self.scopes = scopes  # the API-key scopes the route accepts; none: keys are refused (gateway/apikeys.py)

    def get_url_rule(self):
        return Rule(self.url, methods=[self.method], strict_slashes=False)

    def setup(self):
        super().setup()
        self.max_body_bytes = Settings.from_config(self.container.config).max_body_bytes

    def handle_request(self, request):
        started = time.monotonic()
        request.shallow = False
        request.request_id = request_id_of(request.headers)
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
            response = self.response_from_exception(exc, request)
        response.headers["X-Request-Id"] = request.request_id
        # set by the route wrapper for every answer, the errors included (the RateLimit-* headers)
        for name, value in getattr(request, "extra_headers", {}).items():
            response.headers[name] = value
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
        if self.method not in BODY_METHODS or self.upload is not None:
            return None
        limit = getattr(self, "max_body_bytes", MAX_BODY_BYTES)
        if (request.content_length or 0) > limit:
            raise PayloadTooLarge(f"the body is larger than {limit} bytes")
        if request.headers.get("Transfer-Encoding", "").lower() == "chunked":
            # werkzeug gives an empty stream without Content-Length; eventlet's input decodes the chunks and
            # ends at the last one, so it is safe to read directly
            stream = request.environ["wsgi.input"]
        else:
            stream = request.stream
        data = stream.read(limit + 1)  # never more than the limit in memory
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

    def response_from_exception(self, exc, request=None):
        if not isinstance(exc, CrmError) and not isinstance(exc, BUS_ERRORS):
            log.error("unexpected error in %s %s", self.method, self.url, exc_info=exc)
        status, payload, headers = error_response(exc)
        if status >= 500 and request is not None:
            payload["error"]["request_id"] = request.request_id
            if status == 503 and self.method in WRITE_METHODS and not self.public:
                # the service may have done the write after the gateway stopped waiting
                key = request.headers.get("Idempotency-Key") or request.request_id
                payload["error"]["message"] += (
                    f"; the write may still be done: repeat the request with the header 'Idempotency-Key: {key}' "
                    "to get its outcome (it is never done twice)"
                )
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
        scopes = options.get("scopes")
        entrypoint = options.pop("entrypoint", ApiEntrypoint)  # e.g. gateway.streaming.StreamEntrypoint

        def route(self, request, **path_values):
            caller = None
            if not public:
                caller = self.auth.authenticate(request)
                self.rate_limit.check(caller, request)
                check_access(caller, roles, scopes)  # a user's role, or an API key's scopes
            audit = getattr(self, "audit", None)  # the audit log: the read cap now, the entry when answered
            rule = audit.before(fn.__name__, caller) if audit is not None else None
            if options.get("upload") is not None:
                # read only now that the caller may upload; the form (file digests) is what Idempotency-Key keys
                request.json_body = read_upload(request, self.settings)

            def run():
                result = fn(self, request, caller, **path_values)
                if rule is None:
                    return result
                return audit.after(rule, caller, request, path_values, result, self.db.reader)

            if method in WRITE_METHODS and caller is not None:
                key = request.headers.get("Idempotency-Key")
                if key is not None:
                    return self.idempotency.run(caller, request, key, run, options.get("status", 200))
                # no key from the client: the request id stands in for one, so the services still run the
                # write once, and a client told 503 can retry with `Idempotency-Key: <request id>`
                self.idempotency.identify(caller, request, request.request_id)
            return run()

        route.__name__ = fn.__name__
        route.__doc__ = fn.__doc__
        route.__qualname__ = fn.__qualname__
        route.route_body = fn  # not __wrapped__: nameko checks call signatures against the wrapper
        return entrypoint.decorator(method, path, **options)(route)

    return decorate
