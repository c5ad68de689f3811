"""The clients step of an offboarding: every client a user owns goes to another user, a batch per call
(``crm_common/transfers.py``; decisions.md 64-65)."""

from __future__ import annotations

from sqlalchemy import select, update

from clients.models import Client, OwnerTransfer, TimelineEntry
from clients.schemas import client_out
from crm_common.bulk import insert_rows
from crm_common.clock import utcnow
from crm_common.schemas import new_id
from crm_common.transfers import locked_ids, transfer_batch


def owned_clients(session, user_id: str, limit: int) -> list[str]:
    """Archived clients too (they are still the user's); merged ones are redirects, owned by nobody in practice."""
    query = select(Client.id).where(Client.owner_id == user_id, Client.merged_into.is_(None))
    return locked_ids(session, query, limit)


def transfer_clients(uow, raw_transfer: dict, limit) -> dict:
    session = uow.session

    def move(ids: list[str], transfer: dict) -> None:
        now = utcnow()
        session.execute(
            update(Client).where(Client.id.in_(ids))
            .values(owner_id=transfer["to_user_id"], updated_at=now, version=Client.version + 1)
            .execution_options(synchronize_session=False)
        )
        clients = session.scalars(select(Client).where(Client.id.in_(ids)).execution_options(populate_existing=True)).all()
        data = {"changed": ["owner_id"], "offboarding_id": transfer["id"]}
        insert_rows(session, TimelineEntry.__table__, [
            {"id": new_id(), "client_id": c.id, "kind": "client", "type": "client_updated", "occurred_at": now,
             "ref_id": c.id, "actor_id": transfer["actor_id"], "data": data, "source_event_id": None}
            for c in clients
        ])
        uow.emit_many("client_updated", [
            {"branch_id": c.branch_id, "actor_id": transfer["actor_id"], "client": client_out.dump(c), "changed": ["owner_id"]}
            for c in clients
        ])

    return transfer_batch(uow, OwnerTransfer, raw_transfer, limit, owned_clients, move)
