"""The clients service over real RabbitMQ RPC with its real PostgreSQL database."""

import uuid

import pytest
from nameko.testing.services import entrypoint_waiter

from clients.service import ClientsService
from crm_common.errors import DuplicateClient, NotFound
from tests.integration.recorder import EventRecorder


@pytest.fixture
def clients(container_factory, config, rpc_proxy):
    container = container_factory(ClientsService, config)
    container.start()
    return rpc_proxy("clients")


@pytest.fixture
def branch():
    return str(uuid.uuid4())


def head_of(branch):
    return {"id": str(uuid.uuid4()), "role": "head", "branch_id": branch}


def test_a_created_client_is_read_back_with_its_phone_in_e164(clients, branch):
    head = head_of(branch)
    created = clients.create_client(head, {"kind": "person", "name": "Иван", "phones": ["8 (916) 123-45-67"]})
    assert created["phones"] == ["+79161234567"]
    assert clients.get_client(head, created["id"]) == created


def test_the_same_phone_written_differently_is_a_duplicate(clients, branch):
    head = head_of(branch)
    first = clients.create_client(head, {"kind": "person", "name": "A", "phones": ["+7 916 000-11-22"]})
    with pytest.raises(DuplicateClient) as error:
        clients.create_client(head, {"kind": "person", "name": "B", "phones": ["89160001122"]})
    assert error.value.details["existing_id"] == first["id"]


def test_a_client_of_another_branch_is_not_found(clients, branch):
    created = clients.create_client(head_of(branch), {"kind": "company", "name": "ООО Ромашка"})
    with pytest.raises(NotFound):
        clients.get_client(head_of(str(uuid.uuid4())), created["id"])


def test_creating_a_client_publishes_client_created_through_the_outbox(container_factory, config, clients, branch):
    recorder = container_factory(EventRecorder, config)
    recorder.start()
    with entrypoint_waiter(recorder, "handle_client_created", timeout=10) as waiter:
        created = clients.create_client(head_of(branch), {"kind": "person", "name": "Пётр"})
    payload = waiter.get()
    assert payload["client"]["id"] == created["id"]
    assert payload["branch_id"] == branch
    assert payload["event_id"] and payload["occurred_at"]


def test_the_health_check_command_tells_whether_a_service_answers_on_the_bus(clients, config):
    import os
    import subprocess
    import sys

    env = dict(os.environ, AMQP_URI=config["AMQP_URI"], PYTHONWARNINGS="ignore")
    command = [sys.executable, "-m", "crm_common.healthcheck"]
    up = subprocess.run([*command, "clients"], env=env, capture_output=True, text=True, timeout=30)
    assert up.returncode == 0, up.stderr
    missing = subprocess.run([*command, "no_such_service"], env=env, capture_output=True, text=True, timeout=30)
    assert missing.returncode == 1
    assert missing.stderr.strip().startswith("no_such_service is unhealthy")


def test_a_command_retried_under_the_same_idempotency_key_is_done_once(container_factory, config, branch):
    from nameko.standalone.rpc import ClusterRpcProxy

    container = container_factory(ClientsService, config)
    container.start()
    head = head_of(branch)
    body = {"kind": "person", "name": "Повторённый", "phones": ["+7 916 555-44-33"]}
    answers = []
    for _ in range(2):  # as if the first answer was lost on the way back and the gateway retried
        with ClusterRpcProxy(config, context_data={"idempotency_key": "user-1:key-1:abc"}) as cluster:
            answers.append(cluster["clients"].create_client(head, body))
    assert answers[0] == answers[1]
    with ClusterRpcProxy(config) as cluster:
        page = cluster["clients"].list_clients(head, {"q": "Повторённый"})
        assert [c["id"] for c in page["items"]] == [answers[0]["id"]]
        with pytest.raises(DuplicateClient):
            cluster["clients"].create_client(head, body)  # without the key it is a new command
