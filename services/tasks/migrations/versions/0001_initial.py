"""initial

Revision ID: 0001
Revises: 
Create Date: 2026-11-30 20:48:32.815235
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
    op.create_table('complaints',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('branch_id', sa.String(length=36), nullable=False),
    sa.Column('client_id', sa.String(length=36), nullable=False),
    sa.Column('deal_id', sa.String(length=36), nullable=True),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('channel', sa.String(length=50), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('author_id', sa.String(length=36), nullable=True),
    sa.Column('owner_id', sa.String(length=36), nullable=True),
    sa.Column('task_id', sa.String(length=36), nullable=True),
    sa.Column('due_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('resolution', sa.Text(), nullable=True),
    sa.Column('resolved_at', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.Column('created_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('complaints', schema=None) as batch_op:
        batch_op.create_index('ix_complaints_branch_created', ['branch_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_complaints_client', ['client_id', 'created_at'], unique=False)
        batch_op.create_index('ix_complaints_owner_created', ['owner_id', 'created_at', 'id'], unique=False)

    op.create_table('notifications',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('branch_id', sa.String(length=36), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('text', sa.String(length=1000), nullable=False),
    sa.Column('ref_type', sa.String(length=32), nullable=True),
    sa.Column('ref_id', sa.String(length=36), nullable=True),
    sa.Column('source_key', sa.String(length=120), nullable=False),
    sa.Column('created_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('read_at', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('source_key', 'user_id', name='uq_notifications_source_user')
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index('ix_notifications_unread', ['user_id', 'created_at', 'id'], unique=False, postgresql_where=sa.text('read_at IS NULL'), sqlite_where=sa.text('read_at IS NULL'))
        batch_op.create_index('ix_notifications_user_created', ['user_id', 'created_at', 'id'], unique=False)

    op.create_table('task_templates',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('branch_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('process', sa.String(length=200), nullable=False),
    sa.Column('instruction', sa.Text(), nullable=False),
    sa.Column('checklist', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('due_in_hours', sa.Float(), nullable=False),
    sa.Column('penalty_minor', sa.BigInteger(), nullable=True),
    sa.Column('penalty_currency', sa.String(length=3), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('task_templates', schema=None) as batch_op:
        batch_op.create_index('ix_task_templates_branch', ['branch_id', 'updated_at', 'id'], unique=False)

    op.create_table('tasks',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('branch_id', sa.String(length=36), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('assignee_id', sa.String(length=36), nullable=False),
    sa.Column('author_id', sa.String(length=36), nullable=True),
    sa.Column('client_id', sa.String(length=36), nullable=True),
    sa.Column('deal_id', sa.String(length=36), nullable=True),
    sa.Column('template_id', sa.String(length=36), nullable=True),
    sa.Column('template_version', sa.Integer(), nullable=True),
    sa.Column('checklist', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('due_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('overdue_at', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.Column('completed_at', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.Column('cancelled_at', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.Column('cancel_reason', sa.String(length=1000), nullable=True),
    sa.Column('penalty_minor', sa.BigInteger(), nullable=True),
    sa.Column('penalty_currency', sa.String(length=3), nullable=True),
    sa.Column('created_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.create_index('ix_tasks_assignee_created', ['assignee_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_tasks_assignee_due', ['assignee_id', 'status', 'due_at'], unique=False)
        batch_op.create_index('ix_tasks_author_created', ['author_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_tasks_branch_created', ['branch_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_tasks_client', ['client_id', 'created_at'], unique=False)
        batch_op.create_index('ix_tasks_deal', ['deal_id', 'created_at'], unique=False)
        batch_op.create_index('ix_tasks_due', ['due_at'], unique=False, postgresql_where=sa.text("status = 'open' AND overdue_at IS NULL"), sqlite_where=sa.text("status = 'open' AND overdue_at IS NULL"))

    op.create_table('users',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('branch_id', sa.String(length=36), nullable=True),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('updated_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.create_index('ix_users_branch_role', ['branch_id', 'role'], unique=False)

    op.create_table('automations',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('branch_id', sa.String(length=36), nullable=False),
    sa.Column('event', sa.String(length=64), nullable=False),
    sa.Column('template_id', sa.String(length=36), nullable=False),
    sa.Column('assign_to', sa.String(length=8), nullable=False),
    sa.Column('pipeline_id', sa.String(length=36), nullable=True),
    sa.Column('stage_id', sa.String(length=36), nullable=True),
    sa.Column('delay_hours', sa.Float(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_by', sa.String(length=36), nullable=True),
    sa.Column('created_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('disabled_at', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['template_id'], ['task_templates.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('automations', schema=None) as batch_op:
        batch_op.create_index('ix_automations_branch_created', ['branch_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_automations_event_branch', ['event', 'branch_id'], unique=False)

    op.create_table('penalties',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('task_id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('branch_id', sa.String(length=36), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('reason', sa.String(length=1000), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('waived_at', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.Column('waived_by', sa.String(length=36), nullable=True),
    sa.Column('waive_reason', sa.String(length=1000), nullable=True),
    sa.Column('created_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('task_id', name='uq_penalties_task')
    )
    with op.batch_alter_table('penalties', schema=None) as batch_op:
        batch_op.create_index('ix_penalties_branch_created', ['branch_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_penalties_user_month', ['user_id', 'month'], unique=False)

    op.create_table('task_template_versions',
    sa.Column('template_id', sa.String(length=36), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('process', sa.String(length=200), nullable=False),
    sa.Column('instruction', sa.Text(), nullable=False),
    sa.Column('checklist', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('due_in_hours', sa.Float(), nullable=False),
    sa.Column('penalty_minor', sa.BigInteger(), nullable=True),
    sa.Column('penalty_currency', sa.String(length=3), nullable=True),
    sa.Column('author_id', sa.String(length=36), nullable=True),
    sa.Column('created_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['template_id'], ['task_templates.id'], ),
    sa.PrimaryKeyConstraint('template_id', 'version')
    )
    op.create_table('scheduled_tasks',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('automation_id', sa.String(length=36), nullable=False),
    sa.Column('source_event_id', sa.String(length=36), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('branch_id', sa.String(length=36), nullable=False),
    sa.Column('owner_id', sa.String(length=36), nullable=True),
    sa.Column('client_id', sa.String(length=36), nullable=True),
    sa.Column('deal_id', sa.String(length=36), nullable=True),
    sa.Column('run_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('task_id', sa.String(length=36), nullable=True),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.Column('created_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('done_at', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['automation_id'], ['automations.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('automation_id', 'source_event_id', name='uq_scheduled_tasks_automation_event')
    )
    with op.batch_alter_table('scheduled_tasks', schema=None) as batch_op:
        batch_op.create_index('ix_scheduled_tasks_due', ['run_at'], unique=False, postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))



def downgrade() -> None:
    with op.batch_alter_table('scheduled_tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_scheduled_tasks_due', postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))

    op.drop_table('scheduled_tasks')
    op.drop_table('task_template_versions')
    with op.batch_alter_table('penalties', schema=None) as batch_op:
        batch_op.drop_index('ix_penalties_user_month')
        batch_op.drop_index('ix_penalties_branch_created')

    op.drop_table('penalties')
    with op.batch_alter_table('automations', schema=None) as batch_op:
        batch_op.drop_index('ix_automations_event_branch')
        batch_op.drop_index('ix_automations_branch_created')

    op.drop_table('automations')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index('ix_users_branch_role')

    op.drop_table('users')
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_tasks_due', postgresql_where=sa.text("status = 'open' AND overdue_at IS NULL"), sqlite_where=sa.text("status = 'open' AND overdue_at IS NULL"))
        batch_op.drop_index('ix_tasks_deal')
        batch_op.drop_index('ix_tasks_client')
        batch_op.drop_index('ix_tasks_branch_created')
        batch_op.drop_index('ix_tasks_author_created')
        batch_op.drop_index('ix_tasks_assignee_due')
        batch_op.drop_index('ix_tasks_assignee_created')

    op.drop_table('tasks')
    with op.batch_alter_table('task_templates', schema=None) as batch_op:
        batch_op.drop_index('ix_task_templates_branch')

    op.drop_table('task_templates')
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_notifications_user_created')
        batch_op.drop_index('ix_notifications_unread', postgresql_where=sa.text('read_at IS NULL'), sqlite_where=sa.text('read_at IS NULL'))

    op.drop_table('notifications')
    with op.batch_alter_table('complaints', schema=None) as batch_op:
        batch_op.drop_index('ix_complaints_owner_created')
        batch_op.drop_index('ix_complaints_client')
        batch_op.drop_index('ix_complaints_branch_created')

    op.drop_table('complaints')
    drop_bookkeeping_tables(op)
