"""Alembic environment of the webhooks service (its own history, its own database)."""

from webhooks.models import Base

from crm_common.migrate import run_env

run_env(Base.metadata, "webhooks")
