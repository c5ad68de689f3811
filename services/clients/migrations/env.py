"""Alembic environment of the clients service (its own history, its own database)."""

from clients.models import Base
from crm_common.migrate import run_env

run_env(Base.metadata, "clients")
