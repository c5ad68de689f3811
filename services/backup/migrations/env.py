"""Alembic environment of the backup service (its own history, its own catalogue database)."""

from backup.models import Base
from crm_common.migrate import run_env

run_env(Base.metadata, "backup")
