"""exports: client exports, their files, marker rows and the daily row counts; users' can_export

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 00:30:00.000000
"""

from alembic import op
import sqlalchemy as sa

import crm_common.columns


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('can_export', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table('exports',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('branch_id', sa.String(length=36), nullable=True),
    sa.Column('filter', crm_common.columns.json_type(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reserved', sa.Integer(), nullable=False),
    sa.Column('quota_day', sa.Date(), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=True),
    sa.Column('markers', crm_common.columns.json_type(), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('lease_owner', sa.String(length=200), nullable=True),
    sa.Column('lease_until', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.Column('expires_at', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('exports', schema=None) as batch_op:
        batch_op.create_index('ix_exports_created', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_exports_user_created', ['user_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_exports_status', ['status'], unique=False)
    op.create_table('export_chunks',
    sa.Column('export_id', sa.String(length=36), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['export_id'], ['exports.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('export_id', 'seq')
    )
    op.create_table('export_markers',
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('value', sa.String(length=254), nullable=False),
    sa.Column('export_id', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['export_id'], ['exports.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('kind', 'value', 'export_id')
    )
    op.create_table('export_quota',
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('user_id', 'day')
    )


def downgrade() -> None:
    op.drop_table('export_quota')
    op.drop_table('export_markers')
    op.drop_table('export_chunks')
    with op.batch_alter_table('exports', schema=None) as batch_op:
        batch_op.drop_index('ix_exports_status')
        batch_op.drop_index('ix_exports_user_created')
        batch_op.drop_index('ix_exports_created')
    op.drop_table('exports')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('can_export')
