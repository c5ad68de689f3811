"""One typed settings object, read once at start from the nameko config.

The nameko config comes from ``config.yml`` where ``${VAR:default}`` is replaced by the
environment (nameko's own YAML loader). Everything the CRM adds lives under the ``CRM`` key,
so ``Settings.from_config(self.container.config)`` is the only way code reads configuration.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml
from nameko.extensions import DependencyProvider
from sqlalchemy.engine import make_url

from crm_common.registry import REPO_ROOT, backend_names

DEV_SECRET_KEY = "dev-secret-change-me-0123456789abcdef"
DEV_ADMIN_EMAIL = "admin@crm.local"
DEV_ADMIN_PASSWORD = "admin12345"
DEFAULT_AMQP_URI = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_CONFIG_PATH = REPO_ROOT / "config.yml"


class ConfigError(RuntimeError):
    """The configuration cannot be used; the program must not start."""


def load_config(path: str | os.PathLike | None = None) -> dict:
    """Read a nameko config file, substituting ``${VAR:default}`` from the environment.

    Uses nameko's own loader so tests and tools see exactly what ``nameko run --config`` sees.
    """
    from nameko.cli.main import setup_yaml_parser

    setup_yaml_parser()
    config_path = Path(path or os.environ.get("CRM_CONFIG", DEFAULT_CONFIG_PATH))
    with open(config_path, encoding="utf-8") as stream:
        return yaml.safe_load(stream)


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    amqp_uri: str = DEFAULT_AMQP_URI
    database_url: str | None = None
    database_prefix: str = "crm_"
    data_dir: str = "./var"
    db_pool_size: int = 12
    default_region: str = "RU"
    rpc_timeout_s: float = 5.0
    secret_key: str = DEV_SECRET_KEY
    token_ttl_s: int = 8 * 3600
    admin_email: str = DEV_ADMIN_EMAIL
    admin_password: str = DEV_ADMIN_PASSWORD
    admin_name: str = "Administrator"
    # the services behind the gateway that run, are migrated and are health-checked (crm_common.registry)
    services: tuple[str, ...] = field(default_factory=lambda: backend_names(only_default=True))
    outbox_poll_s: float = 1.0
    stuck_check_interval_s: float = 60.0
    rate_limit_per_minute: int = 1200
    login_max_failures: int = 5
    login_lockout_s: int = 300
    max_body_bytes: int = 1024 * 1024
    service_database_urls: dict[str, str] = field(default_factory=dict)
    # the backup service (services/backup, docs/operations.md "Backups and restore")
    backup_dir: str = ""  # empty: <data_dir>/backups
    backup_key: str = ""  # empty: a development key in <data_dir>/backup.key; production refuses to start
    backup_old_keys: str = ""
    backup_offsite: str = ""
    backup_schedule: str = "0 3 * * *"
    backup_keep_last: int = 7
    backup_keep_daily: int = 7
    backup_keep_weekly: int = 4
    backup_keep_monthly: int = 6
    backup_check_interval_s: float = 30.0
    backup_replay_window_s: int = 3600
    backup_rclone_retries: int = 3
    backup_pg_bin: str = ""  # folder of pg_dump/pg_restore; empty: found on PATH

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> Settings:
        config = config or {}
        crm = dict(config.get("CRM") or {})
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in crm or crm[f.name] in (None, ""):
                continue
            raw = crm[f.name]
            if f.name == "services":
                raw = tuple(s.strip() for s in str(raw).split(",") if s.strip())
            elif f.name == "service_database_urls":
                raw = {k: v for k, v in dict(raw).items() if v}
            elif f.type in ("int",):
                raw = int(raw)
            elif f.type in ("float",):
                raw = float(raw)
            else:
                raw = str(raw) if not isinstance(raw, (dict, tuple)) else raw
            values[f.name] = raw
        if config.get("AMQP_URI"):
            values["amqp_uri"] = config["AMQP_URI"]
        settings = cls(**values)
        settings.check()
        return settings

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    def check(self) -> None:
        """Refuse unknown services, and production with development secrets."""
        unknown = sorted(set(self.services) - set(backend_names()))
        if unknown:
            raise ConfigError(
                f"CRM_SERVICES names unknown services: {', '.join(unknown)} (known: {', '.join(backend_names())})"
            )
        if not self.is_production:
            return
        problems = []
        if self.secret_key == DEV_SECRET_KEY or len(self.secret_key) < 32:
            problems.append("CRM_SECRET_KEY must be set to a random string of 32+ characters")
        if self.admin_password == DEV_ADMIN_PASSWORD:
            problems.append("CRM_ADMIN_PASSWORD must not be the development default")
        if "backup" in self.services and not self.backup_key.strip():
            problems.append("CRM_BACKUP_KEY must be set (archives are encrypted with it; `crm-backup keygen` makes one)")
        if problems:
            raise ConfigError("refusing to start in production: " + "; ".join(problems))

    def database_url_for(self, service: str) -> str:
        """The database of one service: its own file under data_dir, or its own PostgreSQL database."""
        if service in self.service_database_urls:
            return self.service_database_urls[service]
        if not self.database_url:
            data_dir = Path(self.data_dir).expanduser().resolve()
            return f"sqlite:///{data_dir / (service + '.db')}"
        url = make_url(self.database_url)
        if url.get_backend_name() != "postgresql":
            raise ConfigError(
                "CRM_DATABASE_URL must be a PostgreSQL server URL (each service gets its own database on it); "
                "leave it unset to keep one SQLite file per service under CRM_DATA_DIR"
            )
        url = url.set(drivername="postgresql+psycopg2", database=f"{self.database_prefix}{service}")
        return url.render_as_string(hide_password=False)


class SettingsProvider(DependencyProvider):
    """``settings = SettingsProvider()`` gives workers the service's ``Settings``, parsed once at setup."""

    def setup(self):
        self.settings = Settings.from_config(self.container.config)

    def get_dependency(self, worker_ctx):
        return self.settings
