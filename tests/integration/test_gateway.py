"""The gateway in a real nameko container on the real broker, with and without the services behind it."""

import time

import eventlet
import pytest
from nameko.testing.services import entrypoint_waiter

from clients.service import ClientsService
from crm_common.testing.fixtures import poll
from gateway.openapi import routes_of
from gateway.service import GatewayService

ADMIN = {"email": "admin@crm.local", "password": "admin12345"}


@pytest.fixture
def start_gateway(container_factory, web_config):
    def start(**crm_settings):
        web_config["CRM"].update(crm_settings)
        container = container_factory(GatewayService, web_config)
        container.start()
        return container

    return start


def login(web_session) -> dict:
    response = web_session.post("/api/v1/auth/login", json=ADMIN)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def branch_of(web_session, auth) -> str:
    response = web_session.post("/api/v1/branches", json={"name": "Тест", "code": f"T{time.monotonic_ns()}"[-12:]},
                                headers=auth)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_every_route_but_login_health_and_docs_needs_a_token(start_gateway, web_session):
    start_gateway()
    for name, route in routes_of(GatewayService):
        url = route.url.replace("<", "").replace(">", "")
        response = web_session.request(route.method, url, json={})
        if route.public:
            assert response.status_code != 401, name
        else:
            assert response.status_code == 401, f"{name} {route.method} {url} → {response.status_code}"
            assert response.json()["error"]["code"] == "unauthorized"


def test_a_service_that_does_not_answer_gives_503_within_the_rpc_timeout(start_gateway, web_session):
    start_gateway(rpc_timeout_s=1, services="clients")
    auth = login(web_session)
    started = time.monotonic()
    response = web_session.get("/api/v1/clients", headers=auth)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"
    assert time.monotonic() - started < 5
    health = web_session.get("/health")
    assert health.status_code == 503
    assert health.json()["services"]["clients"]["status"] == "down"


def test_a_request_that_timed_out_is_not_executed_when_the_service_comes_back(
    start_gateway, container_factory, web_session, config
):
    start_gateway(rpc_timeout_s=1, services="clients")
    auth = login(web_session)
    branch_id = branch_of(web_session, auth)
    body = {"kind": "person", "name": "Опоздавший", "branch_id": branch_id}
    key = {"Idempotency-Key": "late-create", **auth}
    assert web_session.post("/api/v1/clients", json=body, headers=key).status_code == 503
    expired_at = time.monotonic() + 1.2
    # the condition under test is the message's own time to live: the service may only appear after it
    eventlet.sleep(max(0.0, expired_at - time.monotonic()))

    clients = container_factory(ClientsService, config)
    clients.start()
    marker = web_session.post("/api/v1/clients", json={"kind": "person", "name": "Маркер", "branch_id": branch_id},
                              headers=auth)
    assert marker.status_code == 201, "a request sent after the timed-out one was served"
    names = [c["name"] for c in web_session.get(f"/api/v1/clients?branch_id={branch_id}", headers=auth).json()["items"]]
    assert names == ["Маркер"], "the expired request was dropped, not executed late"
    retried = web_session.post("/api/v1/clients", json=body, headers=key)
    assert retried.status_code == 201, "a 503 is not kept for the Idempotency-Key: the retry runs"


def test_without_the_deals_service_an_interaction_may_still_cite_a_script(
    start_gateway, container_factory, web_session, config
):
    """A CRM run without deals (CRM_SERVICES=clients) keeps logging interactions; nothing checks the script."""
    config["CRM"]["services"] = "clients"
    container_factory(ClientsService, config).start()
    start_gateway(services="clients")
    auth = login(web_session)
    branch_id = branch_of(web_session, auth)
    client = web_session.post("/api/v1/clients", json={"kind": "person", "name": "Без сделок", "branch_id": branch_id},
                              headers=auth).json()
    logged = web_session.post(f"/api/v1/clients/{client['id']}/interactions", headers=auth,
                              json={"type": "call", "script_id": "6f1c2b4e-0d1a-4c3b-9e6f-1a2b3c4d5e6f"})
    assert logged.status_code == 201, logged.text


def test_an_expired_token_is_refused(start_gateway, web_session):
    start_gateway(token_ttl_s=1)
    auth = login(web_session)
    assert web_session.get("/api/v1/me", headers=auth).status_code == 200
    poll(lambda: web_session.get("/api/v1/me", headers=auth).status_code == 401, timeout=5,
         message="the token to expire")
    assert "expired" in web_session.get("/api/v1/me", headers=auth).json()["error"]["message"]


def test_logins_answer_when_the_pools_hold_one_connection_each(start_gateway, web_session):
    # make run fits the pools to a crowded server's free connections, down to one; a login's audit entry then
    # read its user through a second read connection while its worker held the first, and waited forever
    start_gateway(db_pool_size=1)
    pool = eventlet.GreenPool(5)
    codes = list(pool.imap(lambda _: web_session.post("/api/v1/auth/login", json=ADMIN, timeout=10).status_code,
                           range(5)))
    assert codes == [200] * 5


def test_too_many_requests_from_one_user_are_slowed_down_with_retry_after(start_gateway, web_session):
    start_gateway(rate_limit_per_minute=5, rate_limit_admin_per_minute=5)  # the admin logs in below
    auth = login(web_session)
    codes = [web_session.get("/api/v1/me", headers=auth).status_code for _ in range(6)]
    assert codes[:5] == [200] * 5
    limited = web_session.get("/api/v1/me", headers=auth)
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1


def test_the_first_admin_is_created_only_when_there_is_no_user(migrated_databases, config):
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from crm_common.config import Settings
    from gateway.identity import bootstrap_admin

    engine = create_engine(migrated_databases["gateway"])
    settings = Settings.from_config(config)
    with Session(engine) as session:
        bootstrap_admin(session, settings)  # the run's first admin, if no test made it yet
        other = Settings(admin_email="boss@example.com", admin_password="boss-password")
        assert bootstrap_admin(session, other) is None
    engine.dispose()


def test_user_changes_are_published_as_events(start_gateway, container_factory, config, web_session):
    from tests.integration.recorder import EventRecorder

    start_gateway()
    recorder = container_factory(EventRecorder, config)
    recorder.start()
    auth = login(web_session)
    branch_id = branch_of(web_session, auth)
    with entrypoint_waiter(recorder, "handle_user_created", timeout=10) as waiter:
        created = web_session.post("/api/v1/users", headers=auth, json={
            "email": f"u{time.monotonic_ns()}@test.ru", "name": "Новый", "password": "long-password",
            "role": "manager", "branch_id": branch_id,
        })
    assert created.status_code == 201
    event = waiter.get()
    assert event["user"]["id"] == created.json()["id"] and "password" not in str(event)


def two_gateways(container_factory, config) -> list[str]:
    """Two gateway replicas on one database and broker, each on a port of its own: their base URLs."""
    from nameko.testing.utils import find_free_port

    gateways = []
    for _ in range(2):
        replica = dict(config, WEB_SERVER_ADDRESS=f"127.0.0.1:{find_free_port()}")
        container_factory(GatewayService, replica).start()
        gateways.append(f"http://{replica['WEB_SERVER_ADDRESS']}")
    return gateways


def test_a_user_deactivated_through_one_gateway_is_refused_by_every_other_gateway(container_factory, config):
    import requests

    first, second = two_gateways(container_factory, config)
    admin = {"Authorization": "Bearer " + requests.post(f"{first}/api/v1/auth/login", json=ADMIN).json()["access_token"]}
    branch = requests.post(f"{first}/api/v1/branches", headers=admin,
                           json={"name": "Реплики", "code": f"R{time.monotonic_ns()}"[-12:]}).json()
    email = f"r{time.monotonic_ns()}@test.ru"
    user = requests.post(f"{first}/api/v1/users", headers=admin, json={
        "email": email, "name": "Реплика", "password": "long-password", "role": "manager", "branch_id": branch["id"],
    }).json()
    token = requests.post(f"{second}/api/v1/auth/login", json={"email": email, "password": "long-password"}).json()
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    for _ in range(3):  # the second gateway now knows this user
        assert requests.get(f"{second}/api/v1/me", headers=auth).status_code == 200

    assert requests.patch(f"{first}/api/v1/users/{user['id']}", headers=admin, json={"active": False}).status_code == 200
    # the notification reaches the other gateway as the change commits: milliseconds, not a cache lifetime
    poll(lambda: requests.get(f"{second}/api/v1/me", headers=auth).status_code == 401, timeout=1.0, interval=0.01,
         message="the other gateway to refuse the deactivated user")
    assert requests.get(f"{first}/api/v1/me", headers=auth).status_code == 401


def test_a_manager_going_off_shift_through_one_gateway_is_routed_around_by_every_other_gateway(
    container_factory, config
):
    import requests

    container_factory(ClientsService, config).start()
    first, second = (f"{gateway}/api/v1" for gateway in two_gateways(container_factory, config))
    admin = {"Authorization": "Bearer " + requests.post(f"{first}/auth/login", json=ADMIN).json()["access_token"]}
    branch = requests.post(f"{first}/branches", headers=admin,
                           json={"name": "Смены", "code": f"S{time.monotonic_ns()}"[-12:]}).json()["id"]
    people = {}
    for role, extension in (("head", "200"), ("manager", "201")):
        people[role] = requests.post(f"{first}/users", headers=admin, json={
            "email": f"{role}{time.monotonic_ns()}@test.ru", "name": role, "password": "long-password", "role": role,
            "branch_id": branch, "extension": extension}).json()["id"]
    key = {"X-Api-Key": requests.post(f"{first}/api-keys", headers=admin, json={
        "name": "АТС", "branch_id": branch, "scopes": ["telephony:write"]}).json()["key"]}
    phone = f"+7916{time.monotonic_ns() % 10**7:07d}"
    assert requests.post(f"{first}/clients", headers=admin, json={
        "kind": "person", "name": "Иван", "phones": [phone], "branch_id": branch, "owner_id": people["manager"],
    }).status_code == 201

    def routed_to() -> str:
        body = {"call_id": f"c{time.monotonic_ns()}", "event": "ringing", "direction": "in", "from": phone,
                "to": "100", "at": "2026-11-30T10:00:00Z"}
        response = requests.post(f"{second}/telephony/events", headers=key, json=body)
        assert response.status_code == 200, response.text
        return response.json()["route_to"]["user_id"]

    for _ in range(3):  # the second gateway now keeps the branch's people in memory
        assert routed_to() == people["manager"]
    manager = {"Authorization": "Bearer " + requests.post(f"{first}/auth/login", json={
        "email": requests.get(f"{first}/users/{people['manager']}", headers=admin).json()["email"],
        "password": "long-password"}).json()["access_token"]}
    assert requests.patch(f"{first}/users/{people['manager']}", headers=manager,
                          json={"on_shift": False}).status_code == 200
    poll(lambda: routed_to() == people["head"], timeout=1.0, interval=0.01,
         message="the other gateway to route around the manager off shift")


def test_the_user_cache_listener_outlives_quiet_spells_and_reconnects_when_cut_off(config):
    import psycopg2
    from sqlalchemy.engine import make_url

    from crm_common.config import Settings
    from gateway.usercache import APPLICATION_NAME, CHANNEL, UserCache, UserState

    url = make_url(Settings.from_config(config).database_url_for("gateway")).set(drivername="postgresql")
    dsn = url.render_as_string(hide_password=False)
    cache = UserCache()
    cache.idle_s = 0.1
    listener = eventlet.spawn(cache.listen, dsn)
    admin = psycopg2.connect(dsn)
    admin.autocommit = True
    try:
        poll(lambda: cache.listening, message="the listener to connect")
        epoch = cache.generation("u1")[0]
        cache.put(UserState("u1", "manager", None, True, 1, time.monotonic()), cache.generation("u1"))
        checks = cache.idle_checks
        poll(lambda: cache.idle_checks >= checks + 3, message="three quiet spells")
        assert cache.get("u1") is not None and cache.generation("u1")[0] == epoch, "a quiet spell changes nothing"

        with admin.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", (CHANNEL, "u1"))
        poll(lambda: cache.get("u1") is None, message="the notification to reach the cache")

        stamp = cache.generation("u2")  # a read that starts now, while the listener is about to be cut off
        with admin.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE application_name = %s AND datname = current_database()", (APPLICATION_NAME,))
        poll(lambda: cache.generation("u2")[0] >= epoch + 2 and cache.listening, timeout=15,
             message="the listener to notice and reconnect")
        cache.put(UserState("u2", "manager", None, True, 1, time.monotonic()), stamp)
        assert cache.get("u2") is None, "a read begun before the reconnect may have missed a change"
    finally:
        cache.stop()
        listener.kill()
        admin.close()
