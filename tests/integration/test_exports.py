"""Client exports through real gateways and the clients service: the file expires and is deleted by the timer, and
the daily cap holds across two gateway replicas asking at the same moment."""

import copy
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from nameko.testing.utils import find_free_port
from sqlalchemy import create_engine, text

from clients.service import ClientsService
from crm_common.config import Settings
from crm_common.testing.fixtures import poll
from gateway.service import GatewayService

ADMIN = {"email": "admin@crm.local", "password": "admin12345"}
PASSWORD = "exports-password-1"


@pytest.fixture
def clients_service(container_factory, config):
    container = container_factory(ClientsService, config)
    container.start()
    return container


def start_gateway(container_factory, config, **crm_settings) -> str:
    config = copy.deepcopy(config)
    config["WEB_SERVER_ADDRESS"] = f"127.0.0.1:{find_free_port()}"
    config["CRM"].update(crm_settings)
    container_factory(GatewayService, config).start()
    return f"http://{config['WEB_SERVER_ADDRESS']}/api/v1"


def as_user(base: str, email: str, password: str) -> requests.Session:
    session = requests.Session()
    response = session.post(f"{base}/auth/login", json={"email": email, "password": password}, timeout=10)
    assert response.status_code == 200, response.text
    session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
    return session


def branch_with_clients(base: str, admin: requests.Session, count: int) -> str:
    response = admin.post(f"{base}/branches", json={"name": "Выгрузки", "code": f"EX{time.monotonic_ns()}"[-12:]})
    assert response.status_code == 201, response.text
    branch_id = response.json()["id"]
    for number in range(count):
        created = admin.post(f"{base}/clients", json={"kind": "person", "name": f"Клиент {number}",
                                                      "branch_id": branch_id})
        assert created.status_code == 201, created.text
    return branch_id


def test_an_expired_file_is_deleted_by_the_timer_and_answers_410(container_factory, config, clients_service):
    base = start_gateway(container_factory, config, export_ttl_s=1.5, export_poll_s=0.2)
    admin = as_user(base, **ADMIN)
    branch_id = branch_with_clients(base, admin, 3)

    accepted = admin.post(f"{base}/exports", json={"filter": {"branch_id": branch_id}})
    assert accepted.status_code == 202, accepted.text
    export_id = accepted.json()["id"]
    done = poll(lambda: (e := admin.get(f"{base}/exports/{export_id}").json())["status"] == "done" and e,
                message="the export to be made")
    assert done["rows"] == 3
    assert admin.get(f"{base}/exports/{export_id}/file").status_code == 200

    def expired():
        response = admin.get(f"{base}/exports/{export_id}/file")
        return response.json() if response.status_code == 410 else None  # a Response of 410 is falsy itself

    gone = poll(expired, timeout=10, message="the file to expire")
    assert gone["error"]["code"] == "gone"
    engine = create_engine(Settings.from_config(config).database_url_for("gateway"))
    try:
        def deleted():
            with engine.connect() as connection:
                status = connection.execute(text("SELECT status FROM exports WHERE id = :id"), {"id": export_id}).scalar()
                chunks = connection.execute(text("SELECT count(*) FROM export_chunks WHERE export_id = :id"),
                                            {"id": export_id}).scalar()
                markers = connection.execute(text("SELECT count(*) FROM export_markers WHERE export_id = :id"),
                                             {"id": export_id}).scalar()
            return status == "expired" and chunks == 0 and markers == 9

        poll(deleted, timeout=10, message="the timer to delete the file and keep the markers")
    finally:
        engine.dispose()
    assert admin.get(f"{base}/exports/{export_id}").json()["status"] == "expired"


def test_the_daily_cap_holds_across_two_gateways_asked_at_once(container_factory, config, clients_service):
    # small pools: PostgreSQL's 100 connections are shared by every test run on the machine
    first = start_gateway(container_factory, config, export_daily_rows=10, db_pool_size=2)
    second = start_gateway(container_factory, config, export_daily_rows=10, db_pool_size=2)
    admin = as_user(first, **ADMIN)
    branch_id = branch_with_clients(first, admin, 4)
    email = f"exporter-{time.monotonic_ns()}@crm.test"
    created = admin.post(f"{first}/users", json={"email": email, "name": "Exporter", "password": PASSWORD,
                                                 "role": "head", "branch_id": branch_id})
    assert created.status_code == 201, created.text
    assert admin.patch(f"{first}/users/{created.json()['id']}", json={"can_export": True}).json()["can_export"] is True
    heads = [as_user(base, email, PASSWORD) for base in (first, second)]

    def ask(index: int) -> int:
        base = (first, second)[index % 2]
        return heads[index % 2].post(f"{base}/exports", json={"filter": {}}).status_code

    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(ask, range(4)))

    assert sorted(statuses) == [202, 202, 429, 429], "4 + 4 rows fit in 10; a third export of 4 does not"
