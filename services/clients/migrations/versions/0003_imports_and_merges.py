"""imports and merges: claimed contacts, merged clients, name keys, the import tables

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 09:00:00

A phone or email may now be listed by several clients of a branch, one of which claims it (partial
unique index), so that duplicates an import creates on purpose can exist, be found and be merged.
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import crm_common.columns
from clients.domain import name_key

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def _json():
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql')


def upgrade() -> None:
    with op.batch_alter_table('client_contacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed', sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.drop_constraint('uq_contact_per_branch', type_='unique')
    op.create_index('uq_contact_claimed', 'client_contacts', ['branch_id', 'kind', 'value'], unique=True,
                    postgresql_where=sa.text('claimed'), sqlite_where=sa.text('claimed'))
    op.create_index('ix_contact_value', 'client_contacts', ['branch_id', 'kind', 'value'], unique=False)

    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('name_key', sa.String(length=200), server_default='', nullable=False))
        batch_op.add_column(sa.Column('merged_into', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('merged_at', crm_common.columns.UtcDateTime(timezone=True), nullable=True))
    _fill_name_keys()
    op.create_index('ix_clients_branch_name_key', 'clients', ['branch_id', 'name_key'], unique=False)

    op.create_table('imports',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('branch_id', sa.String(length=36), nullable=False),
    sa.Column('created_by', sa.String(length=36), nullable=False),
    sa.Column('created_by_role', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('dry_run', sa.Boolean(), nullable=False),
    sa.Column('on_duplicate', sa.String(length=16), nullable=False),
    sa.Column('file_name', sa.String(length=255), nullable=True),
    sa.Column('mapping', _json(), nullable=False),
    sa.Column('managers', _json(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('rows_received', sa.Integer(), nullable=False),
    sa.Column('rows_done', sa.Integer(), nullable=False),
    sa.Column('last_row', sa.Integer(), nullable=False),
    sa.Column('created', sa.Integer(), nullable=False),
    sa.Column('merged', sa.Integer(), nullable=False),
    sa.Column('skipped', sa.Integer(), nullable=False),
    sa.Column('rows_with_errors', sa.Integer(), nullable=False),
    sa.Column('errors_count', sa.Integer(), nullable=False),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_until', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', crm_common.columns.UtcDateTime(timezone=True), nullable=False),
    sa.Column('started_at', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', crm_common.columns.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_imports_status', 'imports', ['status', 'created_at'], unique=False)
    op.create_index('ix_imports_branch_created', 'imports', ['branch_id', 'created_at', 'id'], unique=False)
    op.create_index('ix_imports_created', 'imports', ['created_at', 'id'], unique=False)

    op.create_table('import_rows',
    sa.Column('import_id', sa.String(length=36), nullable=False),
    sa.Column('row_no', sa.Integer(), nullable=False),
    sa.Column('data', _json(), nullable=False),
    sa.ForeignKeyConstraint(['import_id'], ['imports.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('import_id', 'row_no')
    )
    op.create_table('import_outcomes',
    sa.Column('import_id', sa.String(length=36), nullable=False),
    sa.Column('row_no', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('client_id', sa.String(length=36), nullable=True),
    sa.Column('errors', _json(), nullable=True),
    sa.Column('note', sa.String(length=300), nullable=True),
    sa.ForeignKeyConstraint(['import_id'], ['imports.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('import_id', 'row_no')
    )
    op.create_index('ix_import_outcomes_errors', 'import_outcomes', ['import_id', 'row_no'], unique=False,
                    postgresql_where=sa.text("status = 'error'"), sqlite_where=sa.text("status = 'error'"))

    op.create_index('ix_outbox_unpublished', 'outbox', ['id'], unique=False,
                    postgresql_where=sa.text('published_at IS NULL'), sqlite_where=sa.text('published_at IS NULL'))

    op.create_table('import_contacts',
    sa.Column('import_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('value', sa.String(length=254), nullable=False),
    sa.Column('row_no', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.String(length=36), nullable=True),
    sa.ForeignKeyConstraint(['import_id'], ['imports.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('import_id', 'kind', 'value')
    )


def _fill_name_keys() -> None:
    """Existing clients get their name key (the rule of this revision's domain.name_key)."""
    bind = op.get_bind()
    clients = sa.table('clients', sa.column('id'), sa.column('name'), sa.column('kind'), sa.column('name_key'))
    rows = bind.execute(sa.select(clients.c.id, clients.c.name, clients.c.kind)).all()
    updates = [{"key_id": row.id, "key": name_key(row.name, row.kind)} for row in rows]
    for start in range(0, len(updates), 1000):
        bind.execute(
            clients.update().where(clients.c.id == sa.bindparam("key_id")).values(name_key=sa.bindparam("key")),
            updates[start:start + 1000],
        )


def downgrade() -> None:
    op.drop_table('import_contacts')
    op.drop_index('ix_outbox_unpublished', table_name='outbox')
    op.drop_index('ix_import_outcomes_errors', table_name='import_outcomes')
    op.drop_table('import_outcomes')
    op.drop_table('import_rows')
    op.drop_index('ix_imports_created', table_name='imports')
    op.drop_index('ix_imports_branch_created', table_name='imports')
    op.drop_index('ix_imports_status', table_name='imports')
    op.drop_table('imports')
    op.drop_index('ix_clients_branch_name_key', table_name='clients')
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_column('merged_at')
        batch_op.drop_column('merged_into')
        batch_op.drop_column('name_key')
    # duplicates made since cannot stay: the unique constraint comes back over the claimed contacts only
    op.execute(sa.text("DELETE FROM client_contacts WHERE NOT claimed"))
    op.drop_index('ix_contact_value', table_name='client_contacts')
    op.drop_index('uq_contact_claimed', table_name='client_contacts')
    with op.batch_alter_table('client_contacts', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_contact_per_branch', ['branch_id', 'kind', 'value'])
        batch_op.drop_column('claimed')
