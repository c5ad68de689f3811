"""Create and upgrade each service's database with its own alembic history, and declare the event queues.

    python -m crm_common.migrate            # every service of the registry and the gateway
    python -m crm_common.migrate clients    # some of them

Either way it then declares every registered service's event queues (``crm_common.queues``), so events
published before a consumer first starts wait for it instead of being dropped.

Each service keeps ``migrations/`` next to its package; its ``env.py`` calls ``run_env``.
On PostgreSQL an advisory lock makes replicas that start together migrate one after another.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import zlib
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, pool, text

from crm_common import registry
from crm_common.config import Settings, load_config
from crm_common.db import ensure_database

log = logging.getLogger("crm.migrate")


def migrations_dir(service: str) -> Path:
    """``migrations/`` in the service's folder, next to its package."""
    if service in registry.BY_NAME:
        return registry.spec(service).path / "migrations"
    package = importlib.import_module(service)
    return Path(package.__file__).resolve().parent.parent / "migrations"


def alembic_config(service: str, url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir(service)))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["service"] = service
    return cfg


def migrate(service: str, config: dict | None = None, revision: str = "head") -> str:
    settings = Settings.from_config(config if config is not None else load_config())
    # the advisory lock below is held by a server session: never through a transaction-pooling PgBouncer
    url = settings.direct_database_url_for(service)
    created = ensure_database(url)
    command.upgrade(alembic_config(service, url), revision)
    return "created and migrated" if created else "migrated"


def run_env(metadata, service: str) -> None:
    """Body of every service's ``migrations/env.py``.

    The URL is the one ``migrate()`` set, or, when a developer runs ``alembic -c <service>/alembic.ini``,
    the service's database from config.yml and the environment (CRM_DATABASE_URL, CRM_DATA_DIR).
    """
    from alembic import context

    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        url = Settings.from_config(load_config()).direct_database_url_for(service)
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url, poolclass=pool.NullPool)
    is_postgres = engine.dialect.name == "postgresql"
    lock_key = zlib.crc32(str(engine.url.database).encode())
    with engine.connect() as connection:
        if is_postgres:
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_key})
            connection.commit()
        try:
            context.configure(
                connection=connection,
                target_metadata=metadata,
                render_as_batch=engine.dialect.name == "sqlite",
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            if is_postgres:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key})
                connection.commit()
    engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("services", nargs="*", help="services to migrate, e.g. clients gateway (default: all)")
    parser.add_argument("--config", help="nameko config file (default: config.yml or $CRM_CONFIG)")
    parser.add_argument("--revision", default="head")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = load_config(args.config)
    for service in args.services or [spec.name for spec in registry.REGISTRY]:
        outcome = migrate(service, config, args.revision)
        log.info("%s: database %s", service, outcome)
    from crm_common.queues import declare_consumer_queues
    from crm_common.vhost import VhostError, ensure_vhost

    try:
        log.info("message bus: %s", ensure_vhost(config["AMQP_URI"]))  # make run's vhost, created if we may
    except VhostError as exc:
        log.warning("%s", exc)
    log.info("event queues declared: %d", declare_consumer_queues(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
