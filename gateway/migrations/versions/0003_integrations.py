"""integrations: API keys (hashes only), call recordings, users' phone, extension and shift

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 23:00:00.000000
"""

from alembic import op
import sqlalchemy as sa

import crm_common.columns


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('phone', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('extension', sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column('on_shift', sa.Boolean(), nullable=False, server_default=sa.true()))
    op.create_table('api_keys',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('branch_id', sa.String(length=36), nullable=True),
    sa.Column('scopes', crm_common.columns.json_type(), nullable=False),
    sa.Column('created_by', sa.String(length=36), nullable=True),
    sa.Column('created_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_hash')
    )
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.create_index('ix_api_keys_created', ['created_at', 'id'], unique=False)
    op.create_table('recordings',
    sa.Column('call_id', sa.String(length=36), nullable=False),
    sa.Column('client_id', sa.String(length=36), nullable=False),
    sa.Column('branch_id', sa.String(length=36), nullable=False),
    sa.Column('store_key', sa.String(length=300), nullable=False),
    sa.Column('content_type', sa.String(length=32), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('duration_s', sa.Float(), nullable=True),
    sa.Column('created_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('call_id')
    )
    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recordings_created_at'), ['created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recordings_created_at'))
    op.drop_table('recordings')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_index('ix_api_keys_created')
    op.drop_table('api_keys')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('on_shift')
        batch_op.drop_column('extension')
        batch_op.drop_column('phone')
