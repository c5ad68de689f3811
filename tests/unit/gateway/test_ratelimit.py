"""Token buckets per user, driven by a fake clock."""

from types import SimpleNamespace

import pytest

from crm_common.caller import Caller
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
    def __init__(self, per_minute, admin_per_minute):
        self.config = {"CRM": {"rate_limit_per_minute": per_minute, "rate_limit_admin_per_minute": admin_per_minute}}


def limiter(per_minute, clock, admin_per_minute=6000):
    rate_limit = RateLimit()
    rate_limit.container = FakeContainer(per_minute, admin_per_minute)
    rate_limit.setup()
    for buckets in (rate_limit.users, rate_limit.admins):
        if buckets is not None:
            buckets.clock = clock
    return rate_limit


MANAGER = Caller(id="u1", role="manager", branch_id="b1")
ADMIN = Caller(id="a1", role="admin", branch_id=None)


def test_the_limit_raises_rate_limited_with_whole_seconds_to_wait(clock):
    rate_limit = limiter(1, clock)
    rate_limit.check(MANAGER, SimpleNamespace())

    with pytest.raises(RateLimited) as error:
        rate_limit.check(MANAGER, SimpleNamespace())

    assert error.value.details == {"retry_after": 60}


def test_the_retry_after_is_at_least_one_second(clock):
    rate_limit = limiter(6000, clock)
    for _ in range(6000):
        rate_limit.check(MANAGER, SimpleNamespace())

    with pytest.raises(RateLimited) as error:
        rate_limit.check(MANAGER, SimpleNamespace())

    assert error.value.details["retry_after"] == 1


def test_a_zero_limit_turns_rate_limiting_off(clock):
    rate_limit = limiter(0, clock)

    assert rate_limit.users is None
    for _ in range(100):
        request = SimpleNamespace()
        rate_limit.check(MANAGER, request)
        assert not hasattr(request, "extra_headers"), "no limit, nothing to report"


def test_every_counted_request_carries_the_callers_budget(clock):
    rate_limit = limiter(60, clock)
    request = SimpleNamespace()

    rate_limit.check(MANAGER, request)

    assert request.extra_headers == {"RateLimit-Limit": "60", "RateLimit-Remaining": "59", "RateLimit-Reset": "1"}


def test_the_budget_shrinks_with_each_request_and_grows_back_with_time(clock):
    rate_limit = limiter(60, clock)
    for _ in range(30):
        rate_limit.check(MANAGER, SimpleNamespace())
    request = SimpleNamespace()
    rate_limit.check(MANAGER, request)
    assert request.extra_headers["RateLimit-Remaining"] == "29"
    assert request.extra_headers["RateLimit-Reset"] == "31"

    clock.advance(10)
    rate_limit.check(MANAGER, request)
    assert request.extra_headers["RateLimit-Remaining"] == "38"


def test_a_refused_request_says_it_has_nothing_left_and_when_all_of_it_is_back(clock):
    rate_limit = limiter(60, clock)
    for _ in range(60):
        rate_limit.check(MANAGER, SimpleNamespace())
    request = SimpleNamespace()

    with pytest.raises(RateLimited) as error:
        rate_limit.check(MANAGER, request)

    assert request.extra_headers == {"RateLimit-Limit": "60", "RateLimit-Remaining": "0", "RateLimit-Reset": "60"}
    assert error.value.details == {"retry_after": 1}


def test_administrators_have_a_limit_of_their_own(clock):
    rate_limit = limiter(2, clock, admin_per_minute=5)
    for _ in range(5):
        rate_limit.check(ADMIN, SimpleNamespace())
    rate_limit.check(MANAGER, SimpleNamespace())
    rate_limit.check(MANAGER, SimpleNamespace())

    with pytest.raises(RateLimited):
        rate_limit.check(ADMIN, SimpleNamespace())
    with pytest.raises(RateLimited):
        rate_limit.check(MANAGER, SimpleNamespace())


def test_an_administrators_limit_of_zero_frees_only_administrators(clock):
    rate_limit = limiter(2, clock, admin_per_minute=0)
    for _ in range(1000):
        request = SimpleNamespace()
        rate_limit.check(ADMIN, request)
    assert not hasattr(request, "extra_headers")
    rate_limit.check(MANAGER, SimpleNamespace())
    rate_limit.check(MANAGER, SimpleNamespace())
    with pytest.raises(RateLimited):
        rate_limit.check(MANAGER, SimpleNamespace())


def test_a_full_table_of_users_starts_again_rather_than_growing_without_end(clock, monkeypatch):
    monkeypatch.setattr("gateway.ratelimit.MAX_TRACKED", 3)
    buckets = TokenBuckets(1, clock=clock)
    for user in ("u1", "u2", "u3"):
        buckets.take(user)

    buckets.take("u4")

    assert set(buckets.buckets) == {"u4"}
