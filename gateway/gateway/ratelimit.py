"""A token bucket per user in each gateway process: bulk scraping of the client base is slowed down.

Limits are per replica; with N replicas a user gets at most N times the rate, which is the intended
order of magnitude for protecting the base against export by script (R13).
"""

from __future__ import annotations

import math
import time

from nameko.extensions import DependencyProvider

from crm_common.config import Settings
from crm_common.errors import RateLimited


class TokenBuckets:
    def __init__(self, per_minute: int, clock=time.monotonic):
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self.buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        """Take one token; returns 0 if allowed, else the seconds to wait."""
        now = self.clock()
        tokens, last = self.buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if tokens < 1:
            self.buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
        self.buckets[key] = (tokens - 1, now)
        if len(self.buckets) > 100_000:
            self.buckets.clear()
        return 0.0


class RateLimit(DependencyProvider):
    def setup(self):
        settings = Settings.from_config(self.container.config)
        self.buckets = TokenBuckets(settings.rate_limit_per_minute) if settings.rate_limit_per_minute > 0 else None

    def get_dependency(self, worker_ctx):
        return self

    def check(self, user_id: str) -> None:
        if self.buckets is None:
            return
        wait = self.buckets.take(user_id)
        if wait:
            retry_after = max(1, math.ceil(wait))
            raise RateLimited("too many requests; slow down", details={"retry_after": retry_after})
