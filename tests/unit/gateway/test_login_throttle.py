"""Login throttling: attempts reserved before the password is checked, per email and per address."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select
from werkzeug.datastructures import Headers

from crm_common.clock import utcnow
from crm_common.config import Settings
from crm_common.errors import RateLimited, Unauthorized
from crm_common.testing.uow import FakeUnitOfWork
from gateway import identity, throttle
from gateway.auth import hash_password
from gateway.models import Base, LoginAttempts, User

SETTINGS = Settings(secret_key="k" * 40, login_max_failures=3, login_max_failures_per_address=5, login_lockout_s=60)


@pytest.fixture
def uow():
    with FakeUnitOfWork(Base) as unit:
        yield unit


class Clock:
    def __init__(self):
        self.now = utcnow()

    def advance(self, seconds: float):
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock():
    return Clock()


def attempt(uow, clock, email="anna@example.ru", address="203.0.113.7", settings=SETTINGS):
    return throttle.reserve(uow.session, settings, email, address, now=clock.now)


def count(uow, key):
    row = uow.session.get(LoginAttempts, key)
    uow.session.rollback()
    return row.attempts if row else 0


def test_the_attempt_that_reaches_the_limit_is_allowed_and_the_next_is_refused_until_the_lock_out_ends(uow, clock):
    for _ in range(3):
        attempt(uow, clock)
    clock.advance(10)

    with pytest.raises(RateLimited) as refused:
        attempt(uow, clock)

    assert refused.value.details == {"retry_after": 50}
    assert "too many failed logins" in str(refused.value)


def test_a_refused_attempt_is_not_counted_and_does_not_prolong_the_lock_out(uow, clock):
    for _ in range(3):
        attempt(uow, clock)
    for _ in range(5):
        clock.advance(5)
        with pytest.raises(RateLimited):
            attempt(uow, clock)

    assert count(uow, "email:anna@example.ru") == 3
    assert count(uow, "address:203.0.113.7") == 3
    clock.advance(35)
    attempt(uow, clock)  # 60 s after the lock-out began


def test_when_the_lock_out_is_over_the_count_starts_again(uow, clock):
    for _ in range(3):
        attempt(uow, clock)
    clock.advance(61)

    attempt(uow, clock)

    assert count(uow, "email:anna@example.ru") == 1


def test_failures_further_apart_than_the_window_never_lock(uow, clock):
    for _ in range(6):  # twelve failures, never three in one window of 60 s
        attempt(uow, clock)
        clock.advance(31)
        attempt(uow, clock)
        clock.advance(61)

    assert count(uow, "email:anna@example.ru") == 2, "the last window holds the last two"


def test_an_address_over_its_limit_is_refused_whichever_email_it_tries(uow, clock):
    for number in range(5):
        attempt(uow, clock, email=f"user{number}@example.ru")

    with pytest.raises(RateLimited, match="from this address"):
        attempt(uow, clock, email="someone-else@example.ru")
    attempt(uow, clock, email="someone-else@example.ru", address="198.51.100.1")


def test_a_refused_email_costs_its_address_nothing(uow, clock):
    for _ in range(3):
        attempt(uow, clock, address="198.51.100.1")
    with pytest.raises(RateLimited):
        attempt(uow, clock)

    assert count(uow, "address:203.0.113.7") == 0


def test_a_success_clears_the_emails_count_and_gives_the_address_its_attempt_back(uow, clock):
    attempt(uow, clock)
    attempt(uow, clock)
    throttle.succeeded(uow.session, attempt(uow, clock))

    assert count(uow, "email:anna@example.ru") == 0
    assert count(uow, "address:203.0.113.7") == 2


def test_an_office_whose_users_log_in_all_day_is_never_locked_out(uow, clock):
    for number in range(50):
        throttle.succeeded(uow.session, attempt(uow, clock, email=f"user{number}@example.ru"))

    assert count(uow, "address:203.0.113.7") == 0


def test_a_success_at_the_addresses_limit_lifts_its_lock_out(uow, clock):
    for number in range(4):
        attempt(uow, clock, email=f"user{number}@example.ru")
    throttle.succeeded(uow.session, attempt(uow, clock, email="right@example.ru"))

    attempt(uow, clock, email="next@example.ru")


def test_a_limit_of_zero_turns_that_count_off(uow, clock):
    no_email_limit = Settings(**{**SETTINGS.__dict__, "login_max_failures": 0})
    no_address_limit = Settings(**{**SETTINGS.__dict__, "login_max_failures_per_address": 0})
    for number in range(10):
        attempt(uow, clock, settings=no_email_limit, address=f"198.51.100.{number}")
        attempt(uow, clock, settings=no_address_limit, email=f"user{number}@example.ru")

    assert count(uow, "email:anna@example.ru") == 0
    assert count(uow, "address:203.0.113.7") == 0


def test_a_limit_of_one_locks_after_the_first_attempt(uow, clock):
    settings = Settings(**{**SETTINGS.__dict__, "login_max_failures": 1})
    attempt(uow, clock, settings=settings)

    with pytest.raises(RateLimited):
        attempt(uow, clock, settings=settings)


def test_finished_windows_are_purged_and_running_ones_kept(uow, clock):
    for _ in range(3):
        attempt(uow, clock, email="locked@example.ru")
    attempt(uow, clock, email="once@example.ru", address="198.51.100.1")
    clock.advance(59)
    attempt(uow, clock, email="recent@example.ru", address="198.51.100.2")
    clock.advance(2)

    assert throttle.purge(uow.session, SETTINGS, now=clock.now) == 4
    keys = set(uow.session.scalars(select(LoginAttempts.key)))
    assert keys == {"email:recent@example.ru", "address:198.51.100.2"}


# ---- the whole login

@pytest.fixture
def anna(uow):
    now = utcnow()
    uow.session.add(User(id="u1", email="anna@example.ru", name="Anna", password_hash=hash_password("right-password"),
                         role="manager", branch_id="b1", active=True, token_version=1, created_at=now, updated_at=now))
    uow.commit()


def login(uow, password, email="anna@example.ru"):
    return identity.login(uow, SETTINGS, {"email": email, "password": password}, "203.0.113.7")


def test_wrong_passwords_are_checked_up_to_the_limit_then_refused_without_a_check(uow, anna, monkeypatch):
    checked = []
    real_verify = identity.verify_password
    monkeypatch.setattr(identity, "verify_password", lambda *args: checked.append(1) or real_verify(*args))
    outcomes = []
    for _ in range(6):
        try:
            login(uow, "wrong-password")
        except (Unauthorized, RateLimited) as exc:
            outcomes.append(exc.status)

    assert outcomes == [401, 401, 401, 429, 429, 429]
    assert len(checked) == 3


def test_the_right_password_before_the_limit_logs_in_and_starts_the_count_afresh(uow, anna):
    for _ in range(2):
        with pytest.raises(Unauthorized):
            login(uow, "wrong-password")

    assert login(uow, "right-password")["token_type"] == "bearer"
    assert count(uow, "email:anna@example.ru") == 0
    assert count(uow, "address:203.0.113.7") == 2


def test_an_unknown_email_is_counted_like_a_known_one(uow, anna):
    for _ in range(3):
        with pytest.raises(Unauthorized):
            login(uow, "whatever", email="nobody@example.ru")

    with pytest.raises(RateLimited):
        login(uow, "whatever", email="nobody@example.ru")


# ---- whose address

def request_from(peer: str, *forwarded: str):
    headers = Headers([("X-Forwarded-For", value) for value in forwarded])
    return SimpleNamespace(remote_addr=peer, headers=headers)


PROXIES = ("10.0.0.0/8",)


def test_without_trusted_proxies_the_peer_is_the_client_whatever_it_forwards():
    assert throttle.client_address(request_from("203.0.113.7", "198.51.100.1"), ()) == "203.0.113.7"


def test_a_peer_that_is_not_a_trusted_proxy_cannot_name_another_client():
    assert throttle.client_address(request_from("203.0.113.7", "198.51.100.1"), PROXIES) == "203.0.113.7"


def test_behind_a_trusted_proxy_the_client_is_the_address_the_proxy_saw():
    # the client wrote 1.2.3.4 itself; the proxy appended the address it was connected from
    request = request_from("10.0.0.5", "1.2.3.4, 198.51.100.9")

    assert throttle.client_address(request, PROXIES) == "198.51.100.9"


def test_a_chain_of_trusted_proxies_is_walked_back_to_the_first_untrusted_address():
    request = request_from("10.0.0.5", "1.2.3.4", "198.51.100.9, 10.1.1.1")

    assert throttle.client_address(request, PROXIES) == "198.51.100.9"


def test_when_every_address_is_a_trusted_proxy_the_first_one_is_the_client():
    assert throttle.client_address(request_from("10.0.0.5", "10.2.2.2, 10.1.1.1"), PROXIES) == "10.2.2.2"
    assert throttle.client_address(request_from("10.0.0.5"), PROXIES) == "10.0.0.5"


def test_an_ipv6_client_counts_by_its_64_block_and_a_mapped_ipv4_as_ipv4():
    assert throttle.client_address(request_from("2001:db8:1:2:aaaa::1"), ()) == "2001:db8:1:2::/64"
    assert throttle.client_address(request_from("::ffff:203.0.113.7"), ()) == "203.0.113.7"
    assert throttle.client_address(request_from("::ffff:10.0.0.5", "198.51.100.9"), PROXIES) == "198.51.100.9"


def test_something_that_is_not_an_address_is_counted_as_written_but_never_trusted():
    assert throttle.client_address(request_from("10.0.0.5", "not-an-ip"), PROXIES) == "not-an-ip"
    assert throttle.client_address(request_from("10.0.0.5", "x" * 500), PROXIES) == "x" * 64
