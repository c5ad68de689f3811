"""The tasks step of an offboarding: every open task assigned to a user goes to another user, a batch per call
(``crm_common/transfers.py``; decisions.md 64-65); with the last batch, the user's unresolved complaints and the
automations' tasks still to be made for them. Done and cancelled tasks, and penalties, stay theirs."""

from __future__ import annotations

from sqlalchemy import select, update

from crm_common.clock import utcnow
from crm_common.transfers import locked_ids, transfer_batch
from tasks import views
from tasks.models import Complaint, OwnerTransfer, ScheduledTask, Task


def assigned_open_tasks(session, user_id: str, limit: int) -> list[str]:
    return locked_ids(session, select(Task.id).where(Task.assignee_id == user_id, Task.status == "open"), limit)


def transfer_tasks(uow, raw_transfer: dict, limit) -> dict:
    session = uow.session

    def move(ids: list[str], transfer: dict) -> None:
        session.execute(
            update(Task).where(Task.id.in_(ids))
            .values(assignee_id=transfer["to_user_id"], updated_at=utcnow(), version=Task.version + 1)
            .execution_options(synchronize_session=False)
        )
        tasks = session.scalars(select(Task).where(Task.id.in_(ids)).execution_options(populate_existing=True)).all()
        uow.emit_many("task_updated", [
            {"branch_id": t.branch_id, "actor_id": transfer["actor_id"], "task": views.task(t), "changed": ["assignee_id"]}
            for t in tasks
        ])

    def finish(transfer: dict) -> None:
        old, new = transfer["from_user_id"], transfer["to_user_id"]
        session.execute(
            update(Complaint).where(Complaint.owner_id == old, Complaint.status != "resolved")
            .values(owner_id=new, updated_at=utcnow(), version=Complaint.version + 1)
            .execution_options(synchronize_session=False)
        )
        session.execute(
            update(ScheduledTask).where(ScheduledTask.owner_id == old, ScheduledTask.status == "pending")
            .values(owner_id=new).execution_options(synchronize_session=False)
        )

    return transfer_batch(uow, OwnerTransfer, raw_transfer, limit, assigned_open_tasks, move, finish)
