"""Pure rules of outgoing webhooks: which URLs and addresses may be called, which webhook an event goes to, how
a delivery is signed, and when a failed one is tried again. No nameko, no database, no network."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

MAX_DELAY_S = 3600.0  # retries never wait longer than an hour, however many failed before
SIGNATURE_HEADER = "X-CRM-Signature"
USER_AGENT = "CRM-Webhooks/1.0"
# IPv6 ranges that carry an IPv4 address: the embedded address decides (NAT64, 6to4)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UrlRefused(ValueError):
    """A webhook URL that may not be called; the message says why, for the person who gave it."""


@dataclass(frozen=True)
class Target:
    """A webhook URL taken apart: what is resolved and connected to."""

    scheme: str
    host: str  # a name (IDNA-encoded, lower case) or an address literal without brackets
    port: int
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None  # when the host is an address literal


def parse_url(url: str) -> Target:
    """Check the URL's form: http(s), a host, no credentials, a valid port. Addresses are checked later."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a port that is not a number, a malformed IPv6 literal
        raise UrlRefused(f"Not a valid URL: {exc}.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UrlRefused("Only http and https URLs can receive webhooks.")
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise UrlRefused("A URL has no spaces or control characters.")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("Put no user name or password in the URL: the signature authenticates the CRM.")
    host = parts.hostname or ""
    if not host:
        raise UrlRefused("The URL has no host.")
    if port == 0:
        raise UrlRefused("Port 0 cannot be called.")
    address = _address_literal(host)
    if address is None:
        host = _host_name(host)
    return Target(scheme, host if address is None else str(address), port or (443 if scheme == "https" else 80),
                  address)


def _address_literal(host: str):
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _host_name(host: str) -> str:
    host = host.rstrip(".")
    try:
        encoded = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise UrlRefused("The host is not a valid name.") from None
    labels = encoded.split(".")
    if not encoded or len(encoded) > 253 or any(not 0 < len(label) <= 63 for label in labels):
        raise UrlRefused("The host is not a valid name.")
    if not all(c.isalnum() or c in "-_" for label in labels for c in label) or labels[-1].isdigit():
        # an all-digit last label is how "127.1" or "2130706433" spell an address: never a name
        raise UrlRefused("The host is not a valid name.")
    return encoded.lower()


def refusal(address, allow_private: bool) -> str | None:
    """Why a delivery may not connect to ``address``, or None if it may.

    Refused unless ``allow_private``: every address that is not globally reachable (private, loopback,
    link-local, shared, reserved, documentation, multicast, unspecified), including such IPv4 addresses
    carried inside IPv6 (mapped, NAT64, 6to4).
    """
    address = ipaddress.ip_address(address)
    if allow_private:
        return None
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return refusal(embedded, allow_private)
    if address.is_loopback:
        return f"{address} is a loopback address"
    if address.is_link_local:
        return f"{address} is a link-local address"
    if address.is_multicast or address.is_unspecified or address.is_reserved:
        return f"{address} is not a unicast address"
    if address.is_private or not address.is_global or getattr(address, "is_site_local", False):
        return f"{address} is a private or special-purpose address"
    return None


def _embedded_ipv4(address):
    if address.version != 6:
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    return None


def refuse_addresses(host: str, addresses, allow_private: bool) -> None:
    """Raise ``UrlRefused`` if any address the host resolved to may not be called (a name with one private
    address among public ones is refused: which one a connection uses is not ours to choose)."""
    if not addresses:
        raise UrlRefused(f"{host} does not resolve to any address.")
    for address in addresses:
        why = refusal(address, allow_private)
        if why:
            if str(address) == host:
                raise UrlRefused(f"Refused: {why}.")
            raise UrlRefused(f"Refused: {host} resolves to {why}.")


# ---- which webhooks an event goes to

def wants(events: list[str], branch_id: str | None, event_type: str, event_branch: str | None) -> bool:
    """A webhook takes an event it subscribed to, from its branch (or from any branch when it names none)."""
    return event_type in events and (branch_id is None or branch_id == event_branch)


def unique_events(events: list[str]) -> list[str]:
    return list(dict.fromkeys(events))


# ---- what is sent

def body(delivery_id: str, event_type: str, occurred_at: str, data: dict) -> bytes:
    """The JSON body of a delivery: the same bytes on every attempt."""
    document = {"id": delivery_id, "event": event_type, "occurred_at": occurred_at, "data": data}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def signature(secret: str, timestamp: int, payload: bytes) -> str:
    """HMAC-SHA256 of ``<timestamp>.<body>`` with the webhook's secret, in hex."""
    return hmac.new(secret.encode("utf-8"), str(timestamp).encode("ascii") + b"." + payload, hashlib.sha256).hexdigest()


def headers(secret: str, timestamp: int, delivery_id: str, event_type: str, payload: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: f"t={timestamp},v1={signature(secret, timestamp, payload)}",
        "X-CRM-Timestamp": str(timestamp),
        "X-CRM-Delivery": delivery_id,
        "X-CRM-Event": event_type,
    }


def verify(secret: str, header: str, payload: bytes, now: float, tolerance_s: float = 300) -> bool:
    """What a receiver does (docs/integrations.md has it to copy): the signature matches and is recent."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(parts.get("v1", ""), signature(secret, timestamp, payload))


# ---- when to try again

def retry_delay(failures: int, base_s: float, rng: random.Random | None = None) -> float:
    """The wait after the ``failures``-th failed attempt in a row: ``base · 2^(failures-1)``, at most an hour,
    with "equal jitter" (between half and all of it), so receivers that come back are not hit by every
    sender at the same instant, and no wait is shorter than half the plan."""
    ceiling = min(MAX_DELAY_S, base_s * 2.0 ** min(failures - 1, 60))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


def next_attempt(now: datetime, first_attempt_at: datetime, failures: int, base_s: float, retry_for_s: float,
                 rng: random.Random | None = None) -> datetime | None:
    """When a failed delivery is tried again, or None when its retry period is over. The last try is made at
    the end of the period, so a receiver that is back by then still gets it."""
    deadline = first_attempt_at + timedelta(seconds=retry_for_s)
    if now >= deadline:
        return None
    return min(now + timedelta(seconds=retry_delay(failures, base_s, rng)), deadline)


def schedule(base_s: float, retry_for_s: float, rng: random.Random | None = None) -> list[float]:
    """Seconds after the first attempt at which a delivery that always fails is tried (docs, tests)."""
    start = datetime(2000, 1, 1)
    at, times, failures = start, [0.0], 0
    while True:
        failures += 1
        at = next_attempt(at, start, failures, base_s, retry_for_s, rng)
        if at is None:
            return times
        times.append((at - start).total_seconds())
