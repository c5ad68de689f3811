"""owner transfers: the deals step of each offboarding

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 00:20:00.000000
"""

from alembic import op

from crm_common.transfers import create_owner_transfer_table


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_owner_transfer_table(op)


def downgrade() -> None:
    op.drop_table('owner_transfers')
