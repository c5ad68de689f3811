"""Token buckets per user, driven by a fake clock."""

import pytest

from crm_common.errors import RateLimited
from gateway.ratelimit import RateLimit, TokenBuckets


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


@pytest.fixture
def clock():
    return FakeClock()


def test_a_user_may_make_as_many_requests_as_the_per_minute_capacity_at_once(clock):
    buckets = TokenBuckets(60, clock=clock)

    assert [buckets.take("u1") for _ in range(60)] == [0.0] * 60
    assert buckets.take("u1") > 0


def test_a_user_over_the_limit_is_told_how_long_to_wait(clock):
    buckets = TokenBuckets(60, clock=clock)
    for _ in range(60):
        buckets.take("u1")

    assert buckets.take("u1") == pytest.approx(1.0)


def test_tokens_refill_at_the_per_minute_rate(clock):
    buckets = TokenBuckets(120, clock=clock)
    for _ in range(120):
        buckets.take("u1")

    clock.advance(0.5)
    assert buckets.take("u1") == 0.0
    assert buckets.take("u1") == pytest.approx(0.5)
    clock.advance(0.5)
    assert buckets.take("u1") == 0.0


def test_a_bucket_never_holds_more_than_its_capacity(clock):
    buckets = TokenBuckets(10, clock=clock)
    buckets.take("u1")
    clock.advance(3600)

    assert [buckets.take("u1") for _ in range(10)] == [0.0] * 10
    assert buckets.take("u1") > 0


def test_users_have_separate_buckets(clock):
    buckets = TokenBuckets(2, clock=clock)
    buckets.take("u1")
    buckets.take("u1")

    assert buckets.take("u1") > 0
    assert buckets.take("u2") == 0.0


def test_waiting_does_not_grow_while_a_user_keeps_hammering(clock):
    buckets = TokenBuckets(60, clock=clock)
    for _ in range(60):
        buckets.take("u1")

    waits = [buckets.take("u1") for _ in range(5)]

    assert waits == [pytest.approx(1.0)] * 5


class FakeContainer:
    def __init__(self, per_minute):
        self.config = {"CRM": {"rate_limit_per_minute": per_minute}}


def limiter(per_minute, clock):
    rate_limit = RateLimit()
    rate_limit.container = FakeContainer(per_minute)
    rate_limit.setup()
    if rate_limit.buckets is not None:
        rate_limit.buckets.clock = clock
    return rate_limit


def test_the_limit_raises_rate_limited_with_whole_seconds_to_wait(clock):
    rate_limit = limiter(1, clock)
    rate_limit.check("u1")

    with pytest.raises(RateLimited) as error:
        rate_limit.check("u1")

    assert error.value.details == {"retry_after": 60}


def test_the_retry_after_is_at_least_one_second(clock):
    rate_limit = limiter(6000, clock)
    for _ in range(6000):
        rate_limit.check("u1")

    with pytest.raises(RateLimited) as error:
        rate_limit.check("u1")

    assert error.value.details["retry_after"] == 1


def test_a_zero_limit_turns_rate_limiting_off(clock):
    rate_limit = limiter(0, clock)

    assert rate_limit.buckets is None
    for _ in range(100):
        rate_limit.check("u1")
