"""Settings: typed values from the nameko config, one database per service, no default secrets in production."""

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crm_common import config as config_module
from crm_common.config import (
    DEFAULT_CONFIG_PATH,
    DEV_ADMIN_PASSWORD,
    DEV_SECRET_KEY,
    SECRET_KEY_FILE,
    ConfigError,
    Settings,
    load_config,
    signing_key,
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

    assert settings.secret_key == ""
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


def test_development_starts_without_a_secret_key():
    settings = Settings.from_config({"CRM": {"env": "development"}})

    assert settings.secret_key == ""
    assert not settings.is_production


@pytest.mark.parametrize("env", ["development", "production"])
def test_the_development_key_published_in_the_repository_is_refused_everywhere(env):
    with pytest.raises(ConfigError, match="published"):
        Settings.from_config({"CRM": {"env": env, "secret_key": DEV_SECRET_KEY, "admin_password": "a-real-password"}})


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


@pytest.mark.parametrize(("raw", "expected"), [(True, True), ("on", True), ("true", True), (False, False),
                                               ("off", False), ("0", False)])
def test_the_command_log_switch_reads_yaml_and_text_booleans(raw, expected):
    assert Settings.from_config({"CRM": {"command_log": raw}}).command_log is expected


def test_production_refuses_to_run_writes_without_the_command_log():
    with pytest.raises(ConfigError) as error:
        Settings.from_config({"CRM": {"env": "production", "secret_key": STRONG_KEY,
                                      "admin_password": "a-real-password", "command_log": False}})

    assert "CRM_COMMAND_LOG" in str(error.value)


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


def test_the_tasks_settings_have_their_documented_defaults():
    settings = Settings.from_config({})

    assert (settings.task_check_interval_s, settings.default_penalty, settings.default_currency) == (60.0, "500.00", "RUB")
    assert (settings.complaint_sla_hours, settings.stuck_task_hours) == (24.0, 24.0)


@pytest.mark.parametrize(("name", "value"), [
    ("default_penalty", "пятьсот"), ("default_penalty", "-5"), ("default_penalty", "1.005"),
    ("default_currency", "rub"), ("complaint_sla_hours", "0"), ("task_check_interval_s", "-1"),
])
def test_a_tasks_setting_that_cannot_be_used_stops_the_start(name, value):
    with pytest.raises(ConfigError):
        Settings.from_config({"CRM": {name: value}})
def test_the_shipped_config_listens_on_this_machine_only_unless_told_otherwise(monkeypatch):
    monkeypatch.delenv("CRM_HTTP_HOST", raising=False)
    monkeypatch.delenv("CRM_HTTP_PORT", raising=False)

    assert load_config(DEFAULT_CONFIG_PATH)["WEB_SERVER_ADDRESS"] == "127.0.0.1:8000"

    monkeypatch.setenv("CRM_HTTP_HOST", "0.0.0.0")
    assert load_config(DEFAULT_CONFIG_PATH)["WEB_SERVER_ADDRESS"] == "0.0.0.0:8000"


def test_migrations_and_listeners_may_reach_the_server_past_a_pooler():
    pooled = Settings(database_url="postgresql://crm:pw@pgbouncer:6432", database_direct_url="postgresql://crm:pw@postgres:5432")

    assert pooled.database_url_for("clients") == "postgresql+psycopg2://crm:pw@pgbouncer:6432/crm_clients"
    assert pooled.direct_database_url_for("clients") == "postgresql+psycopg2://crm:pw@postgres:5432/crm_clients"
    unpooled = Settings(database_url="postgresql://crm:pw@postgres:5432")
    assert unpooled.direct_database_url_for("gateway") == unpooled.database_url_for("gateway")


def test_trusted_proxies_are_a_list_of_addresses_and_networks():
    settings = Settings.from_config({"CRM": {"trusted_proxies": " 10.0.0.5, 172.30.89.0/24 ,,::1"}})

    assert settings.trusted_proxies == ("10.0.0.5", "172.30.89.0/24", "::1")


def test_a_trusted_proxy_that_is_not_an_address_is_refused_at_start():
    with pytest.raises(ConfigError, match="CRM_TRUSTED_PROXIES: 'haproxy'"):
        Settings.from_config({"CRM": {"trusted_proxies": "10.0.0.5,haproxy"}})


@pytest.mark.parametrize(("raw", "expected"), [(True, True), ("1", True), ("yes", True), (False, False), ("0", False),
                                               ("false", False)])
def test_switches_read_yes_and_no_words(raw, expected):
    assert Settings.from_config({"CRM": {"http_reuse_port": raw}}).http_reuse_port is expected


# ---- the signing key

@pytest.fixture
def fresh_keys(monkeypatch):
    """Each test sees the key file as a newly started process does."""
    monkeypatch.setattr(config_module, "_keys", {})


def test_a_secret_key_that_is_set_signs_tokens_and_no_key_file_is_written(tmp_path, fresh_keys):
    settings = Settings(secret_key=STRONG_KEY, data_dir=str(tmp_path))

    assert signing_key(settings) == STRONG_KEY
    assert not (tmp_path / SECRET_KEY_FILE).exists()


def test_without_a_secret_key_a_random_key_is_generated_once_and_kept_for_its_owner_only(tmp_path, fresh_keys):
    settings = Settings(data_dir=str(tmp_path / "var"))

    key = signing_key(settings)

    path = tmp_path / "var" / SECRET_KEY_FILE
    assert path.read_text().strip() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) >= 32 and key != DEV_SECRET_KEY
    assert not [p for p in path.parent.iterdir() if p != path], "no temporary file is left behind"
    config_module._keys.clear()  # a restarted process
    assert signing_key(settings) == key
    other = tmp_path / "other"
    assert signing_key(Settings(data_dir=str(other))) != key, "every installation gets its own random key"


def test_a_process_that_loses_the_race_to_create_the_key_uses_the_winners(tmp_path, fresh_keys, monkeypatch):
    settings = Settings(data_dir=str(tmp_path))
    winner = "w" * 64
    real_link = os.link

    def another_process_links_first(source, target):
        Path(target).write_text(winner + "\n")
        os.chmod(target, 0o600)
        real_link(source, target)  # raises FileExistsError, as it would for the second process

    monkeypatch.setattr(config_module.os, "link", another_process_links_first)

    assert signing_key(settings) == winner
    assert [p.name for p in tmp_path.iterdir()] == [SECRET_KEY_FILE]


KEY_OF_A_NEW_PROCESS = """
import sys, time
from crm_common.config import Settings, signing_key
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # every process reaches the key at the same moment
print(signing_key(Settings(data_dir=sys.argv[1])))
"""


def test_processes_starting_at_the_same_moment_agree_on_one_key(tmp_path):
    start_at = time.time() + 3
    processes = [
        subprocess.Popen([sys.executable, "-c", KEY_OF_A_NEW_PROCESS, str(tmp_path), str(start_at)],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for _ in range(8)
    ]
    keys = {process.communicate(timeout=60)[0].strip() for process in processes}

    assert all(process.returncode == 0 for process in processes)
    assert keys == {(tmp_path / SECRET_KEY_FILE).read_text().strip()}


def test_a_key_file_others_could_read_is_made_private_again(tmp_path, fresh_keys):
    path = tmp_path / SECRET_KEY_FILE
    path.write_text("k" * 48 + "\n")
    os.chmod(path, 0o644)

    assert signing_key(Settings(data_dir=str(tmp_path))) == "k" * 48
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_empty_key_file_is_refused_with_what_to_do(tmp_path, fresh_keys):
    (tmp_path / SECRET_KEY_FILE).write_text("\n")
    os.chmod(tmp_path / SECRET_KEY_FILE, 0o600)

    with pytest.raises(ConfigError, match="delete it"):
        signing_key(Settings(data_dir=str(tmp_path)))


def test_a_data_dir_where_no_key_can_be_written_is_refused_with_what_to_do(tmp_path, fresh_keys):
    blocked = tmp_path / "a-file"
    blocked.write_text("")

    with pytest.raises(ConfigError, match="set CRM_SECRET_KEY"):
        signing_key(Settings(data_dir=str(blocked / "var")))


def test_pools_shrink_until_every_process_at_its_fullest_fits_in_the_free_connections():
    from crm_common.db import SPARE_CONNECTIONS, pool_size_that_fits

    # seven processes, 90 connections free: 7 x 2 x (4 + 1) + 1 + spare fits, 5 (7 x 2 x (5 + 1)) does not
    size = pool_size_that_fits(90, 7, 1, 12)
    assert size == 4 and 7 * 2 * (size + size // 3) + 1 + SPARE_CONNECTIONS <= 90
    assert pool_size_that_fits(1000, 7, 1, 12) == 12, "a large server keeps the configured size"
    assert pool_size_that_fits(20, 14, 2, 12) == 1, "never below one"
