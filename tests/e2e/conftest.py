"""End-to-end tests: the CRM started as `make run` starts it, driven over HTTP.

One system is started for the whole e2e session (on this run's vhost and PostgreSQL databases);
each test creates its own data, so tests do not depend on each other.
"""

from dataclasses import dataclass

import pytest
from nameko.testing.utils import find_free_port

from crm_common.config import Settings
from crm_common.testing.fixtures import create_vhost, delete_vhost, drop_databases, vhost_uri
from crm_common.testing.system import Api, start_system, unique

PASSWORD = "e2e-password-1"
# these change whatever records they find: they run after every other e2e test
LAST = ("test_openapi_conformance.py",)


def pytest_collection_modifyitems(items):
    """Move the tests of ``LAST`` to the end of the e2e tests (keeping every other order as it was)."""
    e2e = [i for i, item in enumerate(items) if "/tests/e2e/" in str(item.path)]
    if not e2e:
        return
    block = items[e2e[0]:e2e[-1] + 1]
    block.sort(key=lambda item: item.path.name in LAST)  # stable: only the LAST tests move
    items[e2e[0]:e2e[-1] + 1] = block


@pytest.fixture(scope="session")
def e2e_amqp_uri(run_id):
    """A vhost of its own: the running system's services must not answer the integration tests' calls."""
    vhost = f"crm-test-{run_id}-e2e"
    create_vhost(vhost)
    yield vhost_uri(vhost)
    delete_vhost(vhost)


@pytest.fixture(scope="session")
def system(e2e_amqp_uri, pg_url, run_id, tmp_path_factory):
    prefix = f"crm_e{run_id}_"
    env = {
        "AMQP_URI": e2e_amqp_uri,
        "CRM_DATABASE_URL": pg_url,
        "CRM_DATABASE_PREFIX": prefix,
        "CRM_HTTP_PORT": str(find_free_port()),
        "CRM_DATA_DIR": str(tmp_path_factory.mktemp("e2e-data")),
        "CRM_RATE_LIMIT_PER_MINUTE": "0",
        "CRM_STUCK_CHECK_INTERVAL_S": "0.3",
        "CRM_TASK_CHECK_INTERVAL_S": "0.3",
        "CRM_OUTBOX_POLL_S": "0.2",
        "CRM_LOG_LEVEL": "WARNING",
        "CRM_DB_POOL_SIZE": "3",
        "CRM_IMPORT_MAX_MB": "1",  # test_import_bad_input sends a file just over it
        # webhook receivers started by the tests listen on 127.0.0.1; retries come after a fraction of a second
        "CRM_WEBHOOK_ALLOW_PRIVATE": "true",
        "CRM_WEBHOOK_RETRY_BASE_S": "0.3",
        "CRM_WEBHOOK_POLL_S": "0.2",
        "CRM_WEBHOOK_TIMEOUT_S": "3",
        "CRM_RECORDING_MAX_MB": "2",
        "CRM_CORS_ORIGINS": "https://shop.example,http://localhost:3000",  # test_first_hour.py
        "CRM_EXPORT_DAILY_ROWS": "30",  # test_exports_api.py reaches the cap with a few clients
    }
    running = start_system(env, tmp_path_factory.mktemp("e2e-logs") / "run.log")
    yield running
    running.stop()
    drop_databases(Settings.from_config({"CRM": {"database_url": pg_url, "database_prefix": prefix}}))


@pytest.fixture(scope="session")
def admin(system) -> Api:
    return system.admin


@dataclass
class Branch:
    id: str
    head: Api
    managers: list


@dataclass
class World:
    admin: Api
    north: Branch
    south: Branch


def make_branch(admin: Api, name: str, managers: int = 2) -> Branch:
    branch = admin.ok("POST", "/branches", {"name": name, "code": unique("B")[:12]})
    head_email = f"{unique('head')}@e2e.test"
    admin.ok("POST", "/users", {"email": head_email, "name": f"Head of {name}", "password": PASSWORD,
                                "role": "head", "branch_id": branch["id"]})
    head = Api(admin.base_url).login(head_email, PASSWORD)
    team = []
    for index in range(managers):
        email = f"{unique('manager')}@e2e.test"
        head.ok("POST", "/users", {"email": email, "name": f"Manager {index} of {name}", "password": PASSWORD,
                                   "role": "manager"})
        team.append(Api(admin.base_url).login(email, PASSWORD))
    return Branch(branch["id"], head, team)


@pytest.fixture(scope="session")
def world(admin) -> World:
    """Two branches, each with a head and two managers."""
    return World(admin, make_branch(admin, "North"), make_branch(admin, "South"))


@pytest.fixture
def new_branch(admin):
    """``new_branch(managers=3)``: a branch of its own for a test that counts users or owners."""
    return lambda managers=2: make_branch(admin, unique("Branch "), managers)
