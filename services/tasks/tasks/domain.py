"""The rules of tasks, penalties, templates, automations and complaints: plain Python, no nameko, no session.

``TaskRules``, ``PenaltyRules``, ``TemplateRules`` and ``ComplaintRules`` are mixed into the mapped classes of
``models.py``; they read and write only their own attributes, so unit tests use them on plain objects too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from crm_common.caller import Caller
from crm_common.errors import ChecklistIncomplete, Conflict, Forbidden, NotFound, ValidationError
from crm_common.schemas import iso

CENTS = Decimal(100)


def to_minor(amount: Decimal) -> int:
    return int((Decimal(amount) * CENTS).to_integral_value())


def from_minor(amount_minor: int) -> Decimal:
    return (Decimal(amount_minor) / CENTS).quantize(Decimal("0.01"))


@dataclass(frozen=True)
class Amount:
    minor: int
    currency: str

    @classmethod
    def of(cls, data: dict | None) -> Amount | None:
        """From ``{"amount": Decimal, "currency": "RUB"}`` as the input schemas load it."""
        return None if data is None else cls(to_minor(data["amount"]), data["currency"])

    @classmethod
    def stored(cls, minor: int | None, currency: str | None) -> Amount | None:
        return None if minor is None else cls(minor, currency)

    def dump(self) -> dict:
        return {"amount": from_minor(self.minor), "currency": self.currency}


def month_of(when: datetime) -> str:
    """The UTC month a penalty counts in: ``2026-11``."""
    return f"{when.year:04d}-{when.month:02d}"


def due_in(now: datetime, hours: float) -> datetime:
    return now + timedelta(hours=hours)


def check_due_at(due_at: datetime, now: datetime) -> None:
    if due_at <= now:
        raise ValidationError("due_at is in the past", fields={"due_at": ["Must be in the future."]})


def new_checklist(texts: list[str]) -> list[dict]:
    return [{"text": text, "done": False, "done_at": None} for text in texts]


class ChecklistItemNotFound(NotFound):
    """no such checklist item"""


@dataclass(frozen=True)
class Completion:
    on_time: bool
    became_overdue: bool  # completed late before the check found it: the penalty is recorded now


class TaskRules:
    """What may happen to a task. A task is open, then done or cancelled, never both; once found past its
    deadline it stays overdue (its penalty stands until a head waives it)."""

    status: str
    assignee_id: str
    author_id: str | None
    due_at: datetime
    overdue_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    checklist: list[dict]
    updated_at: datetime

    @property
    def overdue(self) -> bool:
        return self.overdue_at is not None

    def may_work_on(self, caller: Caller) -> bool:
        """Tick steps and complete: the assignee, or a head or admin who sees the task."""
        return caller.is_admin or caller.is_head or caller.id == self.assignee_id

    def may_manage(self, caller: Caller) -> bool:
        """Edit and cancel: who set the task, or a head or admin who sees it."""
        return caller.is_admin or caller.is_head or (self.author_id is not None and caller.id == self.author_id)

    def _require_open(self, action: str) -> None:
        if self.status != "open":
            raise Conflict(f"the task is {self.status}; it cannot be {action}",
                           fields={"status": [f"The task is {self.status}."]})

    def tick(self, index: int, done: bool, now: datetime) -> bool:
        """Mark one step done or not done; False if it already was."""
        if not 0 <= index < len(self.checklist or []):
            raise ChecklistItemNotFound()
        if self.checklist[index]["done"] == done:
            return False
        self._require_open("changed")
        items = [dict(item) for item in self.checklist]  # a new list: the JSON column sees the change
        items[index] = {"text": items[index]["text"], "done": done, "done_at": iso(now) if done else None}
        self.checklist = items
        self.updated_at = now
        return True

    def complete(self, now: datetime) -> Completion | None:
        """Finish the task; None if it is done already (completing twice changes nothing and tells no one)."""
        if self.status == "done":
            return None
        self._require_open("completed")
        undone = [index for index, item in enumerate(self.checklist or []) if not item["done"]]
        if undone:
            raise ChecklistIncomplete(
                f"{len(undone)} step(s) of the checklist are not done",
                fields={f"checklist.{index}": ["Not done."] for index in undone},
                details={"undone": undone},
            )
        became_overdue = self.mark_overdue(now)
        self.status = "done"
        self.completed_at = now
        self.updated_at = now
        return Completion(on_time=not self.overdue, became_overdue=became_overdue)

    def cancel(self, reason: str, now: datetime) -> bool:
        """False if it is cancelled already; a done task cannot be cancelled."""
        if self.status == "cancelled":
            return False
        self._require_open("cancelled")
        self.status = "cancelled"
        self.cancelled_at = now
        self.cancel_reason = reason
        self.updated_at = now
        return True

    def mark_overdue(self, now: datetime) -> bool:
        """True the one time an open task is found past its deadline."""
        if self.status != "open" or self.overdue_at is not None or self.due_at >= now:
            return False
        self.overdue_at = now
        self.updated_at = now
        return True

    def edit(self, changes: dict, now: datetime) -> list[str]:
        """Title, description, due_at, assignee_id; the names of what changed."""
        self._require_open("edited")
        if "due_at" in changes and changes["due_at"] != self.due_at:
            check_due_at(changes["due_at"], now)
        changed = [name for name, value in changes.items() if getattr(self, name) != value]
        for name in changed:
            setattr(self, name, changes[name])
        if changed:
            self.updated_at = now
        return changed


def assignee_for(caller: Caller, assignee_id: str | None, branch_id: str, directory: dict | None) -> str:
    """Who a task created or reassigned by ``caller`` in ``branch_id`` goes to.

    A manager assigns only to themself (403 otherwise); a head or an admin names any active user of the
    branch, as the gateway's ``directory`` describes them; naming nobody means the caller."""
    if assignee_id is None or assignee_id == caller.id:
        if caller.branch_id != branch_id:
            raise ValidationError(
                "the assignee must be a user of the task's branch",
                fields={"assignee_id": ["Name an active user of the task's branch."]},
            )
        return caller.id
    if caller.is_manager:
        raise Forbidden("a manager assigns tasks only to themself")
    user = ((directory or {}).get("users") or {}).get(assignee_id)
    if not user or not user.get("active") or user.get("branch_id") != branch_id:
        raise ValidationError(
            "the assignee is not an active user of the task's branch",
            fields={"assignee_id": ["Not an active user of the task's branch."]},
        )
    return assignee_id


def penalty_amount(task_penalty: Amount | None, default: Amount) -> Amount:
    """The task's own penalty (given, or copied from its template when it was made), else the default."""
    return task_penalty or default


def penalty_reason(title: str, due_at: datetime) -> str:
    return f"Missed the deadline of «{title}» ({due_at:%Y-%m-%d %H:%M} UTC)"[:1000]


class PenaltyRules:
    status: str
    waived_at: datetime | None
    waived_by: str | None
    waive_reason: str | None

    def waive(self, reason: str, by: str, now: datetime) -> None:
        if self.status == "waived":
            raise Conflict("the penalty is waived already", fields={"status": ["Already waived."]})
        self.status = "waived"
        self.waived_at = now
        self.waived_by = by
        self.waive_reason = reason


class TemplateRules:
    """A template's fields change only by making a new version."""

    version: int
    updated_at: datetime
    penalty_minor: int | None
    penalty_currency: str | None

    @property
    def penalty(self) -> Amount | None:
        return Amount.stored(self.penalty_minor, self.penalty_currency)

    def change(self, changes: dict, now: datetime) -> list[str]:
        changes = dict(changes)
        if "penalty" in changes:
            penalty = Amount.of(changes.pop("penalty"))
            changes["penalty_minor"] = penalty.minor if penalty else None
            changes["penalty_currency"] = penalty.currency if penalty else None
        changed = [name for name, value in changes.items() if getattr(self, name) != value]
        for name in changed:
            setattr(self, name, changes[name])
        if changed:
            self.version += 1
            self.updated_at = now
        return ["penalty" if name.startswith("penalty_") else name for name in dict.fromkeys(changed)]


class ComplaintRules:
    status: str
    resolution: str | None
    resolved_at: datetime | None
    updated_at: datetime

    def move_to(self, status: str, resolution: str | None, now: datetime) -> bool:
        """``in_progress`` or ``resolved`` (with a resolution); True if it changed. A resolved complaint is closed."""
        if self.status == "resolved":
            if status == "resolved" and resolution == self.resolution:
                return False
            raise Conflict("the complaint is resolved; it cannot change", fields={"status": ["Already resolved."]})
        if status == self.status and resolution in (None, self.resolution):
            return False
        self.status = status
        if resolution is not None:
            self.resolution = resolution
        if status == "resolved":
            self.resolved_at = now
        self.updated_at = now
        return True


# ---- automations

@dataclass(frozen=True)
class Record:
    """What an automation needs to know of the record an event is about."""

    branch_id: str | None
    owner_id: str | None
    client_id: str | None = None
    deal_id: str | None = None
    pipeline_id: str | None = None
    stage_id: str | None = None


def record_of(event_type: str, payload: dict) -> Record:
    """The record behind an event: a client, a deal (in the stage it is in after the event), a complaint or
    an overdue task (whose owner is its assignee)."""
    if event_type == "client_created":
        client = payload["client"]
        return Record(client["branch_id"], client.get("owner_id"), client_id=client["id"])
    if event_type.startswith("deal_"):
        deal = payload["deal"]
        return Record(deal["branch_id"], deal.get("owner_id"), deal["client_id"], deal["id"], deal["pipeline_id"],
                      deal["stage_id"])
    if event_type == "complaint_created":
        complaint = payload["complaint"]
        return Record(complaint["branch_id"], complaint.get("owner_id"), complaint["client_id"], complaint.get("deal_id"))
    if event_type == "task_overdue":
        task = payload["task"]
        return Record(task["branch_id"], task["assignee_id"], task.get("client_id"), task.get("deal_id"))
    raise ValueError(f"automations do not follow {event_type}")


def matches(automation, event_type: str, record: Record) -> bool:
    """Whether an automation (event, branch, optional pipeline and stage, active) applies to an event."""
    return (
        automation.active
        and automation.event == event_type
        and automation.branch_id == record.branch_id
        and automation.pipeline_id in (None, record.pipeline_id)
        and automation.stage_id in (None, record.stage_id)
    )


def run_at(occurred_at: datetime, delay_hours: float) -> datetime:
    """When the automation's task is made: ``delay_hours`` after the event happened."""
    return occurred_at + timedelta(hours=delay_hours or 0)


def choose_assignee(assign_to: str, owner_id: str | None, heads: list[str]) -> str | None:
    """The record's owner or the branch's head (the first active one), each standing in for the other when
    missing (an unowned client, a branch without a head); None when the branch has neither."""
    head = heads[0] if heads else None
    if assign_to == "head":
        return head or owner_id
    return owner_id or head
