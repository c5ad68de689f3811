"""docker-compose.yml, the Dockerfile and the postgres init script agree with the code in this repository,
and with the one list of services, crm_common/registry.py.

No Docker is needed: the compose file is read with PyYAML and its ``${VAR}`` interpolation is applied
here the way compose applies it. When ``docker compose`` is installed it also validates the file.
"""

from __future__ import annotations

import importlib
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
ENV_EXAMPLE = ROOT / ".env.example"
CRM_SERVICES = tuple(spec.name for spec in REGISTRY)
NAMEKO_SERVICES = backend_names()
REQUIRED_SECRETS = ("CRM_SECRET_KEY", "CRM_ADMIN_PASSWORD", "CRM_BACKUP_KEY", "POSTGRES_PASSWORD", "RABBITMQ_PASSWORD")
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
    match = re.search(r"exec nameko run --config (\S+) ([\w.]+):(\w+)$", script_of(service))
    assert match, f"{service} should end its command with `exec nameko run --config <file> <module>:<class>`"
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
    for infrastructure in ("rabbitmq", "postgres"):
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
    infrastructure = {"rabbitmq", "postgres"}
    assert set(SERVICES) - infrastructure == set(CRM_SERVICES)


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


def test_the_gateway_publishes_port_8000_and_checks_its_health_endpoint():
    assert gateway().name == "gateway"
    published = []
    for port in SERVICES["gateway"]["ports"]:
        published.append(str(port["target"]) if isinstance(port, dict) else str(port).rsplit(":", 1)[-1])
    assert "8000" in published
    assert "http://127.0.0.1:8000/health" in " ".join(healthcheck_test("gateway"))
    # a second gateway could not publish the same host port
    assert SERVICES["gateway"].get("deploy", {}).get("replicas", 1) == 1


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
    environment = SERVICES["gateway"]["environment"]
    assert {name: SERVICES[name]["environment"] for name in NAMEKO_SERVICES} == {
        name: {**environment, "CRM_SERVICE_NAME": name} for name in NAMEKO_SERVICES
    }
    for name in [n for n in os.environ if n.startswith("CRM_") or n == "AMQP_URI"]:
        monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, str(value))
    settings = Settings.from_config(load_config())
    assert settings.is_production
    assert urlparse(settings.amqp_uri).hostname == "rabbitmq"
    assert settings.secret_key == TEST_SECRETS["CRM_SECRET_KEY"]
    assert settings.admin_password == TEST_SECRETS["CRM_ADMIN_PASSWORD"]
    assert set(settings.services) == set(backend_names(only_default=True))
    clients_db = urlparse(settings.database_url_for("clients"))
    assert (clients_db.hostname, clients_db.path) == ("postgres", "/crm_clients")


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
