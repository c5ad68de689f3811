"""One typed settings object, read once at start from the nameko config.

The nameko config comes from ``config.yml`` where ``${VAR:default}`` is replaced by the
environment (nameko's own YAML loader). Everything the CRM adds lives under the ``CRM`` key,
so ``Settings.from_config(self.container.config)`` is the only way code reads configuration.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import secrets
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml
from nameko.extensions import DependencyProvider
from sqlalchemy.engine import make_url

from crm_common.registry import REPO_ROOT, backend_names

# The key earlier versions signed tokens with when CRM_SECRET_KEY was unset. It is published in this
# repository, so anyone could sign a token with it: refused everywhere (signing_key() generates one instead).
DEV_SECRET_KEY = "dev-secret-change-me-0123456789abcdef"
SECRET_KEY_FILE = "secret_key"
WEBHOOK_KEY_FILE = "webhook_key"
MIN_SECRET_KEY_LENGTH = 32
DEV_ADMIN_EMAIL = "admin@crm.local"
DEV_ADMIN_PASSWORD = "admin12345"
CORS_ORIGIN = re.compile(r"https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?")
DEFAULT_AMQP_URI = "amqp://guest:guest@127.0.0.1:5672/crm"
DEFAULT_CONFIG_PATH = REPO_ROOT / "config.yml"
TRUE_WORDS = ("1", "true", "yes", "on")

log = logging.getLogger(__name__)


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
    # the same server without a connection pooler in between: migrations (session advisory lock) and the
    # gateway's LISTEN connection need a server session of their own; empty: database_url
    database_direct_url: str | None = None
    database_prefix: str = "crm_"
    data_dir: str = "./var"
    db_pool_size: int = 12
    default_region: str = "RU"
    rpc_timeout_s: float = 5.0
    # empty: development generates a key under data_dir on first start (signing_key); production refuses
    secret_key: str = ""
    token_ttl_s: int = 8 * 3600
    admin_email: str = DEV_ADMIN_EMAIL
    admin_password: str = DEV_ADMIN_PASSWORD
    admin_name: str = "Administrator"
    # the services behind the gateway that run, are migrated and are health-checked (crm_common.registry)
    services: tuple[str, ...] = field(default_factory=lambda: backend_names(only_default=True))
    outbox_poll_s: float = 1.0
    stuck_check_interval_s: float = 60.0
    # the tasks service: deadlines, penalties, complaints
    task_check_interval_s: float = 60.0
    default_penalty: str = "500.00"
    default_currency: str = "RUB"
    complaint_sla_hours: float = 24.0
    stuck_task_hours: float = 24.0
    rate_limit_per_minute: int = 1200
    rate_limit_admin_per_minute: int = 6000
    login_max_failures: int = 5
    login_max_failures_per_address: int = 20
    login_lockout_s: int = 300
    # proxies (addresses or networks) whose X-Forwarded-For names the client; nobody else's is believed
    trusted_proxies: tuple[str, ...] = ()
    # web origins (scheme://host[:port]) whose pages may call the API from a browser (gateway/cors.py)
    cors_origins: tuple[str, ...] = ()
    # several gateway processes of one machine share the HTTP port (SO_REUSEPORT); off, the port is exclusive
    http_reuse_port: bool = False
    max_body_bytes: int = 1024 * 1024
    # for measurements only (make bench): off runs writes without the command log, so a redelivered or
    # retried write may run twice; refused in production
    command_log: bool = True
    # the audit log and the bulk-read window (gateway/audit.py); off only for measurements: refused in production
    audit: bool = True
    read_alert_per_hour: int = 200  # distinct clients a user reads in an hour before heads and admins are told; 0: off
    read_cap_per_hour: int = 500  # distinct clients a user may read in an hour; then 429 read_cap; 0: off
    import_max_mb: int = 50
    import_poll_s: float = 2.0
    import_lease_s: float = 30.0
    # offboarding sagas (gateway/offboarding.py): records per step call, how often running sagas are resumed,
    # how long a gateway holds one it is running
    offboard_batch: int = 1000
    offboard_poll_s: float = 5.0
    offboard_lease_s: float = 60.0
    # outgoing webhooks (the webhooks service)
    webhook_allow_private: bool = False  # deliver to private, loopback and link-local addresses too
    webhook_key: str = ""  # encrypts webhook secrets at rest; empty: development generates one under data_dir
    webhook_old_keys: tuple[str, ...] = ()  # earlier keys, still read until `reseal_secrets()` has run
    webhook_retry_base_s: float = 10.0  # the first retry's delay; each next one doubles (with jitter), up to an hour
    webhook_retry_for_s: float = 24 * 3600.0  # how long a delivery is retried before the webhook is marked failing
    webhook_timeout_s: float = 10.0  # a receiver's whole answer, connection included
    webhook_workers: int = 20  # deliveries in flight at once per process (at most one per webhook)
    webhook_poll_s: float = 1.0  # how often a process looks for due deliveries when nothing woke it
    webhook_keep_days: int = 30  # finished deliveries are kept this long
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
    # client exports (gateway/exports.py, docs/operations.md "Client exports")
    export_daily_rows: int = 1000  # clients a user may export per UTC day
    export_ttl_s: float = 24 * 3600.0  # a file is deleted this long after it was made
    export_poll_s: float = 5.0  # how often a gateway looks for exports to make when nothing woke it
    export_lease_s: float = 300.0  # a replica making an export holds it this long (renewed per page)
    export_marker_domain: str = "example.net"  # the domain of the marker rows' emails: best one the company owns
    # telephony and call recordings (docs/integrations.md)
    callback_sla_minutes: float = 15.0
    recording_max_mb: float = 100.0
    recording_keep_days: float = 365.0  # 0: kept for ever
    recording_sweep_interval_s: float = 3600.0
    recordings_dir: str = ""  # empty: <data_dir>/recordings
    recording_s3_endpoint: str = ""  # host[:port] of an S3-compatible store; empty: the recordings folder
    recording_s3_bucket: str = ""
    recording_s3_access_key: str = ""
    recording_s3_secret_key: str = ""
    recording_s3_region: str = ""
    recording_s3_secure: bool = True
    recording_s3_prefix: str = "recordings/"

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> Settings:
        config = config or {}
        crm = dict(config.get("CRM") or {})
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in crm or crm[f.name] in (None, ""):
                continue
            raw = crm[f.name]
            if f.name in ("services", "trusted_proxies", "webhook_old_keys", "cors_origins"):
                raw = tuple(s.strip() for s in str(raw).split(",") if s.strip())
            elif f.name == "service_database_urls":
                raw = {k: v for k, v in dict(raw).items() if v}
            elif f.type in ("int",):
                raw = int(raw)
            elif f.type in ("float",):
                raw = float(raw)
            elif f.type in ("bool",):
                raw = str(raw).strip().lower() in TRUE_WORDS
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
        """Refuse unknown services, unreadable proxy lists, the published key, and production with
        development secrets."""
        unknown = sorted(set(self.services) - set(backend_names()))
        if unknown:
            raise ConfigError(
                f"CRM_SERVICES names unknown services: {', '.join(unknown)} (known: {', '.join(backend_names())})"
            )
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ConfigError(
                    f"CRM_TRUSTED_PROXIES: {proxy!r} is not an IP address or network (e.g. 10.0.0.5, 172.30.89.0/24)"
                ) from None
        for origin in self.cors_origins:
            if not CORS_ORIGIN.fullmatch(origin):
                raise ConfigError(f"CRM_CORS_ORIGINS: {origin!r} is not a web origin (scheme://host[:port], e.g. "
                                  "https://www.example.ru, with no path and no trailing slash)")
        if self.secret_key == DEV_SECRET_KEY:
            raise ConfigError(
                "CRM_SECRET_KEY is the development key published in this repository: anyone could sign tokens "
                "with it. Unset it (a key is then generated under CRM_DATA_DIR) or set a random one"
            )
        self._check_penalty()
        self._check_webhooks()
        if not self.is_production:
            return
        problems = []
        if len(self.secret_key) < MIN_SECRET_KEY_LENGTH:
            problems.append(f"CRM_SECRET_KEY must be set to a random string of {MIN_SECRET_KEY_LENGTH}+ characters")
        if self.admin_password == DEV_ADMIN_PASSWORD:
            problems.append("CRM_ADMIN_PASSWORD must not be the development default")
        if "backup" in self.services and not self.backup_key.strip():
            problems.append("CRM_BACKUP_KEY must be set (archives are encrypted with it; `crm-backup keygen` makes one)")
        if not self.command_log:
            problems.append("CRM_COMMAND_LOG=off is for measurements only: writes could run twice")
        if not self.audit:
            problems.append("CRM_AUDIT=off is for measurements only: reads of clients would go unrecorded")
        if problems:
            raise ConfigError("refusing to start in production: " + "; ".join(problems))

    def _check_penalty(self) -> None:
        if not re.fullmatch(r"[0-9]{1,12}(\.[0-9]{1,2})?", self.default_penalty.strip()):
            raise ConfigError(f"CRM_DEFAULT_PENALTY must be an amount like 500.00, not {self.default_penalty!r}")
        if not re.fullmatch(r"[A-Z]{3}", self.default_currency):
            raise ConfigError(f"CRM_DEFAULT_CURRENCY must be an ISO 4217 code like RUB, not {self.default_currency!r}")
        for name in ("task_check_interval_s", "complaint_sla_hours", "stuck_task_hours", "callback_sla_minutes",
                     "recording_max_mb", "recording_sweep_interval_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"CRM_{name.upper()} must be a positive number")
        for name in ("export_ttl_s", "export_poll_s", "export_lease_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"CRM_{name.upper()} must be a positive number")
        if self.export_daily_rows < 0:
            raise ConfigError("CRM_EXPORT_DAILY_ROWS must be 0 (no exports) or a positive number of rows")
        if not re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+", self.export_marker_domain):
            raise ConfigError(f"CRM_EXPORT_MARKER_DOMAIN must be a domain name, not {self.export_marker_domain!r}")
        if self.recording_keep_days < 0:
            raise ConfigError("CRM_RECORDING_KEEP_DAYS must be 0 (keep for ever) or a positive number of days")
        if bool(self.recording_s3_endpoint) != bool(self.recording_s3_bucket):
            raise ConfigError("CRM_RECORDING_S3_ENDPOINT and CRM_RECORDING_S3_BUCKET go together (or neither: a folder)")

    def _check_webhooks(self) -> None:
        for name in ("webhook_retry_base_s", "webhook_retry_for_s", "webhook_timeout_s", "webhook_poll_s",
                     "webhook_workers", "webhook_keep_days"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"CRM_{name.upper()} must be a positive number")
        for key in (self.webhook_key, *self.webhook_old_keys):
            if key and len(key) < MIN_SECRET_KEY_LENGTH:
                raise ConfigError(f"CRM_WEBHOOK_KEY and CRM_WEBHOOK_OLD_KEYS need {MIN_SECRET_KEY_LENGTH}+ characters each")

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

    def direct_database_url_for(self, service: str) -> str:
        """The service's database reached without a pooler: for migrations and LISTEN (see database_direct_url)."""
        if not self.database_direct_url or service in self.service_database_urls or not self.database_url:
            return self.database_url_for(service)
        return Settings(database_url=self.database_direct_url, database_prefix=self.database_prefix).database_url_for(
            service
        )

    @property
    def recordings_path(self) -> Path:
        """The folder of call recordings (when no S3 bucket is configured): what a backup must copy too."""
        return Path(self.recordings_dir or Path(self.data_dir) / "recordings").expanduser().resolve()

    @property
    def secret_key_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve() / SECRET_KEY_FILE

    @property
    def webhook_key_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve() / WEBHOOK_KEY_FILE


_keys: dict[Path, str] = {}
_keys_lock = threading.Lock()


def signing_key(settings: Settings) -> str:
    """The key that signs access tokens: CRM_SECRET_KEY, else the one kept in ``<CRM_DATA_DIR>/secret_key``.

    The file is made on first use with a random key, readable by its owner only (mode 600). Processes
    starting at the same moment agree on one key: each writes its candidate to a private temporary
    file and hard-links it to the final name, which succeeds for exactly one of them; the others read
    the winner's. So the file is never seen half written.
    """
    if settings.secret_key:
        return settings.secret_key
    return generated_key(settings.secret_key_path)


def generated_key(path: Path, purpose: str = "signing key", setting: str = "CRM_SECRET_KEY") -> str:
    """The random key kept in ``path``, made on first use as ``signing_key`` describes (mode 600, one winner);
    ``purpose`` and ``setting`` name it in messages (the webhooks service keeps its encryption key this way)."""
    with _keys_lock:
        if path not in _keys:
            _keys[path] = _read_or_create_key(path, purpose, setting)
        return _keys[path]


def _read_or_create_key(path: Path, purpose: str = "signing key", setting: str = "CRM_SECRET_KEY") -> str:
    try:
        return _read_key(path, purpose, setting)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ConfigError(f"cannot read the {purpose} in {path} ({exc}): fix it or set {setting}") from None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, candidate = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 600
        try:
            with os.fdopen(fd, "w", encoding="ascii") as stream:
                stream.write(secrets.token_urlsafe(48) + "\n")
                stream.flush()
                os.fsync(stream.fileno())
            try:
                os.link(candidate, path)
                log.warning("generated a %s in %s (set %s to choose one)", purpose, path, setting)
            except FileExistsError:
                pass  # another process got there first: its key is the one
        finally:
            os.unlink(candidate)
    except OSError as exc:
        raise ConfigError(f"cannot keep a {purpose} in {path} ({exc}): set {setting}") from None
    return _read_key(path, purpose, setting)


def _read_key(path: Path, purpose: str = "signing key", setting: str = "CRM_SECRET_KEY") -> str:
    if path.stat().st_mode & 0o077:
        # a copied or restored file may have lost its mode: the key must stay the owner's secret
        os.chmod(path, 0o600)
        log.warning("%s was readable by others; its mode is now 600", path)
    key = path.read_text(encoding="ascii", errors="replace").strip()
    if len(key) < MIN_SECRET_KEY_LENGTH:
        raise ConfigError(
            f"{path} holds no usable {purpose} (under {MIN_SECRET_KEY_LENGTH} characters): delete it to have a "
            f"new one generated ({'every session ends' if setting == 'CRM_SECRET_KEY' else 'see docs/operations.md'}) "
            f"or set {setting}"
        )
    return key


class SettingsProvider(DependencyProvider):
    """``settings = SettingsProvider()`` gives workers the service's ``Settings``, parsed once at setup."""

    def setup(self):
        self.settings = Settings.from_config(self.container.config)

    def get_dependency(self, worker_ctx):
        return self.settings
