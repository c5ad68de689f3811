"""Alembic environment of the webhooks service (its own history, its own database)."""

from crm_common.migrate import run_env
from webhooks.models import Base

run_env(Base.metadata, "webhooks")
