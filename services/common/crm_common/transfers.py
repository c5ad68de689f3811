"""Owner transfers: one step of an offboarding (decisions.md 64), as each owning service runs it.

The gateway's offboarding saga asks the clients, deals and tasks services in turn to hand a user's records
to another user, one batch per call: ``transfer_<records>({"id", "from_user_id", "to_user_id", "actor_id"},
limit)`` → ``{"moved": n, "done": bool}``. The service keeps one ``owner_transfers`` row per saga (its id is
the saga's) and moves each batch with one UPDATE in the transaction that adds the batch to the row's count,
so a call repeated, redelivered or cut short by a crash never moves or counts a record twice: what was moved
no longer has the old owner, and what was not is still there for the next call.

A service's models declare the table in one line, ``OwnerTransfer = owner_transfer_model(Base)``, and its
migration creates it with ``create_owner_transfer_table(op)``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import Boolean, Integer, String, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, mapped_column

from crm_common.clock import utcnow
from crm_common.columns import UtcDateTime
from crm_common.contracts.offboarding import TransferSchema, TransferStateSchema
from crm_common.errors import Conflict
from crm_common.schemas import load_or_raise

TABLE = "owner_transfers"
MAX_BATCH = 5000
state_out = TransferStateSchema()


class OwnerTransferMixin:
    """One offboarding step in this service: whose records go to whom, how many moved, whether it is over."""

    __tablename__ = TABLE

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the offboarding's id
    from_user_id: Mapped[str] = mapped_column(String(36))
    to_user_id: Mapped[str] = mapped_column(String(36))
    moved: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


def owner_transfer_model(base) -> type:
    return type("OwnerTransfer", (OwnerTransferMixin, base), {"__module__": base.__module__})


def create_owner_transfer_table(op) -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("from_user_id", sa.String(length=36), nullable=False),
        sa.Column("to_user_id", sa.String(length=36), nullable=False),
        sa.Column("moved", sa.Integer(), nullable=False),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


# pick(session, from_user_id, limit) -> ids of records still owned, locked for the batch;
# move(ids, transfer) -> writes the batch (one UPDATE) and emits its events
Pick = Callable[[object, str, int], list]
Move = Callable[[list, dict], None]


def transfer_batch(uow, model, raw_transfer: dict, limit, pick: Pick, move: Move,
                   finish: Callable[[dict], None] | None = None) -> dict:
    """Move the next ``limit`` records of the transfer; ``{"moved": total so far, "done": bool}``.

    ``finish(transfer)`` runs once more with the last batch (records without a count of their own: pending
    automations, complaints). The transfer row is locked first, so two calls for one saga run one after the other.
    """
    transfer = load_or_raise(TransferSchema, raw_transfer)
    limit = max(1, min(int(limit), MAX_BATCH))
    session = uow.session
    row = _locked_row(session, model, transfer)
    if (row.from_user_id, row.to_user_id) != (transfer["from_user_id"], transfer["to_user_id"]):
        raise Conflict("this transfer was started for other users", fields={"id": ["Started for other users."]})
    if row.done:
        return state_out.dump(row)
    ids = pick(session, transfer["from_user_id"], limit)
    if ids:
        move(ids, transfer)
    if len(ids) < limit:
        if finish is not None:
            finish(transfer)
        row.done = True
    row.moved += len(ids)
    row.updated_at = utcnow()
    session.flush()
    return state_out.dump(row)


def _locked_row(session, model, transfer: dict):
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    now = utcnow()
    session.execute(
        insert(model.__table__).values(
            id=transfer["id"], from_user_id=transfer["from_user_id"], to_user_id=transfer["to_user_id"],
            moved=0, done=False, created_at=now, updated_at=now,
        ).on_conflict_do_nothing(index_elements=["id"])
    )
    return session.scalars(select(model).where(model.id == transfer["id"]).with_for_update()).one()


def locked_ids(session, query, limit: int) -> list:
    """The ids a batch takes: ``query`` (a select of ids) limited and locked. Not ``SKIP LOCKED``: a short batch
    ends the step, so a record a user is editing at that moment is waited for, not left behind."""
    return list(session.scalars(query.limit(limit).with_for_update()).all())
