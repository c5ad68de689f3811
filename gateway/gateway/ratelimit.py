"""A token bucket per user in each gateway process: bulk scraping of the client base is slowed down.

Users get ``CRM_RATE_LIMIT_PER_MINUTE``; administrators, whose tools (imports, checks, load tests) make
many calls, ``CRM_RATE_LIMIT_ADMIN_PER_MINUTE``; 0 turns a limit off. The limit applies per account,
never per address or header, so no client can talk its way out of it.

Every answer to an authenticated request says where the caller stands, as the IETF draft
"RateLimit header fields for HTTP" (draft-ietf-httpapi-ratelimit-headers-03) names them:
``RateLimit-Limit`` (requests per minute), ``RateLimit-Remaining`` (requests that may be made now) and
``RateLimit-Reset`` (seconds until the whole limit is available again); a 429 adds ``Retry-After``
(seconds until the next request is allowed).

Limits are per process: with N gateway replicas a user gets up to N times the rate (docs/operations.md).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from nameko.extensions import DependencyProvider

from crm_common.caller import Caller
from crm_common.config import Settings
from crm_common.errors import RateLimited

MAX_TRACKED = 100_000


class TokenBuckets:
    def __init__(self, per_minute: int, clock=time.monotonic):
        self.per_minute = per_minute
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self.buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        """Take one token; returns 0 if allowed, else the seconds to wait."""
        now = self.clock()
        tokens, last = self.buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if len(self.buckets) >= MAX_TRACKED and key not in self.buckets:
            self.buckets.clear()
        if tokens < 1:
            self.buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
        self.buckets[key] = (tokens - 1, now)
        return 0.0

    def tokens(self, key: str) -> float:
        """What the key holds after its last take (a full bucket if it never took one)."""
        return self.buckets.get(key, (self.capacity, 0.0))[0]


@dataclass(frozen=True)
class Budget:
    limit: int
    remaining: int
    reset_s: int
    retry_after: int = 0  # seconds until the next request is allowed; 0: this one was

    def headers(self) -> dict[str, str]:
        return {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(self.remaining),
                "RateLimit-Reset": str(self.reset_s)}


class RateLimit(DependencyProvider):
    def setup(self):
        settings = Settings.from_config(self.container.config)
        self.users = _buckets(settings.rate_limit_per_minute)
        self.admins = _buckets(settings.rate_limit_admin_per_minute)

    def get_dependency(self, worker_ctx):
        return self

    def take(self, caller: Caller) -> Budget | None:
        """Count one request of the caller; their budget after it, or None when their role has no limit."""
        # an API key of no branch acts as an administrator but is limited like a user (getattr: KeyCaller)
        buckets = self.admins if caller.is_admin and not getattr(caller, "scopes", None) else self.users
        if buckets is None:
            return None
        wait = buckets.take(caller.id)
        tokens = max(0.0, buckets.tokens(caller.id))
        return Budget(
            limit=buckets.per_minute,
            remaining=int(tokens),
            reset_s=math.ceil((buckets.capacity - tokens) / buckets.rate),
            retry_after=max(1, math.ceil(wait)) if wait else 0,
        )

    def check(self, caller: Caller, request) -> None:
        """Count the request, put the budget on its answer, and refuse it (429) when over the limit."""
        budget = self.take(caller)
        if budget is None:
            return
        request.extra_headers = {**getattr(request, "extra_headers", {}), **budget.headers()}
        if budget.retry_after:
            raise RateLimited("too many requests; slow down", details={"retry_after": budget.retry_after})


def _buckets(per_minute: int) -> TokenBuckets | None:
    return TokenBuckets(per_minute) if per_minute > 0 else None
