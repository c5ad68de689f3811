"""Sending a delivery: an HTTP POST that connects only to addresses that passed the checks.

The URL was checked when the webhook was saved, but a name may resolve elsewhere by the time of a delivery
(DNS rebinding). So the connection itself resolves the host, refuses the attempt if any address is not
allowed (``domain.refusal``), and connects to the very addresses it checked: nothing resolves the name a
second time in between. TLS still verifies the certificate against the host name. Redirects are not
followed, proxies from the environment are not used, and the whole answer must come within the timeout.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass

import eventlet
import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError
from urllib3.util import connection as urllib3_connection

from webhooks import domain

MAX_EXCERPT = 300  # characters of a refusing receiver's answer kept with the attempt
MAX_READ = 64 * 1024  # an answer is read up to this much, then the connection is dropped
RESOLVE_TIMEOUT_S = 3.0


class AddressRefused(NewConnectionError):
    """The host resolved to an address deliveries may not reach."""


def resolve(host: str, port: int, timeout_s: float = RESOLVE_TIMEOUT_S) -> list[tuple]:
    """``getaddrinfo`` for TCP, each address once, within ``timeout_s`` (green under eventlet)."""
    with eventlet.Timeout(timeout_s, socket.gaierror(f"resolving {host} took longer than {timeout_s:g} s")):
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen, found = set(), []
    for family, _type, _proto, _name, sockaddr in infos:
        if sockaddr[0] not in seen:
            seen.add(sockaddr[0])
            found.append((family, sockaddr))
    return found


def check_url(url: str, allow_private: bool) -> domain.Target:
    """The checks made when a webhook is saved: the URL's form, and every address its host resolves to now.
    Raises ``domain.UrlRefused`` with the reason."""
    target = domain.parse_url(url)
    if target.address is not None:
        domain.refuse_addresses(target.host, [target.address], allow_private)
        return target
    try:
        found = resolve(target.host, target.port)
    except (OSError, UnicodeError) as exc:
        raise domain.UrlRefused(f"{target.host} does not resolve: {exc}.") from None
    domain.refuse_addresses(target.host, [ipaddress.ip_address(sockaddr[0].split("%")[0]) for _, sockaddr in found],
                            allow_private)
    return target


class _Guarded:
    """Mixed into urllib3's connections: resolve, check, then connect to the checked addresses only."""

    allow_private = False

    def _new_conn(self):
        try:
            found = resolve(self._dns_host, self.port)
            domain.refuse_addresses(self.host, [ipaddress.ip_address(s[0].split("%")[0]) for _, s in found],
                                    self.allow_private)
        except domain.UrlRefused as exc:
            raise AddressRefused(self, str(exc)) from None
        except OSError as exc:
            raise NewConnectionError(self, f"{self.host} does not resolve: {exc}") from None
        error: OSError | None = None
        for _family, sockaddr in found:
            try:
                return urllib3_connection.create_connection(
                    (sockaddr[0], self.port), self.timeout, source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except OSError as exc:
                error = exc
        raise NewConnectionError(self, f"cannot connect to {self.host}:{self.port}: {error}")


def _adapter_class(allow_private: bool) -> type[HTTPAdapter]:
    http_connection = type("GuardedHTTPConnection", (_Guarded, HTTPConnection), {"allow_private": allow_private})
    https_connection = type("GuardedHTTPSConnection", (_Guarded, HTTPSConnection), {"allow_private": allow_private})
    http_pool = type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_connection})
    https_pool = type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_connection})

    class GuardedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": http_pool, "https": https_pool}

    return GuardedAdapter


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: float


class Sender:
    """One per process: a pool of keep-alive connections shared by the delivery workers."""

    def __init__(self, allow_private: bool, timeout_s: float, connections: int = 20):
        self.timeout_s = timeout_s
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy from the environment: the checked address is the one called
        adapter = _adapter_class(allow_private)(pool_connections=connections, pool_maxsize=connections, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def post(self, url: str, payload: bytes, headers: dict[str, str]) -> Outcome:
        started = time.monotonic()
        status, error = None, None
        try:
            # the total deadline: requests' own timeout is per socket operation, which a receiver dripping its
            # answer byte by byte would never reach
            with eventlet.Timeout(self.timeout_s):
                response = self.session.post(url, data=payload, headers=headers, allow_redirects=False, stream=True,
                                             timeout=(self.timeout_s, self.timeout_s))
                try:
                    status = response.status_code
                    excerpt = response.raw.read(MAX_READ, decode_content=False) or b""
                finally:
                    response.close()
            if not 200 <= status < 300:
                error = _refused_answer(status, excerpt)
        except eventlet.Timeout:
            error = f"no answer within {self.timeout_s:g} s"
        except requests.RequestException as exc:
            error = describe(exc)
        duration_ms = round((time.monotonic() - started) * 1000, 1)
        return Outcome(error is None, status, error, duration_ms)

    def close(self) -> None:
        self.session.close()


def _refused_answer(status: int, excerpt: bytes) -> str:
    text = excerpt.decode("utf-8", errors="replace").strip()
    if 300 <= status < 400:
        return f"HTTP {status}: redirects are not followed; give the final URL"
    return f"HTTP {status}" + (f": {text[:MAX_EXCERPT]}" if text else "")


def describe(exc: BaseException) -> str:
    """The innermost reason of a requests/urllib3 failure, for people (a refused connection, a refused address)."""
    reason: BaseException | None = exc
    seen = set()
    while reason is not None and id(reason) not in seen:
        seen.add(id(reason))
        if isinstance(reason, NewConnectionError):
            return reason._message[:500]
        inner = getattr(reason, "reason", None)
        if inner is None and reason.args and isinstance(reason.args[0], BaseException):
            inner = reason.args[0]
        if not isinstance(inner, BaseException):
            break
        reason = inner
    return str(reason or exc)[:500]
