"""clients.last_interaction_at, kept by triggers on interactions, for a segment's no_interaction_since

The index that served the anti-join it replaces (ix_interactions_time_client) goes.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 06:30:00.000000
"""

from alembic import op
import sqlalchemy as sa

import crm_common.columns


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

ACTIVE = 'archived_at IS NULL AND merged_into IS NULL'
NEWEST = "(SELECT max(occurred_at) FROM interactions WHERE client_id = {row}.client_id)"

# a copy of clients.models.LAST_INTERACTION_TRIGGERS as of this revision
TRIGGERS = {
    "postgresql": [
        f"""CREATE FUNCTION clients_last_interaction() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    UPDATE clients SET last_interaction_at = greatest(last_interaction_at, NEW.occurred_at)
     WHERE id = NEW.client_id AND last_interaction_at IS DISTINCT FROM greatest(last_interaction_at, NEW.occurred_at);
    RETURN NULL;
  END IF;
  IF TG_OP = 'UPDATE' THEN
    UPDATE clients SET last_interaction_at = {NEWEST.format(row="NEW")} WHERE id = NEW.client_id;
  END IF;
  UPDATE clients SET last_interaction_at = {NEWEST.format(row="OLD")} WHERE id = OLD.client_id;
  RETURN NULL;
END $$""",
        "CREATE TRIGGER interactions_last_interaction AFTER INSERT OR DELETE OR UPDATE OF client_id, occurred_at "
        "ON interactions FOR EACH ROW EXECUTE FUNCTION clients_last_interaction()",
    ],
    "sqlite": [
        "CREATE TRIGGER interactions_last_interaction_insert AFTER INSERT ON interactions BEGIN "
        f"UPDATE clients SET last_interaction_at = {NEWEST.format(row='NEW')} WHERE id = NEW.client_id; END",
        "CREATE TRIGGER interactions_last_interaction_update AFTER UPDATE OF client_id, occurred_at ON interactions "
        f"BEGIN UPDATE clients SET last_interaction_at = {NEWEST.format(row='NEW')} WHERE id = NEW.client_id; "
        f"UPDATE clients SET last_interaction_at = {NEWEST.format(row='OLD')} WHERE id = OLD.client_id; END",
        "CREATE TRIGGER interactions_last_interaction_delete AFTER DELETE ON interactions BEGIN "
        f"UPDATE clients SET last_interaction_at = {NEWEST.format(row='OLD')} WHERE id = OLD.client_id; END",
    ],
}
DROPS = {
    "postgresql": ["DROP TRIGGER interactions_last_interaction ON interactions",
                   "DROP FUNCTION clients_last_interaction()"],
    "sqlite": [f"DROP TRIGGER interactions_last_interaction_{when}" for when in ("insert", "update", "delete")],
}


def upgrade() -> None:
    """decisions.md 81: the newest interaction's time on the client, so 'silent since' reads an index, not a join."""
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_interaction_at', crm_common.columns.UtcDateTime(timezone=True), nullable=True))
    op.execute("UPDATE clients SET last_interaction_at = "
               "(SELECT max(occurred_at) FROM interactions WHERE interactions.client_id = clients.id)")
    # its one reader was the anti-join that last_interaction_at replaces; every interaction insert paid for it
    op.drop_index('ix_interactions_time_client', table_name='interactions')
    dialect = op.get_bind().dialect.name
    for statement in TRIGGERS.get(dialect, []):
        op.execute(statement)
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.create_index('ix_clients_active_open_silence', ['branch_id', 'open_deals', 'last_interaction_at'],
                              unique=False, postgresql_where=sa.text(ACTIVE), sqlite_where=sa.text(ACTIVE))


def downgrade() -> None:
    op.create_index('ix_interactions_time_client', 'interactions', ['occurred_at', 'client_id'], unique=False)
    for statement in DROPS.get(op.get_bind().dialect.name, []):
        op.execute(statement)
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_index('ix_clients_active_open_silence')
        batch_op.drop_column('last_interaction_at')
