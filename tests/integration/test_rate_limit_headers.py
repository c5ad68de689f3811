"""The per-user rate limit as a client sees it: its budget on every answer, a limit of its own for admins."""

import time

import pytest

from gateway.service import GatewayService

ADMIN = {"email": "admin@crm.local", "password": "admin12345"}
RATE_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


@pytest.fixture
def gateway(container_factory, web_config):
    def start(**crm_settings):
        web_config["CRM"].update(services="clients", rpc_timeout_s=1, **crm_settings)
        container = container_factory(GatewayService, web_config)
        container.start()
        return container

    return start


def log_in(web_session, email=ADMIN["email"], password=ADMIN["password"]) -> dict:
    response = web_session.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def a_manager(web_session, admin) -> dict:
    branch = web_session.post("/api/v1/branches", headers=admin,
                              json={"name": "Лимиты", "code": f"L{time.monotonic_ns()}"[-12:]}).json()
    email = f"m{time.monotonic_ns()}@test.ru"
    created = web_session.post("/api/v1/users", headers=admin, json={
        "email": email, "name": "Менеджер", "password": "long-password", "role": "manager", "branch_id": branch["id"]})
    assert created.status_code == 201, created.text
    return log_in(web_session, email, "long-password")


def test_every_answer_to_an_authenticated_request_carries_the_callers_budget(gateway, web_session):
    gateway(rate_limit_per_minute=100, rate_limit_admin_per_minute=100)
    admin = log_in(web_session)
    manager = a_manager(web_session, admin)

    answers = [
        web_session.get("/api/v1/me", headers=manager),                                   # 200
        web_session.get("/api/v1/users/not-a-user", headers=manager),                     # 404
        web_session.post("/api/v1/branches", headers=manager, json={"name": "X", "code": "X"}),  # 403
        web_session.patch("/api/v1/users/not-a-user", headers=manager, json={"role": 5}),  # 422
        web_session.get("/api/v1/clients", headers=manager),                              # 503: clients is not running
    ]

    assert [a.status_code for a in answers] == [200, 404, 403, 422, 503]
    remaining = [int(a.headers["RateLimit-Remaining"]) for a in answers]
    assert remaining == [99, 98, 97, 96, 95]
    for answer in answers:
        assert answer.headers["RateLimit-Limit"] == "100"
        assert 1 <= int(answer.headers["RateLimit-Reset"]) <= 60


def test_a_refused_request_carries_its_budget_and_when_to_retry(gateway, web_session):
    gateway(rate_limit_per_minute=3, rate_limit_admin_per_minute=3)
    admin = log_in(web_session)
    for _ in range(3):
        assert web_session.get("/api/v1/me", headers=admin).status_code == 200

    refused = web_session.get("/api/v1/me", headers=admin)

    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.headers["RateLimit-Limit"] == "3"
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert int(refused.headers["RateLimit-Reset"]) == 60
    assert 1 <= int(refused.headers["Retry-After"]) <= 20


def test_public_routes_are_never_limited_and_carry_no_budget(gateway, web_session):
    gateway(rate_limit_per_minute=1, rate_limit_admin_per_minute=1)

    answers = [web_session.get("/health") for _ in range(5)] + [web_session.get("/api/v1/openapi.json")]

    assert all(a.status_code != 429 for a in answers)
    assert not any(name in a.headers for a in answers for name in RATE_HEADERS)


def test_an_administrators_tools_may_be_freed_from_the_limit_while_users_keep_theirs(gateway, web_session):
    gateway(rate_limit_per_minute=3, rate_limit_admin_per_minute=0)
    admin = log_in(web_session)
    manager = a_manager(web_session, admin)

    admin_answers = [web_session.get("/api/v1/me", headers=admin) for _ in range(30)]
    manager_answers = [web_session.get("/api/v1/me", headers=manager).status_code for _ in range(4)]

    assert {a.status_code for a in admin_answers} == {200}
    assert not any("RateLimit-Limit" in a.headers for a in admin_answers), "no limit, no budget to report"
    assert manager_answers == [200, 200, 200, 429]
