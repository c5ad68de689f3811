"""A small sales office to drive the tasks use cases on crm_common's fake unit of work.

Each call runs like an RPC entrypoint on a worker (``uow.call``): a fresh session on an in-memory SQLite
database, one transaction, events kept only if it commits.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import update

from crm_common.caller import Caller
from crm_common.schemas import iso
from crm_common.testing.uow import FakeUnitOfWork
from tasks import commands
from tasks.domain import Amount
from tasks.models import Base, Task

NORTH, SOUTH = str(uuid.uuid4()), str(uuid.uuid4())
POLICY = commands.Policy(Amount(50000, "RUB"), complaint_sla_hours=24, stuck_task_hours=24)


def _user() -> str:
    return str(uuid.uuid4())


def later(hours: float = 24) -> str:
    return iso(datetime.now(UTC) + timedelta(hours=hours))


def user_event(user_id: str, role: str, branch_id: str | None, active: bool = True, name: str = "Анна",
               updated_at: str = "2026-01-01T00:00:00Z", event_type: str = "user_created") -> dict:
    payload = {"event_id": str(uuid.uuid4()), "occurred_at": updated_at, "branch_id": branch_id, "actor_id": None,
               "user": {"id": user_id, "email": f"{user_id[:8]}@example.ru", "name": name, "role": role,
                        "branch_id": branch_id, "active": active, "created_at": updated_at,
                        "updated_at": updated_at}}
    if event_type == "user_updated":
        payload["changed"] = ["active"]
    return payload


class Office:
    """Callers of two branches, the users the tasks service has heard of, and short ways to make records."""

    north, south = NORTH, SOUTH
    head = Caller(_user(), "head", NORTH)
    manager = Caller(_user(), "manager", NORTH)
    other_manager = Caller(_user(), "manager", NORTH)
    south_head = Caller(_user(), "head", SOUTH)
    south_manager = Caller(_user(), "manager", SOUTH)
    admin = Caller(_user(), "admin", None)
    retired = _user()
    policy = POLICY

    def __init__(self, uow: FakeUnitOfWork):
        self.uow = uow
        self.directory = {"users": {
            self.manager.id: {"branch_id": NORTH, "role": "manager", "active": True},
            self.other_manager.id: {"branch_id": NORTH, "role": "manager", "active": True},
            self.head.id: {"branch_id": NORTH, "role": "head", "active": True},
            self.south_manager.id: {"branch_id": SOUTH, "role": "manager", "active": True},
            self.retired: {"branch_id": NORTH, "role": "manager", "active": False},
        }}
        for caller in (self.head, self.manager, self.other_manager, self.south_head, self.south_manager, self.admin):
            uow.call(commands.remember_user, "user_created", user_event(caller.id, caller.role, caller.branch_id))
        uow.take_events()

    def client(self, owner: Caller | None = None, branch: str = NORTH) -> dict:
        owner = owner or self.manager
        return {"id": str(uuid.uuid4()), "branch_id": branch, "owner_id": owner.id if owner else None,
                "name": "ООО Берёза", "archived": False}

    def deal(self, client: dict, pipeline_id: str | None = None, stage_id: str | None = None, **extra) -> dict:
        return {"id": str(uuid.uuid4()), "client_id": client["id"], "branch_id": client["branch_id"],
                "owner_id": client["owner_id"], "pipeline_id": pipeline_id or str(uuid.uuid4()),
                "stage_id": stage_id or str(uuid.uuid4()), "title": "Поставка", "amount": "100.00",
                "currency": "RUB", "status": "open", "stage_entered_at": "2026-01-01T00:00:00Z",
                "stage_due_at": None, "stuck": False, "lost_reason": None, "closed_at": None,
                "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z", "version": 1, **extra}

    def task(self, caller: Caller | None = None, client=None, deal=None, directory=None, **fields) -> dict:
        caller = caller or self.manager
        raw = {"title": "Перезвонить клиенту", "due_at": later(), **fields}
        data = commands.load_new_task(raw)
        return self.uow.call(commands.create_task, caller, data, client, deal,
                             self.directory if directory is None else directory)

    def template(self, caller: Caller | None = None, **fields) -> dict:
        raw = {"name": "Первый звонок", "process": "Продажа", "instruction": "Позвоните и представьтесь.",
               "checklist": ["Представиться", "Выявить потребность"], "due_in_hours": 24, **fields}
        return self.uow.call(commands.create_template, caller or self.head, raw)

    def automation(self, template: dict, caller: Caller | None = None, pipeline: dict | None = None, **fields) -> dict:
        raw = {"event": "deal_created", "template_id": template["id"], "assign_to": "owner", **fields}
        return self.uow.call(commands.create_automation, caller or self.head, raw, pipeline)

    def backdate(self, task_id: str, hours: float = 1) -> None:
        """Move a task's deadline into the past, as time passing would."""
        with self.uow.transaction() as session:
            session.execute(update(Task).where(Task.id == task_id).values(
                due_at=datetime.now(UTC) - timedelta(hours=hours)))
        self.uow.close()

    def check(self) -> int:
        try:
            return commands.Deadlines(self.uow, self.policy).check()
        finally:
            self.uow.close()

    def events(self, event_type: str | None = None) -> list[dict]:
        return [payload for kind, payload in self.uow.events if event_type in (None, kind)]


@pytest.fixture
def uow():
    with FakeUnitOfWork(Base) as unit:
        yield unit


@pytest.fixture
def office(uow) -> Office:
    return Office(uow)


def amount(text: str) -> Decimal:
    return Decimal(text)
