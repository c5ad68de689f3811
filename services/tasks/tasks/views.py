"""How the tasks service shows its records: the same shape in RPC answers, events and the export."""

from __future__ import annotations

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


def template(row: Template) -> dict:
    return template_out.dump({**columns(row), "penalty": _amount(row.penalty_minor, row.penalty_currency)})


def automation(row: Automation) -> dict:
    return automation_out.dump(row)


def complaint(row: Complaint) -> dict:
    return complaint_out.dump(row)


def notification(row: Notification) -> dict:
    return notification_out.dump(row)


EXPORTS = {"tasks": task, "penalties": penalty, "complaints": complaint}
