"""The registry is the one list of processes: everything that runs or migrates them derives from it."""

import importlib

import pytest

from crm_common import registry
from crm_common.config import Settings
from crm_common.migrate import migrations_dir


@pytest.mark.parametrize("spec", registry.REGISTRY, ids=lambda s: s.name)
def test_every_registered_process_has_its_folder_package_and_migrations(spec):
    module, class_name = spec.entry.split(":")
    service_class = getattr(importlib.import_module(module), class_name)

    assert service_class.name == spec.name
    assert (spec.path / "pyproject.toml").is_file()
    assert (spec.path / spec.package / "__init__.py").is_file()
    assert migrations_dir(spec.name) == spec.path / "migrations"
    assert (migrations_dir(spec.name) / "env.py").is_file()


def test_exactly_one_process_serves_http_and_it_runs_last():
    assert [s.name for s in registry.REGISTRY if s.http] == ["gateway"]
    assert registry.processes(("deals",))[-1].http


def test_the_processes_of_a_service_list_are_those_services_then_the_gateway():
    names = [s.name for s in registry.processes(("deals", "clients"))]

    assert names == ["clients", "deals", "gateway"]


def test_a_service_list_naming_an_unknown_service_or_the_gateway_is_refused():
    with pytest.raises(KeyError, match="unknown services: gateway"):
        registry.processes(("clients", "gateway"))


def test_the_default_service_list_is_every_service_on_by_default():
    assert Settings().services == tuple(s.name for s in registry.REGISTRY if s.on_by_default and not s.http)


@pytest.mark.parametrize("spec", registry.REGISTRY, ids=lambda s: s.name)
def test_every_migration_history_has_one_head(spec):
    """Two branches that each add a revision after the same one leave two heads: `migrate` then fails."""
    from alembic.script import ScriptDirectory

    from crm_common.migrate import alembic_config

    heads = ScriptDirectory.from_config(alembic_config(spec.name, "sqlite://")).get_heads()

    assert len(heads) == 1, f"{spec.name} has several migration heads: {heads}"
