"""How the tasks service shows its records: the same shape in RPC answers, events and the export."""

from __future__ import annotations

from crm_common.schemas import iso
from tasks.domain import Amount, from_minor
from tasks.models import Automation, Complaint, Notification, Penalty, Task, Template
from tasks.schemas import automation_out, complaint_out, notification_out, penalty_out, task_out, template_out


def columns(row) -> dict:
    return {column.key: getattr(row, column.key) for column in row.__table__.columns}


def _amount(minor: int | None, currency: str | None) -> dict | None:
    amount = Amount.stored(minor, currency)
    return amount.dump() if amount else None


def task(row: Task) -> dict:
    return task_out.dump({**columns(row), "overdue": row.overdue, "penalty": _amount(row.penalty_minor, row.penalty_currency)})


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
