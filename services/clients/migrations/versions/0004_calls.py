"""calls: telephone calls kept as interactions, and each exchange event of a call once

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 23:00:00.000000
"""

from alembic import op
import sqlalchemy as sa

import crm_common.columns


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('calls',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('branch_id', sa.String(length=36), nullable=False),
    sa.Column('client_id', sa.String(length=36), nullable=False),
    sa.Column('external_id', sa.String(length=100), nullable=False),
    sa.Column('direction', sa.String(length=3), nullable=False),
    sa.Column('from_number', sa.String(length=40), nullable=False),
    sa.Column('to_number', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('started_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('answered_at', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.Column('ended_at', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.Column('duration_s', sa.Integer(), nullable=True),
    sa.Column('user_id', sa.String(length=36), nullable=True),
    sa.Column('route_user_id', sa.String(length=36), nullable=True),
    sa.Column('route_phone', sa.String(length=40), nullable=True),
    sa.Column('route_extension', sa.String(length=20), nullable=True),
    sa.Column('client_created', sa.Boolean(), nullable=False),
    sa.Column('created_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['id'], ['interactions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('branch_id', 'external_id', name='uq_calls_branch_external')
    )
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.create_index('ix_calls_external', ['external_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_calls_client_id'), ['client_id'], unique=False)
    op.create_table('call_events',
    sa.Column('call_id', sa.String(length=36), nullable=False),
    sa.Column('event', sa.String(length=16), nullable=False),
    sa.Column('at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('received_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('call_id', 'event')
    )


def downgrade() -> None:
    op.drop_table('call_events')
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_calls_client_id'))
        batch_op.drop_index('ix_calls_external')
    op.drop_table('calls')
