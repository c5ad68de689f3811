"""segments and campaigns; the copy of each deal's state and each client's open deals; indexes for segment filters

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
    op.create_table('client_deals',
    sa.Column('deal_id', sa.String(length=36), nullable=False),
    sa.Column('client_id', sa.String(length=36), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('deal_id')
    )
    with op.batch_alter_table('client_deals', schema=None) as batch_op:
        batch_op.create_index('ix_client_deals_open', ['client_id'], unique=False,
                              postgresql_where=sa.text("status = 'open'"), sqlite_where=sa.text("status = 'open'"))
    op.create_table('segments',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('branch_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('filter', crm_common.columns.json_type(), nullable=False),
    sa.Column('created_by', sa.String(length=36), nullable=True),
    sa.Column('created_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('segments', schema=None) as batch_op:
        batch_op.create_index('ix_segments_branch_created', ['branch_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_segments_created', ['created_at', 'id'], unique=False)
    op.create_table('campaigns',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('branch_id', sa.String(length=36), nullable=False),
    sa.Column('segment_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('channel', sa.String(length=50), nullable=False),
    sa.Column('starts_on', sa.String(length=10), nullable=False),
    sa.Column('ends_on', sa.String(length=10), nullable=False),
    sa.Column('budget_minor', sa.BigInteger(), nullable=True),
    sa.Column('budget_currency', sa.String(length=3), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('audience', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=36), nullable=True),
    sa.Column('created_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['segment_id'], ['segments.id']),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.create_index('ix_campaigns_branch_created', ['branch_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_campaigns_created', ['created_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_campaigns_segment_id'), ['segment_id'], unique=False)
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('open_deals', sa.Integer(), server_default='0', nullable=False))
    _deals_known_from_the_timeline()
    _segment_indexes()


def _segment_indexes() -> None:
    """What a segment's count reads (decisions.md 57): the active clients of a branch by kind and creation,
    interactions by client and time, custom fields by containment (PostgreSQL)."""
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.create_index('ix_clients_active_segment', ['branch_id', 'kind', 'created_at', 'owner_id', 'source',
                                                                'open_deals', 'id'],
                              unique=False,
                              postgresql_where=sa.text('archived_at IS NULL AND merged_into IS NULL'),
                              sqlite_where=sa.text('archived_at IS NULL AND merged_into IS NULL'))
    with op.batch_alter_table('interactions', schema=None) as batch_op:
        batch_op.create_index('ix_interactions_client_time', ['client_id', 'occurred_at'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        op.create_index('ix_clients_custom_fields', 'clients', ['custom_fields'], unique=False,
                        postgresql_using='gin', postgresql_ops={'custom_fields': 'jsonb_path_ops'})


def _deals_known_from_the_timeline() -> None:
    """Deals told of before this revision: each deal's status as its latest timeline entry says (version 0,
    so the next event of the deal replaces it)."""
    dialect = op.get_bind().dialect.name
    status = "data->>'status'" if dialect == 'postgresql' else "json_extract(data, '$.status')"
    op.execute(sa.text(f"""
        INSERT INTO client_deals (deal_id, client_id, status, version)
        SELECT ref_id, client_id, status, 0 FROM (
            SELECT ref_id, client_id, {status} AS status,
                   ROW_NUMBER() OVER (PARTITION BY ref_id ORDER BY occurred_at DESC, id DESC) AS n
            FROM timeline_entries WHERE kind = 'deal' AND ref_id IS NOT NULL
        ) AS latest
        WHERE n = 1 AND status IS NOT NULL
    """))
    op.execute(sa.text("""
        UPDATE clients SET open_deals = (
            SELECT count(*) FROM client_deals WHERE client_deals.client_id = clients.id AND client_deals.status = 'open')
        WHERE id IN (SELECT client_id FROM client_deals WHERE status = 'open')
    """))


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_index('ix_clients_custom_fields', table_name='clients')
    with op.batch_alter_table('interactions', schema=None) as batch_op:
        batch_op.drop_index('ix_interactions_client_time')
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_index('ix_clients_active_segment')
        batch_op.drop_column('open_deals')
    op.drop_table('campaigns')
    op.drop_table('segments')
    op.drop_table('client_deals')
