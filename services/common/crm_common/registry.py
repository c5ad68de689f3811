"""The one list of the CRM's processes. Everything that needs to know them reads it from here.

``make run`` (scripts/run.py) starts them, ``Settings.services`` defaults to the ones on by default,
``python -m crm_common.migrate`` migrates them all, the test fixtures create and drop their databases,
and the contract tests hold docker-compose.yml, the Makefile and the Dockerfile against this list.
Adding a service is its folder (``services/<name>/``: package, pyproject.toml, migrations/) and one
line below; docs/new-service.md has the steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class ServiceSpec:
    """One process: its nameko service name (also its database ``<prefix><name>`` and its events
    exchange ``<name>.events``), the nameko class to run and the folder that holds its package."""

    name: str
    entry: str
    folder: str
    on_by_default: bool = True
    replicas: int = 2  # copies in docker-compose.yml; `make run REPLICAS=N` sets its own
    http: bool = False  # serves the HTTP API (the gateway): behind HAProxy in compose, sharing the port under make run

    @property
    def package(self) -> str:
        return self.entry.split(".", 1)[0]

    @property
    def path(self) -> Path:
        return REPO_ROOT / self.folder


REGISTRY: tuple[ServiceSpec, ...] = (
    ServiceSpec("clients", "clients.service:ClientsService", "services/clients"),
    ServiceSpec("deals", "deals.service:DealsService", "services/deals"),
    ServiceSpec("tasks", "tasks.service:TasksService", "services/tasks"),
    ServiceSpec("reports", "reports.service:ReportsService", "services/reports"),
    # two replicas take turns: each scheduled tick is leased in the catalogue, so one backup runs per tick
    ServiceSpec("backup", "backup.service:BackupService", "services/backup"),
    ServiceSpec("webhooks", "webhooks.service:WebhooksService", "services/webhooks"),
    ServiceSpec("gateway", "gateway.service:GatewayService", "gateway", http=True),
)

BY_NAME: dict[str, ServiceSpec] = {spec.name: spec for spec in REGISTRY}


def spec(name: str) -> ServiceSpec:
    try:
        return BY_NAME[name]
    except KeyError:
        known = ", ".join(BY_NAME)
        raise KeyError(f"unknown service {name!r}; the registry has {known}") from None


def backend_names(only_default: bool = False) -> tuple[str, ...]:
    """The services behind the gateway (every one, or those on by default)."""
    return tuple(s.name for s in REGISTRY if not s.http and (s.on_by_default or not only_default))


def gateway() -> ServiceSpec:
    return next(s for s in REGISTRY if s.http)


def processes(services: tuple[str, ...]) -> list[ServiceSpec]:
    """What runs for a ``CRM_SERVICES`` list: those services, then the gateway, in registry order."""
    unknown = [name for name in services if name not in BY_NAME or BY_NAME[name].http]
    if unknown:
        raise KeyError(f"CRM_SERVICES names unknown services: {', '.join(unknown)}; known: {', '.join(backend_names())}")
    return [s for s in REGISTRY if s.name in services] + [gateway()]
