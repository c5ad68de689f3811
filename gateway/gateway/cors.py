"""CORS: web pages served from the origins in ``CRM_CORS_ORIGINS`` may call the API from a browser (a website's
form posting ``POST /touchpoints`` with an API key, say); every other origin gets no CORS headers, so browsers
keep their pages out. Only ``/api/v1`` takes part.

A preflight (``OPTIONS`` with ``Access-Control-Request-Method``) from a listed origin is answered 204 before any
route runs, naming the methods and request headers the API reads; an actual request from a listed origin gets
``Access-Control-Allow-Origin`` and the response headers a page may read (``Access-Control-Expose-Headers``).
Credentials are bearer tokens and API keys sent as headers, never cookies, so ``Allow-Credentials`` is not sent.
"""

from __future__ import annotations

from werkzeug.wrappers import Response

ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE"
ALLOW_HEADERS = "Authorization, Content-Type, Idempotency-Key, If-Match, X-Request-Id, X-Api-Key, Accept"
EXPOSE_HEADERS = ("Location, ETag, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, X-Request-Id, "
                  "Idempotent-Replayed, Content-Disposition, WWW-Authenticate")
MAX_AGE_S = 600


def allowed_origin(environ, origins: tuple[str, ...], prefix: str) -> str | None:
    """The request's Origin if it is listed and the path is the API's, else None."""
    origin = environ.get("HTTP_ORIGIN")
    path = environ.get("PATH_INFO", "")
    if not origin or not origins or not (path == prefix or path.startswith(prefix + "/")):
        return None
    return origin if origin.lower() in {o.lower() for o in origins} else None


def is_preflight(environ) -> bool:
    return environ.get("REQUEST_METHOD") == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ


def preflight_response(origin: str) -> Response:
    return Response(status=204, headers={
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": ALLOW_METHODS,
        "Access-Control-Allow-Headers": ALLOW_HEADERS,
        "Access-Control-Max-Age": str(MAX_AGE_S),
        "Vary": "Origin",
    })


def add_headers(response: Response, origin: str | None, origins: tuple[str, ...]) -> None:
    """CORS headers for a listed origin; with any origins configured, caches learn the answer depends on Origin."""
    if origins:
        response.vary.add("Origin")
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
