"""owner transfers: the clients step of each offboarding, and clients found by owner alone

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 00:20:00.000000
"""

from alembic import op

from crm_common.transfers import create_owner_transfer_table


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_owner_transfer_table(op)
    op.create_index('ix_clients_owner', 'clients', ['owner_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_clients_owner', table_name='clients')
    op.drop_table('owner_transfers')
