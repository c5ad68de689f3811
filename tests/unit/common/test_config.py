"""Settings: typed values from the nameko config, one database per service, no default secrets in production."""

from pathlib import Path

import pytest

from crm_common.config import (
    DEFAULT_CONFIG_PATH,
    DEV_ADMIN_PASSWORD,
    DEV_SECRET_KEY,
    ConfigError,
    Settings,
    load_config,
)
from crm_common.registry import backend_names

STRONG_KEY = "k" * 40


def test_an_empty_config_gives_the_development_defaults():
    settings = Settings.from_config({})

    assert settings.env == "development"
    assert settings.default_region == "RU"
    assert settings.database_url is None
    assert settings.services == backend_names(only_default=True)


def test_a_service_the_registry_does_not_know_is_refused():
    with pytest.raises(ConfigError, match="unknown services: reprots"):
        Settings.from_config({"CRM": {"services": "clients,reprots"}})


def test_string_values_from_the_environment_become_typed_settings():
    settings = Settings.from_config(
        {
            "AMQP_URI": "amqp://u:p@rabbit:5672/crm",
            "CRM": {
                "db_pool_size": "20",
                "rpc_timeout_s": "2.5",
                "token_ttl_s": "60",
                "services": " clients , deals,, ",
                "default_region": "KZ",
            },
        }
    )

    assert settings.amqp_uri == "amqp://u:p@rabbit:5672/crm"
    assert settings.db_pool_size == 20
    assert settings.rpc_timeout_s == 2.5
    assert settings.token_ttl_s == 60
    assert settings.services == ("clients", "deals")
    assert settings.default_region == "KZ"


@pytest.mark.parametrize("blank", [None, ""])
def test_a_blank_setting_keeps_its_default(blank):
    settings = Settings.from_config({"CRM": {"secret_key": blank, "data_dir": blank}})

    assert settings.secret_key == DEV_SECRET_KEY
    assert settings.data_dir == "./var"


def test_without_a_database_url_each_service_gets_its_own_sqlite_file(tmp_path):
    settings = Settings(data_dir=str(tmp_path))

    clients_url = settings.database_url_for("clients")
    deals_url = settings.database_url_for("deals")

    assert clients_url == f"sqlite:///{tmp_path.resolve() / 'clients.db'}"
    assert deals_url == f"sqlite:///{tmp_path.resolve() / 'deals.db'}"


def test_a_relative_data_dir_becomes_an_absolute_sqlite_path():
    url = Settings(data_dir="./var").database_url_for("clients")

    assert Path(url.removeprefix("sqlite:///")).is_absolute()


@pytest.mark.parametrize(
    "server_url",
    [
        "postgresql://crm:s3cret@db.local:5432/postgres",
        "postgresql+psycopg2://crm:s3cret@db.local:5432/whatever",
        "postgresql://crm:s3cret@db.local:5432",
    ],
)
def test_a_postgresql_server_url_gives_each_service_the_database_prefix_plus_its_name(server_url):
    settings = Settings(database_url=server_url, database_prefix="crm_")

    assert settings.database_url_for("clients") == "postgresql+psycopg2://crm:s3cret@db.local:5432/crm_clients"
    assert settings.database_url_for("deals") == "postgresql+psycopg2://crm:s3cret@db.local:5432/crm_deals"


def test_the_database_prefix_is_configurable():
    settings = Settings.from_config({"CRM": {"database_url": "postgresql://crm:pw@db/postgres", "database_prefix": "test_run1_"}})

    assert settings.database_url_for("gateway").endswith("/test_run1_gateway")


def test_a_per_service_database_url_overrides_the_shared_one():
    settings = Settings.from_config(
        {
            "CRM": {
                "database_url": "postgresql://crm:pw@db/postgres",
                "service_database_urls": {"deals": "postgresql+psycopg2://deals:pw@deals-db/deals", "clients": ""},
            }
        }
    )

    assert settings.database_url_for("deals") == "postgresql+psycopg2://deals:pw@deals-db/deals"
    assert settings.database_url_for("clients") == "postgresql+psycopg2://crm:pw@db/crm_clients"


def test_development_starts_with_the_development_secrets():
    settings = Settings.from_config({"CRM": {"env": "development"}})

    assert settings.secret_key == DEV_SECRET_KEY
    assert not settings.is_production


@pytest.mark.parametrize(
    ("crm", "named"),
    [
        ({"admin_password": "a-real-password"}, "CRM_SECRET_KEY"),
        ({"secret_key": "short-key", "admin_password": "a-real-password"}, "CRM_SECRET_KEY"),
        ({"secret_key": DEV_SECRET_KEY, "admin_password": "a-real-password"}, "CRM_SECRET_KEY"),
        ({"secret_key": STRONG_KEY}, "CRM_ADMIN_PASSWORD"),
        ({"secret_key": STRONG_KEY, "admin_password": DEV_ADMIN_PASSWORD}, "CRM_ADMIN_PASSWORD"),
        ({"secret_key": STRONG_KEY, "admin_password": "a-real-password"}, "CRM_BACKUP_KEY"),
    ],
)
def test_production_refuses_to_start_with_a_default_or_weak_secret(crm, named):
    with pytest.raises(ConfigError) as error:
        Settings.from_config({"CRM": {"env": "production", **crm}})

    assert named in str(error.value)


BACKUP_KEY = "p7Kc0V0b0m1u0dG5zcXx8aKq3wQ3n2Jg6fDq1c5y8Xk"


def test_production_without_the_backup_service_needs_no_backup_key():
    settings = Settings.from_config({"CRM": {"env": "production", "secret_key": STRONG_KEY,
                                             "admin_password": "a-real-password", "services": "clients,deals"}})

    assert settings.is_production


def test_production_starts_with_real_secrets():
    settings = Settings.from_config({"CRM": {"env": "production", "secret_key": STRONG_KEY, "admin_password": "a-real-password",
                                             "backup_key": BACKUP_KEY}})

    assert settings.is_production
    assert settings.secret_key == STRONG_KEY


CONFIG_YAML = """\
AMQP_URI: ${TEST_CRM_AMQP_URI:amqp://guest:guest@127.0.0.1:5672/}
WEB_SERVER_ADDRESS: ${TEST_CRM_HOST:0.0.0.0}:${TEST_CRM_PORT:8000}
CRM:
  env: ${TEST_CRM_ENV:development}
  database_url: ${TEST_CRM_DATABASE_URL:}
  db_pool_size: ${TEST_CRM_DB_POOL_SIZE:12}
  default_region: ${TEST_CRM_REGION:RU}
  secret_key: ${TEST_CRM_SECRET_KEY:}
"""


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    for name in ("AMQP_URI", "HOST", "PORT", "ENV", "DATABASE_URL", "DB_POOL_SIZE", "REGION", "SECRET_KEY"):
        monkeypatch.delenv(f"TEST_CRM_{name}", raising=False)
    path = tmp_path / "config.yml"
    path.write_text(CONFIG_YAML, encoding="utf-8")
    return path


def test_load_config_uses_the_defaults_written_in_the_file_when_the_environment_is_silent(config_file):
    config = load_config(config_file)

    assert config["AMQP_URI"] == "amqp://guest:guest@127.0.0.1:5672/"
    assert config["WEB_SERVER_ADDRESS"] == "0.0.0.0:8000"
    assert config["CRM"]["db_pool_size"] == 12
    assert config["CRM"]["default_region"] == "RU"
    assert not config["CRM"]["database_url"]


def test_load_config_takes_values_from_the_environment(config_file, monkeypatch):
    monkeypatch.setenv("TEST_CRM_AMQP_URI", "amqp://crm:pw@rabbit:5672/")
    monkeypatch.setenv("TEST_CRM_PORT", "9000")
    monkeypatch.setenv("TEST_CRM_DATABASE_URL", "postgresql://crm:pw@db/postgres")
    monkeypatch.setenv("TEST_CRM_DB_POOL_SIZE", "30")
    monkeypatch.setenv("TEST_CRM_REGION", "BY")

    config = load_config(config_file)

    assert config["AMQP_URI"] == "amqp://crm:pw@rabbit:5672/"
    assert config["WEB_SERVER_ADDRESS"] == "0.0.0.0:9000"
    assert config["CRM"]["database_url"] == "postgresql://crm:pw@db/postgres"
    assert config["CRM"]["db_pool_size"] == 30
    assert config["CRM"]["default_region"] == "BY"


def test_load_config_reads_the_file_named_by_crm_config(config_file, monkeypatch):
    monkeypatch.setenv("CRM_CONFIG", str(config_file))
    monkeypatch.setenv("TEST_CRM_REGION", "UA")

    assert load_config()["CRM"]["default_region"] == "UA"


def test_a_loaded_config_becomes_settings(config_file, monkeypatch):
    monkeypatch.setenv("TEST_CRM_DATABASE_URL", "postgresql://crm:pw@db/postgres")
    monkeypatch.setenv("TEST_CRM_DB_POOL_SIZE", "7")

    settings = Settings.from_config(load_config(config_file))

    assert settings.db_pool_size == 7
    assert settings.database_url_for("clients") == "postgresql+psycopg2://crm:pw@db/crm_clients"


def test_a_loaded_production_config_without_a_secret_key_refuses_to_start(config_file, monkeypatch):
    monkeypatch.setenv("TEST_CRM_ENV", "production")

    with pytest.raises(ConfigError):
        Settings.from_config(load_config(config_file))


@pytest.mark.parametrize(
    "password",
    [
        pytest.param("012345", id="leading-zero-digits"),
        pytest.param("12345678", id="all-digits"),
        pytest.param("yes", id="yaml-boolean-word"),
        pytest.param("null", id="yaml-null-word"),
        pytest.param("p@ss #1", id="hash-after-a-space"),
        pytest.param("pass: word", id="colon-and-space"),
        pytest.param("[admin]", id="brackets"),
        pytest.param("*star*", id="leading-asterisk"),
        pytest.param("s3cret-pass", id="plain"),
    ],
)
def test_the_shipped_config_keeps_the_admin_password_exactly_as_the_environment_gives_it(monkeypatch, password):
    monkeypatch.setenv("CRM_ADMIN_PASSWORD", password)

    settings = Settings.from_config(load_config(DEFAULT_CONFIG_PATH))

    assert settings.admin_password == password


@pytest.mark.parametrize(
    "secret_key",
    [
        pytest.param("0" + "1234567" * 5, id="leading-zero-digits"),
        pytest.param("k3y #" + "x" * 40, id="hash-after-a-space"),
        pytest.param("x" * 48, id="plain"),
    ],
)
def test_the_shipped_config_keeps_the_secret_key_exactly_as_the_environment_gives_it(monkeypatch, secret_key):
    monkeypatch.setenv("CRM_SECRET_KEY", secret_key)

    assert Settings.from_config(load_config(DEFAULT_CONFIG_PATH)).secret_key == secret_key


@pytest.mark.parametrize("url", ["sqlite:////tmp/crm.db", "mysql://root@localhost/crm"])
def test_a_database_url_that_is_not_a_postgresql_server_is_refused(url):
    from crm_common.config import ConfigError, Settings

    with pytest.raises(ConfigError):
        Settings(database_url=url).database_url_for("clients")
