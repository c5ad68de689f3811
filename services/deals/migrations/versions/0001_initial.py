"""initial

Revision ID: 0001
Revises: 
Create Date: 2026-11-27 02:49:51.892991
"""

from alembic import op
import sqlalchemy as sa

import crm_common.columns


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('outbox',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('created_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('published_at', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_id')
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_published_at'), ['published_at'], unique=False)

    op.create_table('pipelines',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('branch_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('created_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('pipelines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pipelines_branch_id'), ['branch_id'], unique=False)

    op.create_table('processed_events',
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('handled_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('event_id')
    )
    op.create_table('scripts',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('branch_id', sa.String(length=36), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('stage_id', sa.String(length=36), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('scripts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_scripts_branch_id'), ['branch_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_scripts_stage_id'), ['stage_id'], unique=False)

    op.create_table('script_versions',
    sa.Column('script_id', sa.String(length=36), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('stage_id', sa.String(length=36), nullable=True),
    sa.Column('author_id', sa.String(length=36), nullable=True),
    sa.Column('created_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['script_id'], ['scripts.id'], ),
    sa.PrimaryKeyConstraint('script_id', 'version')
    )
    op.create_table('stages',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('pipeline_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('max_days', sa.Float(), nullable=True),
    sa.Column('script_id', sa.String(length=36), nullable=True),
    sa.Column('removed_at', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['pipeline_id'], ['pipelines.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('stages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stages_pipeline_id'), ['pipeline_id'], unique=False)

    op.create_table('deals',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('branch_id', sa.String(length=36), nullable=False),
    sa.Column('client_id', sa.String(length=36), nullable=False),
    sa.Column('pipeline_id', sa.String(length=36), nullable=False),
    sa.Column('stage_id', sa.String(length=36), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('owner_id', sa.String(length=36), nullable=True),
    sa.Column('stage_entered_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('stage_due_at', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.Column('stuck_raised_at', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.Column('lost_reason', sa.String(length=500), nullable=True),
    sa.Column('closed_at', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.Column('created_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['pipeline_id'], ['pipelines.id'], ),
    sa.ForeignKeyConstraint(['stage_id'], ['stages.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('deals', schema=None) as batch_op:
        batch_op.create_index('ix_deals_branch_created', ['branch_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_deals_client', ['client_id', 'status'], unique=False)
        batch_op.create_index('ix_deals_created', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_deals_due', ['stage_due_at'], unique=False, postgresql_where=sa.text("status = 'open' AND stuck_raised_at IS NULL"), sqlite_where=sa.text("status = 'open' AND stuck_raised_at IS NULL"))
        batch_op.create_index('ix_deals_owner_created', ['owner_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_deals_pipeline_created', ['pipeline_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_deals_stage_owner_created', ['stage_id', 'owner_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_deals_stuck', ['stage_due_at'], unique=False, postgresql_where=sa.text("status = 'open'"), sqlite_where=sa.text("status = 'open'"))

    op.create_table('stage_history',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('deal_id', sa.String(length=36), nullable=False),
    sa.Column('pipeline_id', sa.String(length=36), nullable=False),
    sa.Column('stage_id', sa.String(length=36), nullable=False),
    sa.Column('stage_name', sa.String(length=100), nullable=False),
    sa.Column('stage_kind', sa.String(length=8), nullable=False),
    sa.Column('from_stage_id', sa.String(length=36), nullable=True),
    sa.Column('entered_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('exited_at', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.Column('time_spent_s', sa.Float(), nullable=True),
    sa.Column('moved_by', sa.String(length=36), nullable=True),
    sa.Column('lost_reason', sa.String(length=500), nullable=True),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['deal_id'], ['deals.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('stage_history', schema=None) as batch_op:
        batch_op.create_index('ix_stage_history_deal', ['deal_id', 'seq'], unique=False)
        batch_op.create_index('ix_stage_history_stage', ['stage_id', 'entered_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('stage_history', schema=None) as batch_op:
        batch_op.drop_index('ix_stage_history_stage')
        batch_op.drop_index('ix_stage_history_deal')

    op.drop_table('stage_history')
    with op.batch_alter_table('deals', schema=None) as batch_op:
        batch_op.drop_index('ix_deals_stuck', postgresql_where=sa.text("status = 'open'"), sqlite_where=sa.text("status = 'open'"))
        batch_op.drop_index('ix_deals_stage_owner_created')
        batch_op.drop_index('ix_deals_pipeline_created')
        batch_op.drop_index('ix_deals_owner_created')
        batch_op.drop_index('ix_deals_due', postgresql_where=sa.text("status = 'open' AND stuck_raised_at IS NULL"), sqlite_where=sa.text("status = 'open' AND stuck_raised_at IS NULL"))
        batch_op.drop_index('ix_deals_created')
        batch_op.drop_index('ix_deals_client')
        batch_op.drop_index('ix_deals_branch_created')

    op.drop_table('deals')
    with op.batch_alter_table('stages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stages_pipeline_id'))

    op.drop_table('stages')
    op.drop_table('script_versions')
    with op.batch_alter_table('scripts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_scripts_stage_id'))
        batch_op.drop_index(batch_op.f('ix_scripts_branch_id'))

    op.drop_table('scripts')
    op.drop_table('processed_events')
    with op.batch_alter_table('pipelines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pipelines_branch_id'))

    op.drop_table('pipelines')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_published_at'))

    op.drop_table('outbox')
