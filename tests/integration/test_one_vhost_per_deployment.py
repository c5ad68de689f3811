"""One RabbitMQ vhost per deployment (crm_common/vhost.py): `make run` creates its vhost where it may, and will not
start a second system on a vhost whose queues another system already consumes."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from kombu import Connection, Consumer, Queue
from nameko.testing.utils import find_free_port

from crm_common.testing.fixtures import create_vhost, delete_vhost, vhost_uri
from crm_common.vhost import VhostError, consumers_of, ensure_vhost, refuse_if_taken

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def amqp_uri():
    """A vhost of this test's own: the run's vhost holds the other tests' (durable) service queues."""
    vhost = f"crm-test-{uuid.uuid4().hex[:8]}-own"
    create_vhost(vhost)
    try:
        yield vhost_uri(vhost)
    finally:
        delete_vhost(vhost)


@pytest.fixture
def another_system(amqp_uri):
    """Something consuming the clients service's RPC queue on the vhost, as a running CRM does."""
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        queue = Queue("rpc-clients", durable=False, auto_delete=True)
        with Consumer(channel, queues=[queue], callbacks=[lambda body, message: None]):
            yield
        channel.close()


def test_a_missing_vhost_is_created_and_then_used_as_it_is():
    vhost = f"crm-test-{uuid.uuid4().hex[:8]}-made"
    uri = vhost_uri(vhost)
    try:
        assert ensure_vhost(uri) == f"vhost '{vhost}' (created)"
        assert ensure_vhost(uri) == f"vhost '{vhost}'"
    finally:
        delete_vhost(vhost)


def test_a_vhost_nobody_consumes_is_free(amqp_uri):
    refuse_if_taken(amqp_uri, ["clients", "gateway"])  # no queues yet: nothing raised
    assert consumers_of(amqp_uri, ["rpc-clients"]) == {}


def test_a_vhost_whose_queues_another_system_consumes_is_refused_saying_what_to_set(amqp_uri, another_system):
    assert consumers_of(amqp_uri, ["rpc-clients", "rpc-deals"]) == {"rpc-clients": 1}
    with pytest.raises(VhostError) as refused:
        refuse_if_taken(amqp_uri, ["clients", "deals", "gateway"])
    message = str(refused.value)
    assert "another CRM already runs" in message and "rpc-clients (1 consumer)" in message
    assert "AMQP_URI=amqp://guest:guest@127.0.0.1:5672/crm-2 make run" in message


def test_make_run_refuses_to_start_on_a_vhost_another_system_consumes(amqp_uri, another_system, tmp_path):
    env = dict(os.environ, AMQP_URI=amqp_uri, CRM_HTTP_PORT=str(find_free_port()), CRM_DATA_DIR=str(tmp_path),
               CRM_DATABASE_URL="")
    done = subprocess.run([sys.executable, "scripts/run.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0
    assert "another CRM already runs on RabbitMQ vhost" in done.stderr
    assert "AMQP_URI=" in done.stderr
    assert "database" not in done.stdout  # stopped before migrating or starting anything
