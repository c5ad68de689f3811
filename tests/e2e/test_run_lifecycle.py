"""`make run` with its zero-setup defaults: SQLite files, a key of its own, a service that dies comes back,
Ctrl-C stops all."""

import stat
from datetime import UTC, datetime, timedelta

import jwt
import psutil
import pytest
import requests
from nameko.testing.utils import find_free_port

from crm_common import registry
from crm_common.config import DEV_SECRET_KEY, SECRET_KEY_FILE
from crm_common.registry import backend_names
from crm_common.testing.fixtures import create_vhost, delete_vhost, poll, vhost_uri
from crm_common.testing.system import phone_number, start_system


@pytest.fixture(scope="module")
def sqlite_system(run_id, tmp_path_factory):
    vhost = f"crm-test-{run_id}-sqlite"
    create_vhost(vhost)
    data_dir = tmp_path_factory.mktemp("sqlite-data")
    env = {
        "AMQP_URI": vhost_uri(vhost),
        "CRM_DATABASE_URL": "",
        "CRM_DATA_DIR": str(data_dir),
        "CRM_HTTP_PORT": str(find_free_port()),
        "CRM_LOG_LEVEL": "WARNING",
        "CRM_SECRET_KEY": "",  # as a first `make run` on a fresh machine
        "CRM_HTTP_HOST": "",
    }
    system = start_system(env, tmp_path_factory.mktemp("sqlite-logs") / "run.log")
    system.data_dir = data_dir
    yield system
    system.stop()
    delete_vhost(vhost)


def service_processes(system):
    runner = psutil.Process(system.process.pid)
    return {
        child.pid: " ".join(child.cmdline())
        for child in runner.children(recursive=True)
        if "crm_common.serve" in " ".join(child.cmdline())
    }


def test_by_default_every_service_keeps_its_data_in_its_own_sqlite_file(sqlite_system):
    client = sqlite_system.admin.ok("POST", "/branches", {"name": "Локальный", "code": "LOCAL"}, status=201)
    created = sqlite_system.admin.ok("POST", "/clients", {"kind": "person", "name": "Файл", "branch_id": client["id"],
                                                          "phones": [phone_number()]}, status=201)
    assert sqlite_system.admin.ok("GET", f"/clients/{created['id']}")["name"] == "Файл"
    expected = {f"{spec.name}.db" for spec in registry.processes(backend_names(only_default=True))}
    assert {p.name for p in sqlite_system.data_dir.glob("*.db")} == expected


def test_a_token_signed_with_the_development_key_published_in_the_repository_is_refused(sqlite_system):
    admin = sqlite_system.admin
    now = datetime.now(UTC)
    forged = jwt.encode({"sub": admin.me["id"], "ver": 1, "iat": now, "exp": now + timedelta(hours=1)},
                        DEV_SECRET_KEY, algorithm="HS256")

    response = requests.get(f"{sqlite_system.base_url}/me", headers={"Authorization": f"Bearer {forged}"}, timeout=10)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert admin.get("/me").status_code == 200, "the system's own tokens work"


def test_the_system_signs_tokens_with_a_key_of_its_own_kept_in_the_data_folder_for_its_owner_only(sqlite_system):
    key_file = sqlite_system.data_dir / SECRET_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    token = sqlite_system.admin.http.headers["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(token, key_file.read_text().strip(), algorithms=["HS256"])
    assert claims["sub"] == sqlite_system.admin.me["id"]
    assert str(key_file) in sqlite_system.log(), "the runner says where the key is"


def test_the_api_listens_on_this_machine_only_by_default(sqlite_system):
    gateway = next(pid for pid, cmd in service_processes(sqlite_system).items() if "gateway.service" in cmd)
    port = int(sqlite_system.env["CRM_HTTP_PORT"])
    listening = {c.laddr.ip for c in psutil.Process(gateway).net_connections("tcp")
                 if c.status == psutil.CONN_LISTEN and c.laddr.port == port}
    assert listening == {"127.0.0.1"}


def test_a_service_that_dies_is_restarted_and_reported(sqlite_system):
    health_url = sqlite_system.base_url.replace("/api/v1", "/health")
    victim = next(pid for pid, cmd in service_processes(sqlite_system).items() if "clients.service" in cmd)
    psutil.Process(victim).kill()
    poll(lambda: "clients exited" in sqlite_system.log(), timeout=20, message="the runner to report the death")
    poll(lambda: requests.get(health_url, timeout=5).status_code == 200, timeout=60, interval=0.5,
         message="health to recover after the restart")
    assert victim not in service_processes(sqlite_system)
    assert any("clients.service" in cmd for cmd in service_processes(sqlite_system).values())
    assert sqlite_system.admin.ok("GET", "/clients")["items"], "the data survived the crash"


def test_ctrl_c_stops_every_service_cleanly(sqlite_system):

    children = [psutil.Process(pid) for pid in service_processes(sqlite_system)]
    assert len(children) == len(registry.processes(backend_names(only_default=True)))
    assert sqlite_system.stop() == 0
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive
    assert "stopped" in sqlite_system.log()
    assert "did not stop" not in sqlite_system.log(), "every service stopped on its SIGTERM, none was killed"
