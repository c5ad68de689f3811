"""initial

Revision ID: 0001
Revises: 
Create Date: 2026-11-27 02:37:40.916401

On PostgreSQL, ``?q=`` is served by a trigram index and ``?tag=`` by a GIN index on the tags.
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import crm_common.columns

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('clients',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('branch_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('owner_id', sa.String(length=36), nullable=True),
    sa.Column('source', sa.String(length=64), nullable=True),
    sa.Column('phones', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('emails', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('tags', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('custom_fields', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('search_text', sa.Text(), nullable=False),
    sa.Column('archived_at', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.Column('created_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.create_index('ix_clients_branch_created', ['branch_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_clients_branch_owner_created', ['branch_id', 'owner_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_clients_created', ['created_at', 'id'], unique=False)

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

    op.create_table('processed_events',
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('handled_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('event_id')
    )
    op.create_table('round_robin',
    sa.Column('branch_id', sa.String(length=36), nullable=False),
    sa.Column('last_owner_id', sa.String(length=36), nullable=True),
    sa.PrimaryKeyConstraint('branch_id')
    )
    op.create_table('client_contacts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('client_id', sa.String(length=36), nullable=False),
    sa.Column('branch_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('value', sa.String(length=254), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('branch_id', 'kind', 'value', name='uq_contact_per_branch')
    )
    with op.batch_alter_table('client_contacts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_client_contacts_client_id'), ['client_id'], unique=False)

    op.create_table('interactions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('client_id', sa.String(length=36), nullable=False),
    sa.Column('branch_id', sa.String(length=36), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('direction', sa.String(length=3), nullable=True),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('occurred_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('duration_s', sa.Integer(), nullable=True),
    sa.Column('script_id', sa.String(length=36), nullable=True),
    sa.Column('author_id', sa.String(length=36), nullable=True),
    sa.Column('created_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('interactions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_interactions_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_interactions_script_id'), ['script_id'], unique=False)

    op.create_table('timeline_entries',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('client_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('occurred_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('ref_id', sa.String(length=36), nullable=True),
    sa.Column('actor_id', sa.String(length=36), nullable=True),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('source_event_id', sa.String(length=36), nullable=True),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('source_event_id')
    )
    with op.batch_alter_table('timeline_entries', schema=None) as batch_op:
        batch_op.create_index('ix_timeline_client_time', ['client_id', 'occurred_at', 'id'], unique=False)

    op.create_table('touchpoints',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('client_id', sa.String(length=36), nullable=False),
    sa.Column('branch_id', sa.String(length=36), nullable=False),
    sa.Column('channel', sa.String(length=50), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('phone', sa.String(length=40), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('utm', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('created_client', sa.Boolean(), nullable=False),
    sa.Column('recorded_by', sa.String(length=36), nullable=True),
    sa.Column('created_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('touchpoints', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_touchpoints_client_id'), ['client_id'], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.create_index(
            "ix_clients_search_trgm", "clients", ["search_text"],
            postgresql_using="gin", postgresql_ops={"search_text": "gin_trgm_ops"},
        )
        op.create_index(
            "ix_clients_tags", "clients", ["tags"], postgresql_using="gin", postgresql_ops={"tags": "jsonb_path_ops"}
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_clients_tags", table_name="clients")
        op.drop_index("ix_clients_search_trgm", table_name="clients")
    with op.batch_alter_table('touchpoints', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_touchpoints_client_id'))

    op.drop_table('touchpoints')
    with op.batch_alter_table('timeline_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_timeline_client_time')

    op.drop_table('timeline_entries')
    with op.batch_alter_table('interactions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_interactions_script_id'))
        batch_op.drop_index(batch_op.f('ix_interactions_client_id'))

    op.drop_table('interactions')
    with op.batch_alter_table('client_contacts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_client_contacts_client_id'))

    op.drop_table('client_contacts')
    op.drop_table('round_robin')
    op.drop_table('processed_events')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_published_at'))

    op.drop_table('outbox')
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_index('ix_clients_created')
        batch_op.drop_index('ix_clients_branch_owner_created')
        batch_op.drop_index('ix_clients_branch_created')

    op.drop_table('clients')
