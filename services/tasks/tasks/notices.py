"""Notifications: who is told what when something needs a person's attention.

A ``Notice`` says whom to tell (the record's ``owner``, the branch's ``heads``, the ``admins``), the text
(``str.format`` over the event payload) and what it refers to. The service's own use cases raise the notices
below (a stuck deal, an overdue task, a complaint); an event that only needs telling people is one line in
``ON_EVENTS``, and the service then handles it (``handle_<event>``) with no more code, e.g.::

    "backup_failed": Notice("backup_failed", (ADMINS,), "Backup {backup[id]} failed: {backup[error]}", "backup", "backup.id"),
    "bulk_read_detected": Notice("bulk_read", (HEADS, ADMINS), "{user[name]} read {count} clients", "user", "user.id"),

Each notice is stored once per user and cause (``source_key``: the event's id), so a redelivered event tells
no one twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from crm_common.bulk import insert_rows
from crm_common.schemas import new_id
from tasks import repository as repo
from tasks.models import Notification, User

OWNER, HEADS, ADMINS = "owner", "heads", "admins"


@dataclass(frozen=True)
class Notice:
    kind: str
    to: tuple[str, ...]
    text: str
    ref_type: str | None = None
    ref_path: str | None = None  # the dotted path of the referred record's id in the payload
    owner_path: str | None = None  # the dotted path of the user OWNER means

    def render(self, payload: dict) -> tuple[str, str | None]:
        return self.text.format(**payload)[:1000], _pick(payload, self.ref_path)


def _pick(payload: dict, path: str | None):
    value = payload
    for part in (path.split(".") if path else ()):
        value = value.get(part) if isinstance(value, dict) else None
    return value if path else None


DEAL_STUCK = Notice(
    "deal_stuck", (HEADS,),
    "Deal «{deal[title]}» is stuck at «{stage[name]}»: {days_in_stage:.1f} days, the limit is {max_days:g}",
    "deal", "deal.id",
)
TASK_OVERDUE = Notice(
    "task_overdue", (OWNER, HEADS), "Task «{task[title]}» is overdue (due {task[due_at]:.16} UTC); a penalty was recorded",
    "task", "task.id", owner_path="task.assignee_id",
)
COMPLAINT = Notice(
    "complaint", (OWNER, HEADS), "Complaint «{complaint[subject]}»: answer by {complaint[due_at]:.16} UTC",
    "complaint", "complaint.id", owner_path="complaint.owner_id",
)

CALL_MISSED = Notice(
    "call_missed", (OWNER,), "Missed call from {call[from]}: call back by {task[due_at]:.16} UTC",
    "task", "task.id", owner_path="assignee_id",
)

# events handled only to tell people: one line each (see the module docstring)
ON_EVENTS: dict[str, Notice] = {
    # the backup service's failures (capture, an off-site copy, a verification) reach every administrator
    "backup_failed": Notice("backup_failed", (ADMINS,), "Backup {backup_id} failed ({stage}): {error}", "backup",
                            "backup_id"),
    # the gateway's audit: a user read more distinct clients within an hour than CRM_READ_ALERT_PER_HOUR
    "bulk_read_detected": Notice("bulk_read", (HEADS, ADMINS), "{user[name]:.200} ({user[role]}) read {count} "
                                 "distinct clients within an hour (the alarm is at {threshold})", "user", "user.id"),
    "webhook_failed": Notice("webhook_failed", (ADMINS,), "Webhook {webhook[url]:.300} is failing ({error:.200}): fix the receiver, then set it active again", "webhook", "webhook.id"),  # noqa: E501
}


class People:
    """Who the heads and admins are, as the gateway's user events told us; asked once per batch."""

    def __init__(self, session: Session):
        self.session = session
        self._heads: dict[str | None, list[str]] = {}
        self._admins: list[str] | None = None

    def heads(self, branch_id: str | None) -> list[str]:
        if branch_id not in self._heads:
            self._heads[branch_id] = repo.active_users(self.session, "head", branch_id) if branch_id else []
        return self._heads[branch_id]

    def usable(self, user_id: str | None, branch_id: str | None) -> str | None:
        """``user_id`` unless the gateway told us they were deactivated or moved to another branch: a task the
        system makes for a record's owner then goes to the head instead."""
        if user_id is None:
            return None
        user = self.session.get(User, user_id)
        if user is not None and (not user.active or user.branch_id != branch_id):
            return None
        return user_id

    def admins(self) -> list[str]:
        if self._admins is None:
            self._admins = repo.active_users(self.session, "admin")
        return self._admins

    def recipients(self, notice: Notice, payload: dict) -> list[str]:
        users: list[str] = []
        for group in notice.to:
            if group == OWNER:
                users.append(_pick(payload, notice.owner_path))
            elif group == HEADS:
                users += self.heads(payload.get("branch_id"))
            elif group == ADMINS:
                users += self.admins()
        return [user for user in dict.fromkeys(users) if user]


def notify(session: Session, people: People, notice: Notice, payload: dict, now: datetime) -> list[dict]:
    """Store the notice for each of its recipients; ``payload`` is the event's (its ``event_id`` is the cause)."""
    rows = notices_for(people, notice, payload, now)
    store(session, rows)
    return rows


def notices_for(people: People, notice: Notice, payload: dict, now: datetime) -> list[dict]:
    """The rows of a notice for each of its recipients (``store`` writes them; a batch writes many at once)."""
    text, ref_id = notice.render(payload)
    return [
        {"id": new_id(), "user_id": user, "branch_id": payload.get("branch_id"), "kind": notice.kind, "text": text,
         "ref_type": notice.ref_type, "ref_id": ref_id, "source_key": payload["event_id"], "created_at": now,
         "read_at": None}
        for user in people.recipients(notice, payload)
    ]


def store(session: Session, rows: list[dict]) -> None:
    """Rows, not mapped objects: the deadline check writes a thousand per batch, in one statement whose rows
    travel as one parameter (``crm_common.bulk.insert_rows``)."""
    insert_rows(session, Notification.__table__, rows)
