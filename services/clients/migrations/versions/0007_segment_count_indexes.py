"""narrow indexes for segment counts: the branch's active clients, by open deals and creation; interactions by time

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 03:20:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

ACTIVE = 'archived_at IS NULL AND merged_into IS NULL'


def upgrade() -> None:
    """decisions.md 74: counts read these with index-only scans instead of the clients' heap."""
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.create_index('ix_clients_active_branch', ['branch_id'], unique=False,
                              postgresql_where=sa.text(ACTIVE), sqlite_where=sa.text(ACTIVE))
        batch_op.create_index('ix_clients_active_open_created', ['branch_id', 'open_deals', 'created_at', 'id'],
                              unique=False, postgresql_where=sa.text(ACTIVE), sqlite_where=sa.text(ACTIVE))
    with op.batch_alter_table('interactions', schema=None) as batch_op:
        batch_op.create_index('ix_interactions_time_client', ['occurred_at', 'client_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('interactions', schema=None) as batch_op:
        batch_op.drop_index('ix_interactions_time_client')
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_index('ix_clients_active_open_created')
        batch_op.drop_index('ix_clients_active_branch')
