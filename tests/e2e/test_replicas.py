"""`make run REPLICAS=2`: two processes of every service and of the gateway, the gateways sharing one port."""

import http.client

import psutil
import pytest
from nameko.testing.utils import find_free_port

from crm_common.config import DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD, Settings
from crm_common.registry import REGISTRY
from crm_common.testing.fixtures import create_vhost, delete_vhost, drop_databases, poll, vhost_uri
from crm_common.testing.system import Api, start_system


@pytest.fixture(scope="module")
def replicated(run_id, pg_url, tmp_path_factory):
    vhost = f"crm-test-{run_id}-replicas"
    create_vhost(vhost)
    prefix = f"crm_r{run_id}_"
    env = {
        "AMQP_URI": vhost_uri(vhost),
        "CRM_DATABASE_URL": pg_url,
        "CRM_DATABASE_PREFIX": prefix,
        "CRM_HTTP_PORT": str(find_free_port()),
        "CRM_DATA_DIR": str(tmp_path_factory.mktemp("replicas-data")),
        "CRM_SECRET_KEY": "",
        "CRM_RATE_LIMIT_PER_MINUTE": "0",
        "CRM_RATE_LIMIT_ADMIN_PER_MINUTE": "0",
        "CRM_LOG_LEVEL": "INFO",  # the access lines say which gateway answered
        "CRM_DB_POOL_SIZE": "2",  # six processes on a PostgreSQL server shared with every other test run
    }
    system = start_system(env, tmp_path_factory.mktemp("replicas-logs") / "run.log", args=("--replicas", "2"))
    yield system
    system.stop()
    delete_vhost(vhost)
    drop_databases(Settings.from_config({"CRM": {"database_url": pg_url, "database_prefix": prefix}}))


def processes(system) -> dict[str, list[psutil.Process]]:
    found: dict[str, list[psutil.Process]] = {}
    for child in psutil.Process(system.process.pid).children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
        except psutil.Error:
            continue
        for spec in REGISTRY:
            if spec.entry in cmdline:
                found.setdefault(spec.name, []).append(child)
    return found


def listening_on(process: psutil.Process, port: int) -> bool:
    try:
        return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in process.net_connections("tcp"))
    except psutil.Error:
        return False


def get_on_a_new_connection(system, path: str, authorization: str | None = None, method: str = "GET") -> int:
    """One request on a connection of its own: the kernel picks a gateway for each new connection."""
    port = int(system.env["CRM_HTTP_PORT"])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, f"/api/v1{path}",
                           headers={"Authorization": authorization or system.admin.http.headers["Authorization"]})
        return connection.getresponse().status
    finally:
        connection.close()


def test_every_service_and_the_gateway_run_twice_and_both_gateways_listen_on_the_port(replicated):
    running = processes(replicated)
    port = int(replicated.env["CRM_HTTP_PORT"])

    assert {name: len(found) for name, found in running.items()} == {spec.name: 2 for spec in REGISTRY}
    assert all(listening_on(gateway, port) for gateway in running["gateway"])
    assert "2 of each service and of the gateway" in replicated.log()


def test_a_token_from_one_gateway_works_on_the_other_and_connections_are_spread_over_both(replicated):
    marker = replicated.log().count("\n")

    statuses = [get_on_a_new_connection(replicated, "/me") for _ in range(40)]

    assert statuses == [200] * 40, "every gateway checks tokens with the one generated key"
    answered = poll(lambda: _answers_per_gateway(replicated.log().split("\n")[marker:]), timeout=10,
                    message="the access lines of both gateways")
    assert set(answered) == {"gateway-1", "gateway-2"}, answered


def _answers_per_gateway(lines) -> dict[str, int] | None:
    counts: dict[str, int] = {}
    for line in lines:
        if "GET /api/v1/me 200" in line:
            name = line[1:line.index("]")]
            counts[name] = counts.get(name, 0) + 1
    return counts if sum(counts.values()) >= 40 else None


def test_a_token_logged_out_on_one_gateway_is_refused_by_both(replicated):
    session = Api(replicated.base_url).login(DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD).http.headers["Authorization"]
    # both gateways have the user's state cached (the requests spread over them)
    assert [get_on_a_new_connection(replicated, "/me", session) for _ in range(20)] == [200] * 20

    assert get_on_a_new_connection(replicated, "/auth/logout", session, method="POST") == 204

    poll(lambda: all(get_on_a_new_connection(replicated, "/me", session) == 401 for _ in range(20)), timeout=5,
         message="every gateway to refuse the logged-out token")
    assert [get_on_a_new_connection(replicated, "/me", session) for _ in range(20)] == [401] * 20
    assert [get_on_a_new_connection(replicated, "/me") for _ in range(10)] == [200] * 10  # another session


def test_when_one_gateway_dies_the_other_keeps_answering_and_the_dead_one_comes_back(replicated):
    port = int(replicated.env["CRM_HTTP_PORT"])
    victim = processes(replicated)["gateway"][0]
    victim.kill()
    victim.wait(10)

    assert [get_on_a_new_connection(replicated, "/me") for _ in range(10)] == [200] * 10
    poll(lambda: len(processes(replicated)["gateway"]) == 2
         and all(listening_on(g, port) for g in processes(replicated)["gateway"]),
         timeout=60, interval=0.5, message="the runner to restart the gateway")
    assert "exited with code" in replicated.log()
