"""How the tasks service shows its records: the same shape in RPC answers, events and the export."""

from __future__ import annotations

from crm_common.schemas import iso
from tasks.domain import Amount, from_minor
from tasks.models import Automation, Complaint, Notification, Penalty, Task, Template
from tasks.schemas import automation_out, complaint_out, notification_out, penalty_out, template_out

STEP_KEYS = ("text", "done", "done_at")


def columns(row) -> dict:
    return {column.key: getattr(row, column.key) for column in row.__table__.columns}


def _amount(minor: int | None, currency: str | None) -> dict | None:
    amount = Amount.stored(minor, currency)
    return amount.dump() if amount else None


def task(row: Task) -> dict:
    """A task as ``TaskSchema`` (``task_out``) dumps it, built directly: the deadline check shows thousands of
    tasks per pass and a list a page of them, and the schema's dump cost ten times this. The unit tests hold
    the two equal for tasks in every state."""
    return {
        "id": row.id, "title": row.title, "description": row.description, "status": row.status,
        "assignee_id": row.assignee_id, "author_id": row.author_id, "branch_id": row.branch_id,
        "client_id": row.client_id, "deal_id": row.deal_id, "template_id": row.template_id,
        "template_version": row.template_version, "due_at": _time(row.due_at), "completed_at": _time(row.completed_at),
        "cancelled_at": _time(row.cancelled_at), "cancel_reason": row.cancel_reason, "overdue": row.overdue,
        "checklist": None if row.checklist is None else [_step(item) for item in row.checklist],
        "penalty": None if row.penalty_minor is None else {"amount": str(from_minor(row.penalty_minor)),
                                                           "currency": row.penalty_currency},
        "created_at": _time(row.created_at), "updated_at": _time(row.updated_at), "version": row.version,
    }


def _time(value) -> str | None:
    return None if value is None or isinstance(value, str) else iso(value)


def _step(item: dict) -> dict:
    """A checklist step as ``ChecklistItemSchema`` dumps it (the keys it has, as they are stored)."""
    return {key: (bool(item[key]) if key == "done" else item[key]) for key in STEP_KEYS if key in item}


def penalty(row: Penalty) -> dict:
    return penalty_out.dump({**columns(row), "amount": from_minor(row.amount_minor)})


def penalty_row(values: dict) -> dict:
    """A new penalty from the values of its row, as ``penalty`` shows it, built directly: the deadline check makes
    thousands per batch, and the first event of each batch is still checked in full against the contract."""
    return {"id": values["id"], "user_id": values["user_id"], "task_id": values["task_id"],
            "branch_id": values["branch_id"], "amount": str(from_minor(values["amount_minor"])),
            "currency": values["currency"], "reason": values["reason"], "month": values["month"],
            "status": values["status"], "waived_at": None, "waive_reason": None,
            "created_at": iso(values["created_at"])}


def template(row: Template) -> dict:
    return template_out.dump({**columns(row), "penalty": _amount(row.penalty_minor, row.penalty_currency)})


def automation(row: Automation) -> dict:
    return automation_out.dump(row)


def complaint(row: Complaint) -> dict:
    return complaint_out.dump(row)


def notification(row: Notification) -> dict:
    return notification_out.dump(row)


EXPORTS = {"tasks": task, "penalties": penalty, "complaints": complaint}
