"""The deals step of an offboarding: every open deal a user owns goes to another user, a batch per call
(``crm_common/transfers.py``; decisions.md 64-65). Won and lost deals keep their owner: they are that user's
results."""

from __future__ import annotations

from sqlalchemy import select, update

from crm_common.clock import utcnow
from crm_common.transfers import locked_ids, transfer_batch
from deals import views
from deals.models import Deal, OwnerTransfer


def owned_open_deals(session, user_id: str, limit: int) -> list[str]:
    return locked_ids(session, select(Deal.id).where(Deal.owner_id == user_id, Deal.status == "open"), limit)


def transfer_deals(uow, raw_transfer: dict, limit) -> dict:
    session = uow.session

    def move(ids: list[str], transfer: dict) -> None:
        now = utcnow()
        session.execute(
            update(Deal).where(Deal.id.in_(ids))
            .values(owner_id=transfer["to_user_id"], updated_at=now, version=Deal.version + 1)
            .execution_options(synchronize_session=False)
        )
        deals = session.scalars(select(Deal).where(Deal.id.in_(ids)).execution_options(populate_existing=True)).all()
        shown = views.DealView(session, with_script=False, now=now).dump(list(deals))
        uow.emit_many("deal_updated", [
            {"branch_id": deal["branch_id"], "actor_id": transfer["actor_id"], "deal": views.snapshot(deal),
             "changed": ["owner_id"]}
            for deal in shown
        ])

    return transfer_batch(uow, OwnerTransfer, raw_transfer, limit, owned_open_deals, move)
