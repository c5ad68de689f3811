"""pytest fixtures shared by every test layer (load with ``pytest_plugins = ["crm_common.testing.fixtures"]``).

Each test run gets its own RabbitMQ vhost and its own PostgreSQL databases, named after a random run
id, so runs on one machine never collide; both are removed when the run ends.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import time
import uuid
from urllib.parse import quote

import pytest
import requests

from crm_common.registry import REGISTRY

SERVICES = tuple(spec.name for spec in REGISTRY)


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def _management(method: str, path: str) -> None:
    base = os.environ.get("RABBIT_MANAGEMENT_URI", "http://guest:guest@127.0.0.1:15672")
    response = requests.request(method, f"{base}/api/{path}", json={}, timeout=10)
    if response.status_code >= 400:
        raise RuntimeError(f"RabbitMQ management API {method} {path}: {response.status_code} {response.text}")


def create_vhost(vhost: str, user: str = "guest") -> None:
    if shutil.which("rabbitmqctl") and not os.environ.get("RABBIT_MANAGEMENT_URI"):
        _rabbitmqctl("add_vhost", vhost)
        _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    else:
        _management("PUT", f"vhosts/{quote(vhost, safe='')}")
        body_path = f"permissions/{quote(vhost, safe='')}/{user}"
        base = os.environ.get("RABBIT_MANAGEMENT_URI", "http://guest:guest@127.0.0.1:15672")
        requests.put(f"{base}/api/{body_path}", json={"configure": ".*", "write": ".*", "read": ".*"}, timeout=10)


def delete_vhost(vhost: str) -> None:
    try:
        if shutil.which("rabbitmqctl") and not os.environ.get("RABBIT_MANAGEMENT_URI"):
            _rabbitmqctl("delete_vhost", vhost)
        else:
            _management("DELETE", f"vhosts/{quote(vhost, safe='')}")
    except Exception:  # noqa: BLE001 - cleanup is best effort
        pass


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:10]


def vhost_uri(vhost: str) -> str:
    base = os.environ.get("CRM_TEST_AMQP_URI", "amqp://guest:guest@127.0.0.1:5672")
    return f"{base.rstrip('/')}/{quote(vhost, safe='')}"


@pytest.fixture(scope="session")
def amqp_uri(run_id):
    """A fresh vhost for this test run on the local broker."""
    vhost = f"crm-test-{run_id}"
    create_vhost(vhost)
    yield vhost_uri(vhost)
    delete_vhost(vhost)


@pytest.fixture(scope="session")
def pg_url() -> str:
    return os.environ.get("CRM_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432")


@pytest.fixture(scope="session")
def db_prefix(run_id) -> str:
    return f"crm_t{run_id}_"


@pytest.fixture(scope="session")
def base_config(amqp_uri, pg_url, db_prefix, tmp_path_factory) -> dict:
    """The nameko config every test container uses: config.yml, pointed at this run's vhost and databases."""
    from crm_common.config import load_config

    config = load_config()
    config["AMQP_URI"] = amqp_uri
    config.pop("LOGGING", None)
    crm = config["CRM"]
    crm.update(
        database_url=pg_url,
        database_prefix=db_prefix,
        data_dir=str(tmp_path_factory.mktemp("data")),
        outbox_poll_s=0.2,
        rpc_timeout_s=5,
        rate_limit_per_minute=0,
        # many runs share one PostgreSQL server (100 connections in all): small pools per process
        db_pool_size=3,
    )
    return config


@pytest.fixture(scope="session")
def migrated_databases(base_config):
    """Every service's database created and migrated once per run; dropped at the end."""
    from crm_common.config import Settings
    from crm_common.migrate import migrate

    settings = Settings.from_config(base_config)
    for service in SERVICES:
        migrate(service, base_config)
    yield {service: settings.database_url_for(service) for service in SERVICES}
    drop_databases(settings, SERVICES)


def drop_databases(settings, services=SERVICES) -> None:
    from crm_common.db import drop_database

    for service in services:
        drop_database(settings.database_url_for(service))


@pytest.fixture
def config(base_config, migrated_databases) -> dict:
    """A copy of the run's config that a test may change."""
    return copy.deepcopy(base_config)


@pytest.fixture
def web_config(config):
    from nameko.testing.utils import find_free_port

    config["WEB_SERVER_ADDRESS"] = f"127.0.0.1:{find_free_port()}"
    return config


@pytest.fixture
def web_config_port(web_config):
    return int(web_config["WEB_SERVER_ADDRESS"].rsplit(":", 1)[1])


@pytest.fixture
def web_session(web_config_port):
    """nameko's fixture of the same name, without werkzeug's removed ``url_join``."""
    base = f"http://127.0.0.1:{web_config_port}"

    class WebSession(requests.Session):
        def request(self, method, url, *args, **kwargs):
            return super().request(method, base + url if url.startswith("/") else url, *args, **kwargs)

    with WebSession() as session:
        yield session


@pytest.fixture
def rpc_proxy(config):
    """``rpc_proxy("clients").get_client(...)``: a real RPC over the broker, as another service would call."""
    from nameko.standalone.rpc import ClusterRpcProxy

    proxies = []

    # generous: a whole suite on a loaded two-core machine can keep a service busy for seconds; a hung call
    # still fails the test, only later
    def make(service: str, timeout: float = 30):
        proxy = ClusterRpcProxy(config, timeout=timeout)
        proxies.append(proxy)
        return proxy.start()[service]

    yield make
    for proxy in proxies:
        proxy.stop()


def poll(check, timeout: float = 10.0, interval: float = 0.05, message: str = "condition"):
    """Call ``check`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)
