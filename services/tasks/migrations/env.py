"""Alembic environment of the tasks service (its own history, its own database)."""

from tasks.models import Base

from crm_common.migrate import run_env

run_env(Base.metadata, "tasks")
