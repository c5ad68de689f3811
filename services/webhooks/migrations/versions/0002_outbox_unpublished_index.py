"""the outbox's partial index on unpublished rows, for the relay's query (crm_common.bookkeeping)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 07:10:00.000000
"""

from alembic import op

from crm_common.bookkeeping import create_unpublished_index, drop_unpublished_index


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_unpublished_index(op)


def downgrade() -> None:
    drop_unpublished_index(op)
