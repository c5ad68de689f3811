"""command log: results of writes made under an idempotency key, so a retry does not write twice

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 03:20:56.050616
"""

from alembic import op
import sqlalchemy as sa

import crm_common.columns


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('command_log',
    sa.Column('key', sa.String(length=400), nullable=False),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('created_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    with op.batch_alter_table('command_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_command_log_created_at'), ['created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('command_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_command_log_created_at'))
    op.drop_table('command_log')
