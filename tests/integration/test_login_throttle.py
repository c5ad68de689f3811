"""Login throttling under real concurrency: a gateway on PostgreSQL, many wrong logins at the same moment."""

import random
import time

import eventlet
import pytest

from crm_common.testing.fixtures import poll
from gateway.service import GatewayService


@pytest.fixture
def gateway(container_factory, web_config):
    def start(**crm_settings):
        # the test's own client addresses arrive in X-Forwarded-For from a trusted proxy (this machine),
        # so runs and tests never share a per-address count
        web_config["CRM"].update(trusted_proxies="127.0.0.1", **crm_settings)
        web_config["max_workers"] = 20
        container = container_factory(GatewayService, web_config)
        container.start()
        return container

    return start


def fresh_address() -> str:
    return f"198.18.{random.randrange(256)}.{random.randrange(1, 255)}"


def at_once(web_session, bodies, address):
    """Send every login at the same moment; the answers in order."""
    gate = eventlet.event.Event()

    def send(body):
        gate.wait()
        return web_session.post("/api/v1/auth/login", json=body, headers={"X-Forwarded-For": address}, timeout=60)

    pool = eventlet.GreenPool(len(bodies))
    threads = [pool.spawn(send, body) for body in bodies]
    eventlet.sleep(0)  # every sender is waiting at the gate
    gate.send()
    return [thread.wait() for thread in threads]


def statuses(responses) -> dict:
    found = {}
    for response in responses:
        found[response.status_code] = found.get(response.status_code, 0) + 1
    return found


def test_twenty_wrong_passwords_at_once_for_one_email_check_exactly_the_limit(gateway, web_session):
    gateway(login_max_failures=5)
    email = f"victim{time.monotonic_ns()}@example.ru"

    answers = at_once(web_session, [{"email": email, "password": f"guess-{n}"} for n in range(20)], fresh_address())

    assert statuses(answers) == {401: 5, 429: 15}
    for refused in (a for a in answers if a.status_code == 429):
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["Retry-After"]) <= 300


def test_twenty_wrong_logins_at_once_from_one_address_check_exactly_its_limit(gateway, web_session):
    gateway(login_max_failures_per_address=7)
    stamp = time.monotonic_ns()
    bodies = [{"email": f"user{n}-{stamp}@example.ru", "password": "guess"} for n in range(20)]

    answers = at_once(web_session, bodies, fresh_address())

    assert statuses(answers) == {401: 7, 429: 13}
    assert all("from this address" in a.json()["error"]["message"] for a in answers if a.status_code == 429)


def test_a_locked_address_does_not_stop_other_addresses_or_the_right_password_elsewhere(gateway, web_session):
    gateway(login_max_failures_per_address=3)
    attacker = fresh_address()
    stamp = time.monotonic_ns()
    at_once(web_session, [{"email": f"u{n}-{stamp}@example.ru", "password": "guess"} for n in range(6)], attacker)

    from_elsewhere = web_session.post("/api/v1/auth/login", json={"email": "admin@crm.local", "password": "admin12345"},
                                      headers={"X-Forwarded-For": fresh_address()})
    from_the_attacker = web_session.post("/api/v1/auth/login", json={"email": "admin@crm.local", "password": "admin12345"},
                                         headers={"X-Forwarded-For": attacker})

    assert from_elsewhere.status_code == 200
    assert from_the_attacker.status_code == 429


def test_the_lock_out_ends_after_its_window(gateway, web_session):
    gateway(login_max_failures=2, login_lockout_s=1)
    email, address = f"brief{time.monotonic_ns()}@example.ru", fresh_address()
    body = {"email": email, "password": "guess"}
    assert statuses(at_once(web_session, [body] * 4, address)) == {401: 2, 429: 2}

    poll(lambda: web_session.post("/api/v1/auth/login", json=body,
                                  headers={"X-Forwarded-For": address}).status_code == 401,
         timeout=5, interval=0.2, message="the lock-out to end")
