"""Alembic environment of the clients service (its own history, its own database)."""

from crm_common.migrate import run_env

from clients.models import Base

run_env(Base.metadata)
