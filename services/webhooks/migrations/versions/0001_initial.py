"""initial: webhooks, their deliveries and attempts

Revision ID: 0001
Revises: 
Create Date: 2026-11-30 22:20:46.078871
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

import crm_common.columns
from crm_common.bookkeeping import create_bookkeeping_tables, drop_bookkeeping_tables

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_bookkeeping_tables(op)
    op.create_table('webhooks',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('branch_id', sa.String(length=36), nullable=True),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('events', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('secret', sa.Text(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('failing_since', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.Column('failure_reason', sa.String(length=1000), nullable=True),
    sa.Column('created_by', sa.String(length=36), nullable=True),
    sa.Column('created_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.Column('lease_until', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.Column('lease_token', sa.String(length=36), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.create_index('ix_webhooks_created', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_webhooks_due', ['next_attempt_at'], unique=False, postgresql_where=sa.text('active AND failing_since IS NULL'), sqlite_where=sa.text('active AND failing_since IS NULL'))

    op.create_table('deliveries',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('webhook_id', sa.String(length=36), nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('occurred_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('attempt_count', sa.Integer(), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.Column('first_attempt_at', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.Column('delivered_at', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.Column('created_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['webhook_id'], ['webhooks.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('event_id', 'webhook_id', name='uq_deliveries_event_webhook'),
    sa.UniqueConstraint('id')
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_deliveries_finished', ['finished_at'], unique=False)
        batch_op.create_index('ix_deliveries_pending', ['webhook_id', 'seq'], unique=False, postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))
        batch_op.create_index('ix_deliveries_webhook', ['webhook_id', 'seq'], unique=False)

    op.create_table('delivery_attempts',
    sa.Column('delivery_seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('duration_ms', sa.Float(), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('error', sa.String(length=1000), nullable=True),
    sa.ForeignKeyConstraint(['delivery_seq'], ['deliveries.seq'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('delivery_seq', 'number')
    )


def downgrade() -> None:
    op.drop_table('delivery_attempts')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_webhook')
        batch_op.drop_index('ix_deliveries_pending', postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))
        batch_op.drop_index('ix_deliveries_finished')

    op.drop_table('deliveries')
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.drop_index('ix_webhooks_due', postgresql_where=sa.text('active AND failing_since IS NULL'), sqlite_where=sa.text('active AND failing_since IS NULL'))
        batch_op.drop_index('ix_webhooks_created')

    op.drop_table('webhooks')
    drop_bookkeeping_tables(op)
