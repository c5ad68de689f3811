"""campaigns: their plan as the clients service's events describe it, touchpoints' campaign, per-campaign counters

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 00:50:00.000000
"""

from alembic import op
import sqlalchemy as sa

import crm_common.columns

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('r_campaigns',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('branch_id', sa.String(length=36), nullable=False),
    sa.Column('segment_id', sa.String(length=36), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('channel', sa.String(length=50), nullable=True),
    sa.Column('starts_on', sa.String(length=10), nullable=False),
    sa.Column('ends_on', sa.String(length=10), nullable=False),
    sa.Column('budget_minor', sa.BigInteger(), nullable=True),
    sa.Column('budget_currency', sa.String(length=3), nullable=True),
    sa.Column('audience', sa.Integer(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('r_campaigns', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_r_campaigns_branch_id'), ['branch_id'], unique=False)
    op.create_table('c_campaign_touch',
    sa.Column('branch_id', sa.String(length=36), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('campaign_id', sa.String(length=36), nullable=False),
    sa.Column('client_id', sa.String(length=36), nullable=False),
    sa.Column('touchpoints', sa.BigInteger(), nullable=False),
    sa.Column('new_clients', sa.BigInteger(), nullable=False),
    sa.Column('first_touch_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('branch_id', 'month', 'campaign_id', 'client_id')
    )
    with op.batch_alter_table('c_campaign_touch', schema=None) as batch_op:
        batch_op.create_index('ix_c_campaign_touch_campaign', ['campaign_id', 'month'], unique=False)
    # touchpoints recorded before campaigns existed named none: null and false are what they are
    with op.batch_alter_table('r_touchpoints', schema=None) as batch_op:
        batch_op.add_column(sa.Column('campaign_id', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('created_client', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('r_touchpoints', schema=None) as batch_op:
        batch_op.drop_column('created_client')
        batch_op.drop_column('campaign_id')
    op.drop_table('c_campaign_touch')
    op.drop_table('r_campaigns')
