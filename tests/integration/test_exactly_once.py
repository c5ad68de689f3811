"""A write is done once even when its service is killed between the commit and the reply.

The services run as real processes (``nameko run``) started with ``CRM_TEST_HOLD_AFTER_COMMIT``: after
a write commits, the worker drops a marker file and waits, and the test kills the process with
SIGKILL at exactly that moment (``crm_common.faults``). The broker then delivers the unacknowledged
request again, to the restarted process.
"""

from __future__ import annotations

import uuid

import eventlet
import pytest
from eventlet.event import Event
from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from clients import commands as client_commands
from clients.models import Base as ClientsBase
from clients.service import ClientsService
from crm_common.caller import Caller
from crm_common.db import IDEMPOTENCY_CONTEXT_KEY, Database, WorkerDatabase, create_engine_for
from crm_common.errors import DuplicateClient
from crm_common.testing.fixtures import poll
from crm_common.testing.process import ServiceProcess, service_env
from crm_common.testing.system import phone_number
from deals.service import DealsService
from tests.integration.test_deals_service import STAGES
from tests.integration.test_gateway import login

HOLD = "CRM_TEST_HOLD_AFTER_COMMIT"


@pytest.fixture
def head():
    return {"id": str(uuid.uuid4()), "role": "head", "branch_id": str(uuid.uuid4())}


@pytest.fixture
def processes(tmp_path):
    """``processes(service, hold=True)``: a running service process, killed at the end of the test."""
    started: list[ServiceProcess] = []
    hold_folder = tmp_path / "held"
    hold_folder.mkdir()

    def start(service: str, config: dict, hold: bool = False, ready: bool = True) -> ServiceProcess:
        extra = {HOLD: str(hold_folder)} if hold else {}
        process = ServiceProcess(service, service_env(config, **extra), tmp_path / f"{service}-{len(started)}.log")
        started.append(process.start())
        if ready:
            process.wait_ready(config)
        return process

    start.hold_folder = hold_folder
    yield start
    for process in started:
        process.kill()


def held(folder, service: str, method: str) -> str:
    """Wait until a worker of ``service`` committed ``method`` and is held before its reply; its request id."""
    marker = poll(lambda: sorted(folder.glob(f"{service}.{method}.*")), timeout=60,
                  message=f"{service}.{method} to commit and hold")
    return marker[0].read_text(encoding="utf-8")


def test_a_client_created_just_before_its_process_was_killed_is_created_once_and_answered(
    config, processes, rpc_proxy, head
):
    first = processes("clients", config, hold=True)
    body = {"kind": "person", "name": "Убитый на полпути", "phones": [phone_number()]}
    with ClusterRpcProxy(config, timeout=90) as cluster:
        reply = cluster["clients"].create_client.call_async(head, body)
        key = held(processes.hold_folder, "clients", "create_client")
        first.kill()
        processes("clients", config, ready=False)  # the redelivered request waits for it in the queue
        created = reply.result()

    assert key.startswith("clients.create_client:rpc:"), "a call without an idempotency key is named by its message"
    clients = rpc_proxy("clients", timeout=30)
    page = clients.list_clients(head, {"q": body["name"]})
    assert [c["id"] for c in page["items"]] == [created["id"]], "one client, and the caller was told its id"
    assert clients.get_client(head, created["id"]) == created
    with pytest.raises(DuplicateClient) as error:
        clients.create_client(head, body)  # a new request (not a redelivery) is a duplicate as before
    assert error.value.details["existing_id"] == created["id"]


def test_a_deal_created_just_before_its_process_was_killed_is_created_once_and_answered(
    container_factory, config, processes, rpc_proxy, head
):
    container_factory(ClientsService, config).start()
    setup = container_factory(DealsService, config)
    setup.start()
    deals = rpc_proxy("deals", timeout=30)
    pipeline = deals.create_pipeline(head, {"name": "Опт", "stages": STAGES})
    client = rpc_proxy("clients", timeout=30).create_client(head, {"kind": "company", "name": "ООО Сосна"})
    setup.stop()  # from here on only the process under test serves deals

    first = processes("deals", config, hold=True)
    body = {"client_id": client["id"], "pipeline_id": pipeline["id"], "title": "Поставка", "amount": "10.00",
            "currency": "RUB"}
    with ClusterRpcProxy(config, timeout=90) as cluster:
        reply = cluster["deals"].create_deal.call_async(head, body)
        held(processes.hold_folder, "deals", "create_deal")
        first.kill()
        processes("deals", config, ready=False)
        created = reply.result()

    page = deals.list_deals(head, {"client_id": client["id"]})
    assert [d["id"] for d in page["items"]] == [created["id"]], "one deal, and the caller was told its id"


def test_a_post_that_timed_out_because_clients_died_after_its_commit_is_answered_by_a_retry_with_its_request_id(
    container_factory, web_config, web_session, processes
):
    """The whole story as an API client lives it: 503 with a request id, then the retry gets the one client."""
    from gateway.service import GatewayService

    web_config["CRM"].update(rpc_timeout_s=2, services="clients")
    container_factory(GatewayService, web_config).start()
    auth = login(web_session)
    branch = web_session.post("/api/v1/branches", json={"name": "Убийство", "code": uuid.uuid4().hex[:10]},
                              headers=auth).json()["id"]
    first = processes("clients", web_config, hold=True)
    body = {"kind": "person", "name": "Ответ потерян", "phones": [phone_number()], "branch_id": branch}

    timed_out = web_session.post("/api/v1/clients", json=body, headers=auth)
    assert timed_out.status_code == 503 and timed_out.headers["Retry-After"]
    error = timed_out.json()["error"]
    assert error["code"] == "unavailable" and error["request_id"] == timed_out.headers["X-Request-Id"]
    held(processes.hold_folder, "clients", "create_client")
    first.kill()
    processes("clients", web_config)

    retried = poll(lambda: _created(web_session.post(
        "/api/v1/clients", json=body, headers={**auth, "Idempotency-Key": error["request_id"]}
    )), timeout=60, message="the retry to be answered")
    listed = web_session.get(f"/api/v1/clients?branch_id={branch}", headers=auth).json()["items"]
    assert [c["id"] for c in listed] == [retried["id"]], "the write of the 503 was done once, and the retry got it"


def _created(response):
    if response.status_code == 503:
        return None  # the restarted process is still starting
    assert response.status_code == 201, response.text
    return response.json()


def test_a_duplicate_running_beside_the_first_run_waits_for_it_and_returns_its_result(migrated_databases):
    """The gateway's retry racing its first attempt: the second waits on the command-log key instead of
    creating the client again or failing on the unique contact."""
    engine = create_engine_for(migrated_databases["clients"], pool_size=3)
    provider = Database(ClientsBase)
    provider.session_factory = sessionmaker(engine, expire_on_commit=False)
    caller = Caller(str(uuid.uuid4()), "head", str(uuid.uuid4()))
    body = {"kind": "person", "name": "Гонка", "phones": [phone_number()]}
    request_id = f"{caller.id}:race:{uuid.uuid4().hex}"
    release, runs = Event(), []

    def attempt(hold: bool):
        db = WorkerDatabase(provider, _worker_context(request_id))

        def command():
            runs.append(hold)
            result = client_commands.create_client(db, caller, body, None, "RU")
            db.session.flush()
            if hold:
                release.wait()  # the first run, slow between its writes and its commit
            return result

        try:
            return db.write(command)
        finally:
            db.close()

    try:
        first = eventlet.spawn(attempt, True)
        poll(lambda: runs == [True], message="the first run to start")
        second = eventlet.spawn(attempt, False)
        poll(lambda: _waiting_on_a_lock(engine), message="the duplicate to wait for the first run's key")
        release.send()
        first_result, second_result = first.wait(), second.wait()
    finally:
        engine.dispose()

    assert runs == [True], "the duplicate never ran the command"
    assert second_result == first_result


def _worker_context(request_id):
    from types import SimpleNamespace

    return SimpleNamespace(
        data={IDEMPOTENCY_CONTEXT_KEY: request_id}, service_name="clients",
        entrypoint=SimpleNamespace(method_name="create_client"),
    )


def _waiting_on_a_lock(engine) -> bool:
    with engine.connect() as conn:
        return bool(conn.scalar(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )))
