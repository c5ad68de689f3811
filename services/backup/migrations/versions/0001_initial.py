"""the backup catalogue

Revision ID: 0001
Revises:
Create Date: 2026-12-01 10:00:00
"""

from alembic import op
import sqlalchemy as sa

from crm_common.bookkeeping import create_bookkeeping_tables
from crm_common.columns import UtcDateTime, json_type


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'backups',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('trigger', sa.String(length=16), nullable=False),
        sa.Column('tick', UtcDateTime(timezone=True), nullable=True),
        sa.Column('requested_by', sa.String(length=36), nullable=True),
        sa.Column('started_at', UtcDateTime(timezone=True), nullable=False),
        sa.Column('finished_at', UtcDateTime(timezone=True), nullable=True),
        sa.Column('heartbeat_at', UtcDateTime(timezone=True), nullable=True),
        sa.Column('file_name', sa.String(length=200), nullable=True),
        sa.Column('size_bytes', sa.BigInteger(), nullable=True),
        sa.Column('sha256', sa.String(length=64), nullable=True),
        sa.Column('key_id', sa.String(length=32), nullable=True),
        sa.Column('verified', sa.Boolean(), nullable=True),
        sa.Column('verified_at', UtcDateTime(timezone=True), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('manifest', json_type(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('tick'),
    )
    op.create_index('ix_backups_one_running', 'backups', ['status'], unique=True,
                    postgresql_where=sa.text("status = 'running'"), sqlite_where=sa.text("status = 'running'"))
    op.create_index('ix_backups_started', 'backups', ['started_at', 'id'])
    op.create_table(
        'backup_parts',
        sa.Column('backup_id', sa.String(length=36), nullable=False),
        sa.Column('service', sa.String(length=64), nullable=False),
        sa.Column('engine', sa.String(length=16), nullable=False),
        sa.Column('size_bytes', sa.BigInteger(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('tables', json_type(), nullable=False),
        sa.Column('checksums', json_type(), nullable=False),
        sa.ForeignKeyConstraint(['backup_id'], ['backups.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('backup_id', 'service'),
    )
    op.create_table(
        'backup_copies',
        sa.Column('backup_id', sa.String(length=36), nullable=False),
        sa.Column('target', sa.String(length=500), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('copied_at', UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['backup_id'], ['backups.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('backup_id', 'target'),
    )
    op.create_table(
        'verifications',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('backup_id', sa.String(length=36), nullable=False),
        sa.Column('trigger', sa.String(length=16), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('started_at', UtcDateTime(timezone=True), nullable=False),
        sa.Column('finished_at', UtcDateTime(timezone=True), nullable=True),
        sa.Column('heartbeat_at', UtcDateTime(timezone=True), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('mismatches', json_type(), nullable=True),
        sa.ForeignKeyConstraint(['backup_id'], ['backups.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_verifications_backup_id', 'verifications', ['backup_id'])
    op.create_index('ix_verifications_one_running', 'verifications', ['status'], unique=True,
                    postgresql_where=sa.text("status = 'running'"), sqlite_where=sa.text("status = 'running'"))
    op.create_table(
        'installation',
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('value', sa.String(length=200), nullable=False),
        sa.Column('changed_at', UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('key'),
    )
    create_bookkeeping_tables(op)


def downgrade() -> None:
    for table in ('installation', 'verifications', 'backup_copies', 'backup_parts', 'backups',
                  'command_log', 'processed_events', 'outbox'):
        op.drop_table(table)
