"""Alembic environment of the tasks service (its own history, its own database)."""

from crm_common.migrate import run_env
from tasks.models import Base

run_env(Base.metadata, "tasks")
