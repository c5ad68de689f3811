"""Alembic environment of the deals service (its own history, its own database)."""

from crm_common.migrate import run_env
from deals.models import Base

run_env(Base.metadata, "deals")
