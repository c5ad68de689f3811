"""offboardings: the saga handing a leaving user's clients, open deals and open tasks to another user

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 00:30:00.000000
"""

from alembic import op
import sqlalchemy as sa

import crm_common.columns


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('offboardings',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('to_user_id', sa.String(length=36), nullable=False),
    sa.Column('branch_id', sa.String(length=36), nullable=True),
    sa.Column('requested_by', sa.String(length=36), nullable=True),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('step', sa.String(length=8), nullable=True),
    sa.Column('clients', sa.Integer(), nullable=False),
    sa.Column('deals', sa.Integer(), nullable=False),
    sa.Column('tasks', sa.Integer(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.String(length=1000), nullable=True),
    sa.Column('lease_owner', sa.String(length=100), nullable=True),
    sa.Column('lease_until', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.Column('started_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_offboardings_started', 'offboardings', ['started_at', 'id'], unique=False)
    op.create_index('ix_offboardings_user', 'offboardings', ['user_id', 'started_at'], unique=False)
    op.create_index('uq_offboardings_running_user', 'offboardings', ['user_id'], unique=True,
                    postgresql_where=sa.text("status = 'running'"), sqlite_where=sa.text("status = 'running'"))


def downgrade() -> None:
    op.drop_table('offboardings')
