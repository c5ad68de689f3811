"""login attempts: counted per email and per source address, reserved before the password is checked

Replaces login_throttle (failures per email, counted after the check). Its rows only describe the
last few minutes of failed logins, so they are not carried over.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 21:00:00.000000
"""

from alembic import op
import sqlalchemy as sa

import crm_common.columns


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('login_attempts',
    sa.Column('key', sa.String(length=300), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('window_start', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('locked_until', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('key')
    )
    op.drop_table('login_throttle')


def downgrade() -> None:
    op.create_table('login_throttle',
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('first_failure_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('locked_until', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('email')
    )
    op.drop_table('login_attempts')
