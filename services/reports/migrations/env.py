"""Alembic environment of the reports service (its own history, its own database)."""

from crm_common.migrate import run_env
from reports.models import Base

run_env(Base.metadata, "reports")
