"""docker-compose.yml, the Dockerfile, the postgres init script and the HAProxy and PgBouncer configurations
under deploy/ agree with the code in this repository, and with the one list of services, crm_common/registry.py.

No Docker is needed: the compose file is read with PyYAML and its ``${VAR}`` interpolation is applied
here the way compose applies it; HAProxy's and PgBouncer's files are parsed here. When ``docker compose``
or ``haproxy`` is installed it also validates its file.
"""

from __future__ import annotations

import configparser
import importlib
import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from crm_common.config import Settings, load_config
from crm_common.migrate import migrations_dir
from crm_common.registry import REGISTRY, backend_names, gateway

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
HAPROXY_FILE = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
PGBOUNCER_FILE = ROOT / "deploy" / "pgbouncer" / "pgbouncer.ini"
INFRASTRUCTURE = {"rabbitmq", "postgres", "pgbouncer", "haproxy"}
ENV_EXAMPLE = ROOT / ".env.example"
CRM_SERVICES = tuple(spec.name for spec in REGISTRY)
NAMEKO_SERVICES = backend_names()
REQUIRED_SECRETS = ("CRM_SECRET_KEY", "CRM_ADMIN_PASSWORD", "CRM_BACKUP_KEY", "CRM_WEBHOOK_KEY", "POSTGRES_PASSWORD",
                    "RABBITMQ_PASSWORD")
TEST_SECRETS = {name: f"test-{name.lower().replace('_', '-')}-0123456789abcdef" for name in REQUIRED_SECRETS}

# Compose's interpolation: $$, ${VAR}, ${VAR-default}, ${VAR:-default}, ${VAR?error}, ${VAR:?error}.
INTERPOLATION = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})")


class MissingVariable(Exception):
    pass


def interpolate(text: str, env: dict[str, str]) -> str:
    def replace(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        name, op, arg = match["name"], match["op"], match["arg"]
        value = env.get(name)
        missing = value is None or (value == "" and op is not None and op.startswith(":"))
        if op and op.endswith("?") and missing:
            raise MissingVariable(f"{name}: {arg}")
        if op and op.endswith("-") and missing:
            return arg
        return value or ""

    return INTERPOLATION.sub(replace, text)


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip()
    return env


def example_env() -> dict[str, str]:
    """What an operator's .env looks like once the example's empty secrets are filled in."""
    return {**read_env_file(ENV_EXAMPLE), **TEST_SECRETS}


def rendered_compose(env: dict[str, str] | None = None) -> dict:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    return yaml.safe_load(interpolate(text, example_env() if env is None else env))


COMPOSE = rendered_compose()
SERVICES = COMPOSE["services"]


def command_of(service: str) -> list[str]:
    """The service's command split the way compose splits a string command."""
    command = SERVICES[service]["command"]
    return shlex.split(command) if isinstance(command, str) else list(command)


def script_of(service: str) -> str:
    sh, flag, script = command_of(service)
    assert (sh, flag) == ("sh", "-c"), f"{service} should run its migrate-then-run script with sh -c"
    return script


def nameko_target(service: str) -> tuple[str, str, str]:
    match = re.search(r"exec python -m crm_common.serve run --config (\S+) ([\w.]+):(\w+)$", script_of(service))
    assert match, f"{service} should end its command with `exec python -m crm_common.serve run --config <file> <module>:<class>`"
    return match.group(1), match.group(2), match.group(3)


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            instructions.append((keyword.upper(), " ".join(rest.split())))
    return instructions


def healthcheck_test(service: str) -> list[str]:
    test = SERVICES[service]["healthcheck"]["test"]
    return shlex.split(test) if isinstance(test, str) else list(test)


def test_every_crm_service_runs_the_image_built_from_this_repository():
    images = {SERVICES[name]["image"] for name in CRM_SERVICES}
    assert len(images) == 1, f"every CRM process should run one image, not {images}"
    for name in CRM_SERVICES:
        build = SERVICES[name]["build"]
        context = build if isinstance(build, str) else build.get("context", ".")
        assert (ROOT / context / "Dockerfile").resolve() == (ROOT / "Dockerfile").resolve(), name


@pytest.mark.parametrize("service", CRM_SERVICES)
def test_every_service_restarts_after_a_crash(service):
    assert SERVICES[service].get("restart") in ("always", "unless-stopped", "on-failure")


@pytest.mark.parametrize("service", CRM_SERVICES)
def test_every_service_waits_for_a_healthy_broker_and_database(service):
    depends_on = SERVICES[service]["depends_on"]
    for infrastructure in ("rabbitmq", "postgres", "pgbouncer"):
        assert depends_on[infrastructure]["condition"] == "service_healthy", f"{service} -> {infrastructure}"
        assert "healthcheck" in SERVICES[infrastructure], f"{infrastructure} needs a healthcheck to wait for"


@pytest.mark.parametrize("service", CRM_SERVICES)
def test_every_service_runs_the_nameko_class_the_registry_names_under_its_own_name(service):
    config_file, module, class_name = nameko_target(service)
    assert (ROOT / config_file).is_file(), f"{service} reads {config_file}, which is not in the repository"
    assert f"{module}:{class_name}" == next(spec.entry for spec in REGISTRY if spec.name == service)
    service_class = getattr(importlib.import_module(module), class_name)
    assert service_class.name == service


def test_compose_runs_exactly_the_processes_of_the_registry():
    assert set(SERVICES) - INFRASTRUCTURE == set(CRM_SERVICES)


@pytest.mark.parametrize("service", CRM_SERVICES)
def test_every_service_migrates_its_own_database_before_it_starts(service):
    script = script_of(service)
    assert script.startswith(f"python -m crm_common.migrate {service} && "), script
    assert (migrations_dir(service) / "env.py").is_file(), f"{service} has no migrations next to its package"


@pytest.mark.parametrize("service", NAMEKO_SERVICES)
def test_every_nameko_service_checks_its_health_over_the_bus_and_runs_its_replicas(service):
    assert healthcheck_test(service) == ["CMD", "python", "-m", "crm_common.healthcheck", service]
    importlib.import_module("crm_common.healthcheck")
    expected = next(spec.replicas for spec in REGISTRY if spec.name == service)
    assert SERVICES[service]["deploy"]["replicas"] == expected >= 2


def published_ports(service: str) -> set[str]:
    return {str(p["target"]) if isinstance(p, dict) else str(p).rsplit(":", 1)[-1]
            for p in SERVICES[service].get("ports", [])}


def gateway_port() -> int:
    """The port the gateway listens on inside its container, as config.yml reads the compose environment."""
    config = load_config_with(SERVICES["gateway"]["environment"])
    return int(config["WEB_SERVER_ADDRESS"].rsplit(":", 1)[1])


def load_config_with(environment: dict) -> dict:
    saved = dict(os.environ)
    try:
        for name in [n for n in os.environ if n.startswith("CRM_") or n == "AMQP_URI"]:
            del os.environ[name]
        os.environ.update({name: str(value) for name, value in environment.items()})
        return load_config()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_only_haproxy_publishes_the_api_and_the_gateway_runs_its_replicas_behind_it():
    assert gateway().name == "gateway"
    assert published_ports("haproxy") == {"8000"}
    publishing = {name for name in SERVICES if published_ports(name)} - {"rabbitmq"}
    assert publishing == {"haproxy"}, "a gateway replica that published the port would bypass the balancer"
    assert SERVICES["gateway"]["deploy"]["replicas"] == gateway().replicas >= 2
    assert "http://127.0.0.1:8000/health" in " ".join(healthcheck_test("gateway"))
    assert SERVICES["gateway"]["environment"]["CRM_HTTP_HOST"] == "0.0.0.0", "reachable from HAProxy"
    assert SERVICES["haproxy"]["depends_on"]["gateway"]["condition"] == "service_healthy"


def test_the_gateway_starts_once_the_services_it_calls_are_healthy():
    depends_on = SERVICES["gateway"]["depends_on"]
    for service in NAMEKO_SERVICES:
        assert depends_on[service]["condition"] == "service_healthy"


def test_rabbitmq_runs_the_management_image_and_keeps_its_data():
    rabbitmq = SERVICES["rabbitmq"]
    assert re.fullmatch(r"rabbitmq:3\.\d+-management", rabbitmq["image"])
    assert healthcheck_test("rabbitmq")[-3:] == ["rabbitmq-diagnostics", "-q", "ping"]
    assert {str(p).rsplit(":", 1)[-1] for p in rabbitmq["ports"]} >= {"5672", "15672"}
    # the data directory is named after the node, rabbit@<hostname>
    assert rabbitmq.get("hostname")
    assert any(v.split(":")[0] in COMPOSE["volumes"] and v.endswith(":/var/lib/rabbitmq") for v in rabbitmq["volumes"])


def test_postgres_creates_one_database_per_service():
    postgres = SERVICES["postgres"]
    assert postgres["image"].startswith("postgres:16")
    assert "pg_isready" in healthcheck_test("postgres")
    assert any(v.split(":")[0] in COMPOSE["volumes"] for v in postgres["volumes"])
    init_scripts = [
        ROOT / v.split(":")[0] for v in postgres["volumes"] if ":/docker-entrypoint-initdb.d/" in v
    ]
    assert init_scripts and all(path.is_file() for path in init_scripts), init_scripts
    sql = " ".join(path.read_text(encoding="utf-8") for path in init_scripts)
    created = set(re.findall(r"CREATE DATABASE\s+\"?(\w+)\"?", sql, re.IGNORECASE))
    settings = Settings(database_url="postgresql://postgres:x@postgres:5432")
    expected = {urlparse(settings.database_url_for(name)).path.lstrip("/") for name in CRM_SERVICES}
    assert expected == {f"crm_{name}" for name in CRM_SERVICES}
    assert created == expected


def test_compose_refuses_to_start_without_the_secrets():
    raw = COMPOSE_FILE.read_text(encoding="utf-8")
    for name in REQUIRED_SECRETS:
        uses = re.findall(r"\$\{" + name + r"(:?[-?]?)[^}]*\}", raw)
        assert uses and all(op == ":?" for op in uses), f"every use of {name} should be ${{{name}:?...}}"
        with pytest.raises(MissingVariable, match=name):
            rendered_compose({**example_env(), name: ""})
    assert all(not read_env_file(ENV_EXAMPLE)[name] for name in REQUIRED_SECRETS), (
        "the example must not ship usable secrets: a copied .env would run production with them"
    )


def test_containers_get_a_production_configuration_the_services_accept(monkeypatch):
    environment = {name: value for name, value in SERVICES["gateway"]["environment"].items()
                   if name not in ("CRM_HTTP_HOST", "CRM_TRUSTED_PROXIES")}
    assert {name: SERVICES[name]["environment"] for name in NAMEKO_SERVICES} == {
        name: {**environment, "CRM_SERVICE_NAME": name} for name in NAMEKO_SERVICES
    }
    for name in [n for n in os.environ if n.startswith("CRM_") or n == "AMQP_URI"]:
        monkeypatch.delenv(name)
    for name, value in SERVICES["gateway"]["environment"].items():
        monkeypatch.setenv(name, str(value))
    settings = Settings.from_config(load_config())
    assert settings.is_production
    assert urlparse(settings.amqp_uri).hostname == "rabbitmq"
    assert settings.secret_key == TEST_SECRETS["CRM_SECRET_KEY"]
    assert settings.admin_password == TEST_SECRETS["CRM_ADMIN_PASSWORD"]
    assert set(settings.services) == set(backend_names(only_default=True))
    pooled, direct = urlparse(settings.database_url_for("clients")), urlparse(settings.direct_database_url_for("gateway"))
    assert (pooled.hostname, pooled.port, pooled.path) == ("pgbouncer", 6432, "/crm_clients")
    assert (direct.hostname, direct.port, direct.path) == ("postgres", 5432, "/crm_gateway")


def test_the_example_env_documents_every_variable_compose_reads():
    raw = COMPOSE_FILE.read_text(encoding="utf-8")
    used = {match["name"] for match in INTERPOLATION.finditer(raw) if match["name"]}
    assert used <= set(read_env_file(ENV_EXAMPLE)), used - set(read_env_file(ENV_EXAMPLE))


def test_the_compose_file_is_valid():
    allowed = {"name", "services", "volumes", "networks", "configs", "secrets"}
    assert {key for key in COMPOSE if not key.startswith("x-")} <= allowed
    for name, service in SERVICES.items():
        assert "image" in service or "build" in service, name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith((".", "/")) or source in COMPOSE["volumes"], f"{name}: undeclared {source}"
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        result = subprocess.run(
            [docker, "compose", "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE_FILE), "config", "-q"],
            capture_output=True, text=True, cwd=ROOT, env={**os.environ, **TEST_SECRETS},
        )
        assert result.returncode == 0, result.stderr


def test_the_dockerfile_copies_config_and_does_not_run_as_root():
    instructions = dockerfile_instructions()
    # slim, of a Debian release whose postgresql-client can dump the compose file's PostgreSQL (backups)
    assert instructions[0][0] == "FROM" and instructions[0][1].startswith("python:3.11-slim")
    copies = [args for keyword, args in instructions if keyword == "COPY"]
    assert any("config.yml" in args.split()[:-1] for args in copies)
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")


def test_the_dockerfile_installs_dependencies_before_copying_the_code():
    """Code changes then rebuild only the last layers; the pip install of requirements stays cached."""
    instructions = dockerfile_instructions()
    position = {}
    for index, (keyword, args) in enumerate(instructions):
        if keyword == "RUN" and "-r requirements.txt" in args:
            position.setdefault("requirements", index)
        if keyword == "COPY" and ("services" in args or "gateway" in args or args.startswith(". ")):
            position.setdefault("code", index)
    assert position["requirements"] < position["code"]
    install = " ".join(args for keyword, args in instructions if keyword == "RUN" and "-e " in args)
    # every folder under services/ (crm_common and each service) and the gateway, installed in place so
    # each service's migrations/ stays beside its package
    assert "printf -- '-e %s ' services/*/ gateway/" in install
    for spec in REGISTRY:
        assert spec.folder == "gateway" or Path(spec.folder).parent == Path("services"), spec.folder


def test_the_makefile_installs_every_service_folder_and_migrates_every_service():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "$(wildcard services/*/pyproject.toml)" in makefile
    assert "$(PY) -m crm_common.migrate\n" in makefile.replace("\n", "\\n") or "-m crm_common.migrate\n" in makefile


def test_the_docker_build_context_leaves_out_local_state_and_secrets():
    ignored = set((ROOT / ".dockerignore").read_text(encoding="utf-8").split())
    assert {".venv", "var", ".git", ".env", "bench/results"} <= ignored
    assert ignored & {"__pycache__", "**/__pycache__"}


# ---- HAProxy in front of the gateway's replicas

def haproxy_sections() -> dict[str, list[list[str]]]:
    """``{"backend gateways": [["balance", "leastconn"], ...], ...}``: HAProxy's sections and their lines."""
    sections: dict[str, list[list[str]]] = {}
    current = None
    for raw in HAPROXY_FILE.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if not raw[0].isspace():
            current = " ".join(line.split())
            sections[current] = []
        else:
            sections[current].append(line.split())
    return sections


HAPROXY = haproxy_sections()


def directives(section: str, keyword: str) -> list[list[str]]:
    return [line[1:] for line in HAPROXY[section] if line[0] == keyword]


def the_backend() -> str:
    (frontend,) = [name for name in HAPROXY if name.startswith("frontend ")]
    ((backend,),) = directives(frontend, "default_backend")
    assert f"backend {backend}" in HAPROXY
    return f"backend {backend}"


def container_path(path: str, service: str) -> Path:
    """The repository file that a path inside a container is, through the service's bind mounts."""
    for volume in SERVICES[service]["volumes"]:
        source, target = volume.split(":")[:2]
        if path == target or path.startswith(target.rstrip("/") + "/"):
            return ROOT / source / path[len(target):].lstrip("/")
    raise AssertionError(f"{path} is not mounted into {service}")


def test_haproxy_listens_on_the_port_it_publishes_and_sends_everything_to_the_gateways():
    (frontend,) = [name for name in HAPROXY if name.startswith("frontend ")]
    binds = {args[0].rsplit(":", 1)[-1] for args in directives(frontend, "bind")}
    assert binds == published_ports("haproxy")
    servers = directives(the_backend(), "server") + directives(the_backend(), "server-template")
    assert servers, "the backend has no servers"
    for server in servers:
        address = server[2] if len(server) > 2 and server[1].isdigit() else server[1]
        host, port = address.rsplit(":", 1)
        assert (host, int(port)) == ("gateway", gateway_port())


def test_haproxy_finds_every_gateway_replica_and_has_room_for_more():
    templates = directives(the_backend(), "server-template")
    assert templates and int(templates[0][1]) >= 2 * SERVICES["gateway"]["deploy"]["replicas"]
    default_server = " ".join(" ".join(args) for args in directives(the_backend(), "default-server"))
    assert "resolvers docker" in default_server and "init-addr none" in default_server
    assert ["dns", "127.0.0.11:53"] in directives("resolvers docker", "nameserver"), "Docker's embedded DNS"


def test_haproxy_balances_by_least_connections_and_checks_each_gateway_on_its_public_health_route():
    backend = the_backend()
    assert directives(backend, "balance") == [["leastconn"]]
    assert ["httpchk"] in directives(backend, "option")
    assert "check" in " ".join(" ".join(args) for args in directives(backend, "default-server"))
    ((_, *pairs),) = [args for args in directives(backend, "http-check") if args[0] == "send"]
    send = dict(zip(pairs[::2], pairs[1::2]))
    method, path = send["meth"], send["uri"]
    from gateway.openapi import routes_of
    from gateway.service import GatewayService

    health = [route for _, route in routes_of(GatewayService) if route.url == path and route.method == method]
    assert health and health[0].public, f"{method} {path} must be a public route of the gateway"
    ((kind, pattern),) = [args[1:] for args in directives(backend, "http-check") if args[0] == "expect"]
    assert kind == "rstatus"
    # a gateway that answers, healthy or reporting a service down, serves; one that fails does not
    assert re.fullmatch(pattern.strip("^$"), "200") and re.fullmatch(pattern.strip("^$"), "503")
    assert not re.fullmatch(pattern.strip("^$"), "500")


def test_the_gateway_believes_x_forwarded_for_from_haproxy_and_from_nobody_else():
    (frontend,) = [name for name in HAPROXY if name.startswith("frontend ")]
    assert ["forwardfor"] in directives(frontend, "option") + directives("defaults", "option")
    environment = SERVICES["gateway"]["environment"]
    trusted = [ipaddress.ip_network(net) for net in environment["CRM_TRUSTED_PROXIES"].split(",")]
    (subnet,) = [ipaddress.ip_network(c["subnet"]) for c in COMPOSE["networks"]["default"]["ipam"]["config"]]
    assert trusted == [subnet], "HAProxy's network and nothing wider"
    assert not subnet.is_global
    assert "networks" not in SERVICES["haproxy"], "HAProxy is on the default network"
    assert all("CRM_TRUSTED_PROXIES" not in SERVICES[name]["environment"] for name in NAMEKO_SERVICES)


def test_every_answer_haproxy_gives_itself_is_in_the_api_error_shape():
    from gateway.errors import ERROR_STATUSES

    errorfiles = directives("defaults", "errorfile")
    assert {status for status, _ in errorfiles} >= {"502", "503", "504"}
    for status, path in errorfiles:
        raw = container_path(path, "haproxy").read_bytes()
        head, _, body = raw.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("ascii").split("\r\n")
        assert status_line.split()[:2] == ["HTTP/1.1", status]
        headers = dict(line.split(": ", 1) for line in header_lines)
        assert headers["Content-Type"].startswith("application/json")
        assert int(headers["Content-Length"]) == len(body)
        error = json.loads(body)["error"]
        assert error["code"] in ERROR_STATUSES.values() and error["message"]


def test_the_haproxy_configuration_is_valid():
    haproxy = shutil.which("haproxy")
    if not haproxy:
        pytest.skip("haproxy is not installed; the file was checked by parsing only")
    with_local_paths = HAPROXY_FILE.read_text(encoding="utf-8").replace(
        "/usr/local/etc/haproxy", str(HAPROXY_FILE.parent))
    result = subprocess.run([haproxy, "-c", "-f", "/dev/stdin"], input=with_local_paths, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# ---- PgBouncer between the services and PostgreSQL

def pgbouncer_config() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(inline_comment_prefixes=None, comment_prefixes=(";", "#"))
    parser.read_string(PGBOUNCER_FILE.read_text(encoding="utf-8"))
    return parser


PGBOUNCER = pgbouncer_config()


def test_pgbouncer_runs_its_configuration_from_the_repository_and_the_password_from_the_environment():
    config_path = container_path("/etc/pgbouncer/pgbouncer.ini", "pgbouncer")
    assert config_path.resolve() == PGBOUNCER_FILE
    sh, flag, script = SERVICES["pgbouncer"]["entrypoint"]
    assert (sh, flag) == ("/bin/sh", "-c")
    assert script.endswith("exec pgbouncer /etc/pgbouncer/pgbouncer.ini")
    auth_file = PGBOUNCER["pgbouncer"]["auth_file"]
    assert f"> {auth_file}" in script and "umask 077" in script, "the auth file is readable by its owner only"
    assert "$POSTGRES_PASSWORD" in script and "${POSTGRES_PASSWORD" not in script, "read at run time, not rendered"
    assert SERVICES["pgbouncer"]["environment"]["POSTGRES_PASSWORD"] == TEST_SECRETS["POSTGRES_PASSWORD"]
    assert PGBOUNCER["pgbouncer"]["auth_type"] == "scram-sha-256"
    assert SERVICES["pgbouncer"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert healthcheck_test("pgbouncer")[-4:] == ["-h", "127.0.0.1", "-p", PGBOUNCER["pgbouncer"]["listen_port"]]


def test_the_services_pools_go_through_pgbouncer_in_transaction_mode_and_sessions_go_direct():
    environment = SERVICES["clients"]["environment"]
    pooled, direct = urlparse(environment["CRM_DATABASE_URL"]), urlparse(environment["CRM_DATABASE_DIRECT_URL"])
    assert (pooled.hostname, str(pooled.port)) == ("pgbouncer", PGBOUNCER["pgbouncer"]["listen_port"])
    assert PGBOUNCER["pgbouncer"]["pool_mode"] == "transaction"
    target = dict(part.split("=") for part in PGBOUNCER["databases"]["*"].split())
    assert (target["host"], int(target["port"])) == ("postgres", 5432) == (direct.hostname, direct.port)
    # migrations hold a session advisory lock and the gateway LISTENs: both need a server session of their own
    from crm_common import migrate

    assert "direct_database_url_for" in importlib.import_module("gateway.auth").Auth.start.__code__.co_names
    assert "direct_database_url_for" in migrate.migrate.__code__.co_names


def test_postgresql_has_room_for_pgbouncer_the_gateways_listeners_and_starting_migrations():
    """The arithmetic of docs/operations.md: however many replicas run, PostgreSQL sees a fixed number."""
    bouncer = PGBOUNCER["pgbouncer"]
    per_database = int(bouncer["max_db_connections"])
    assert int(bouncer["default_pool_size"]) + int(bouncer["reserve_pool_size"]) <= per_database
    command = SERVICES["postgres"]["command"]
    max_connections = int(next(arg.split("=")[1] for arg in command if arg.startswith("max_connections=")))
    containers = sum(SERVICES[name]["deploy"]["replicas"] for name in CRM_SERVICES)
    future_databases = 7  # clients, deals, tasks, webhooks, gateway; reports and backup to come
    needed = (max(len(CRM_SERVICES), future_databases) * per_database  # PgBouncer's server connections
              + SERVICES["gateway"]["deploy"]["replicas"]            # the gateways' LISTEN connections
              + containers                                           # migrations of containers starting together
              + 3)                                                   # superuser_reserved_connections
    assert needed <= max_connections, f"{needed} connections needed, max_connections is {max_connections}"
    # every process's two pools (CRM_DB_POOL_SIZE 12 and a third more each) fit PgBouncer's clients
    from crm_common.db import connections_per_process

    assert connections_per_process(12) == 2 * 16
    assert containers * connections_per_process(12) <= int(bouncer["max_client_conn"])


def test_every_gateway_replica_and_the_backup_service_share_one_recordings_folder():
    folder = COMPOSE["x-crm-environment"]["CRM_RECORDINGS_DIR"]
    for service in ("gateway", "backup"):
        mounts = {v.split(":")[1]: v.split(":")[0] for v in SERVICES[service]["volumes"]}
        assert mounts.get(folder) in COMPOSE["volumes"], f"{service} does not mount a named volume at {folder}"
    assert len({dict((v.split(":")[1], v.split(":")[0]) for v in SERVICES[s]["volumes"])[folder]
                for s in ("gateway", "backup")}) == 1


def test_the_gateways_keep_their_audit_journal_on_one_shared_volume():
    """Entries answered but not yet committed survive a container being recreated, and a live gateway replays a
    dead one's (gateway/auditjournal.py); the journal is under the data folder, /app/var in the image."""
    mounts = {v.split(":")[1]: v.split(":")[0] for v in SERVICES["gateway"]["volumes"]}
    assert mounts.get("/app/var/audit-journal") in COMPOSE["volumes"]
