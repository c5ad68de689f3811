"""Login throttling: at most N passwords checked per email, and per source address, in a lock-out window,
however many logins arrive at once.

A login reserves its attempt *before* the password is checked, with one statement per key
(``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``, on PostgreSQL and SQLite alike): the database
serialises concurrent reservations of one key on its row, so each sees the count the previous one
left. The reservation that reaches the limit starts the lock-out; one beyond it is rolled back and
answered 429, so refused logins neither count nor prolong the lock-out. A failed check keeps its
reservation. A successful login clears the email's count and gives the address its attempt back, so
an office behind one address is not locked out by its own users logging in.

The source address is the TCP peer, or, when the peer is a proxy named in ``CRM_TRUSTED_PROXIES``,
the nearest address in ``X-Forwarded-For`` that is not a trusted proxy (addresses further left were
written by the client and prove nothing).
"""

from __future__ import annotations

import functools
import ipaddress
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, delete, literal, or_, update
from sqlalchemy.dialects import postgresql, sqlite

from crm_common.clock import utcnow
from crm_common.columns import UtcDateTime
from crm_common.config import Settings
from crm_common.errors import RateLimited
from gateway.models import LoginAttempts

ATTEMPTS = LoginAttempts.__table__


@dataclass(frozen=True)
class Attempt:
    """A reserved password check; ``succeeded`` gives back what a success should not cost."""

    email_key: str | None
    address_key: str | None
    address_limit: int


def reserve(session, settings: Settings, email: str, address: str, now: datetime | None = None) -> Attempt:
    """Count one login for the address and for the email, or raise ``RateLimited`` without counting it."""
    now = now or utcnow()
    window = timedelta(seconds=settings.login_lockout_s)
    limits = [
        ("address", f"address:{address}", settings.login_max_failures_per_address,
         "too many failed logins from this address; try again later"),
        ("email", f"email:{email}", settings.login_max_failures, "too many failed logins; try again later"),
    ]
    counted: dict[str, str] = {}
    try:
        for scope, key, limit, message in limits:
            if limit <= 0:
                continue  # 0 turns this count off
            attempts, locked_until = _count(session, key, limit, now, window)
            if attempts > limit:
                # a login that waited on the row while another locked it may have read the clock earlier
                wait = math.ceil((locked_until - now).total_seconds()) if locked_until else 1
                raise RateLimited(message, details={"retry_after": min(max(1, wait), settings.login_lockout_s)})
            counted[scope] = key
        session.commit()  # visible to every other login before this one's password is checked
    except BaseException:
        session.rollback()
        raise
    return Attempt(counted.get("email"), counted.get("address"), settings.login_max_failures_per_address)


def succeeded(session, attempt: Attempt) -> None:
    """The password was right: the email starts afresh, and the address gets its attempt back."""
    if attempt.email_key:
        session.execute(delete(ATTEMPTS).where(ATTEMPTS.c.key == attempt.email_key))
    if attempt.address_key:
        left = ATTEMPTS.c.attempts - 1
        session.execute(
            update(ATTEMPTS)
            .where(ATTEMPTS.c.key == attempt.address_key, ATTEMPTS.c.attempts > 0)
            .values(attempts=left, locked_until=case((left >= attempt.address_limit, ATTEMPTS.c.locked_until),
                                                     else_=None))
        )
    session.commit()


def purge(session, settings: Settings, now: datetime | None = None) -> int:
    """Forget counts whose window and lock-out are over."""
    now = now or utcnow()
    result = session.execute(delete(ATTEMPTS).where(_over(now, timedelta(seconds=settings.login_lockout_s))))
    session.commit()
    return result.rowcount or 0


def _over(now: datetime, window: timedelta):
    return or_(
        and_(ATTEMPTS.c.locked_until.is_(None), ATTEMPTS.c.window_start <= _at(now - window)),
        ATTEMPTS.c.locked_until <= _at(now),
    )


def _at(moment: datetime | None):
    return literal(moment, UtcDateTime())


def _count(session, key: str, limit: int, now: datetime, window: timedelta) -> tuple[int, datetime | None]:
    """One statement: start a new window, or add one attempt to the current one; lock when it reaches the limit.

    Every expression on the right reads the row as it was before this statement.
    """
    lock = _at(now + window)
    fresh = _over(now, window)
    first_locks = lock if limit <= 1 else _at(None)
    insert = _insert_for(session)(ATTEMPTS).values(key=key, attempts=1, window_start=now,
                                                   locked_until=now + window if limit <= 1 else None)
    statement = insert.on_conflict_do_update(
        index_elements=[ATTEMPTS.c.key],
        set_={
            "attempts": case((fresh, 1), else_=ATTEMPTS.c.attempts + 1),
            "window_start": case((fresh, _at(now)), else_=ATTEMPTS.c.window_start),
            "locked_until": case(
                (fresh, first_locks),
                (ATTEMPTS.c.locked_until.is_not(None), ATTEMPTS.c.locked_until),
                (ATTEMPTS.c.attempts + 1 >= limit, lock),
                else_=_at(None),
            ),
        },
    ).returning(ATTEMPTS.c.attempts, ATTEMPTS.c.locked_until)
    row = session.execute(statement).one()
    return row.attempts, row.locked_until


def _insert_for(session):
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


# ---- who is asking

def client_address(request, trusted_proxies: tuple[str, ...]) -> str:
    """The address logins are counted under (see the module docstring)."""
    peer = request.remote_addr or "unknown"
    networks = _networks(trusted_proxies)
    if not networks or not _trusted(peer, networks):
        return _counted_as(peer)
    hops = [hop.strip() for value in request.headers.getlist("X-Forwarded-For") for hop in value.split(",")]
    hops = [hop for hop in hops if hop]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return _counted_as(hop)
    return _counted_as(hops[0] if hops else peer)


@functools.lru_cache(maxsize=8)
def _networks(trusted_proxies: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in trusted_proxies)


def _parse(address: str):
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped
    return parsed


def _trusted(address: str, networks) -> bool:
    parsed = _parse(address)
    return parsed is not None and any(parsed in network for network in networks)


def _counted_as(address: str) -> str:
    """IPv4 addresses as they are; IPv6 by /64, the block one subscriber usually holds whole."""
    parsed = _parse(address)
    if parsed is None:
        return address[:64]
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)
