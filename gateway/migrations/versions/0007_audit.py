"""audit: the hash-chained audit log, its head, the bulk-read window and watch

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 00:30:00.000000
"""

from alembic import op
import sqlalchemy as sa

import crm_common.columns


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=True),
    sa.Column('branch_id', sa.String(length=36), nullable=True),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('ref_type', sa.String(length=32), nullable=True),
    sa.Column('ref_id', sa.String(length=36), nullable=True),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('request_id', sa.String(length=100), nullable=True),
    sa.Column('address', sa.String(length=64), nullable=True),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id')
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_user', ['user_id', 'seq'], unique=False)
        batch_op.create_index('ix_audit_log_branch', ['branch_id', 'seq'], unique=False)
    head = op.create_table('audit_head',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": GENESIS}])
    op.create_table('client_reads',
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('client_id', sa.String(length=36), nullable=False),
    sa.Column('read_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('user_id', 'client_id')
    )
    with op.batch_alter_table('client_reads', schema=None) as batch_op:
        batch_op.create_index('ix_client_reads_user', ['user_id', 'read_at'], unique=False)
        batch_op.create_index('ix_client_reads_at', ['read_at'], unique=False)
    op.create_table('read_watch',
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('alerted_at', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.Column('blocked_until', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('user_id')
    )
    with op.batch_alter_table('read_watch', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_read_watch_blocked_until'), ['blocked_until'], unique=False)


def downgrade() -> None:
    op.drop_table('read_watch')
    op.drop_table('client_reads')
    op.drop_table('audit_head')
    op.drop_table('audit_log')
