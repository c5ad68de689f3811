"""A sales desk that writes events as the clients, deals, tasks services and the gateway publish them
(each checked against its contract), applied to the reports read model on the fake unit of work."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from crm_common.caller import Caller
from crm_common.events import validate_event
from crm_common.schemas import iso
from crm_common.testing.uow import FakeUnitOfWork
from reports import commands, projection
from reports.models import Base

NORTH, SOUTH = str(uuid.uuid4()), str(uuid.uuid4())
STAGES = [("Новая", "open"), ("Переговоры", "open"), ("Счёт", "open"), ("Успех", "won"), ("Отказ", "lost")]


def at(day: int, hour: int = 10, month: int = 11, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass
class Deal:
    """One deal's life as the deals service tells it: each step is a list of events."""

    desk: Desk
    pipeline: dict
    client_id: str
    owner_id: str
    amount: str = "1000.00"
    currency: str = "RUB"
    branch_id: str = NORTH
    id: str = field(default_factory=new_id)
    version: int = 0
    seq: int = 0
    stage: dict | None = None
    entered_at: datetime | None = None
    created_at: datetime | None = None
    status: str = "open"
    closed_at: datetime | None = None

    def snapshot(self) -> dict:
        return {
            "id": self.id, "client_id": self.client_id, "pipeline_id": self.pipeline["id"], "stage_id": self.stage["id"],
            "status": self.status, "title": "Поставка", "amount": self.amount, "currency": self.currency,
            "owner_id": self.owner_id, "branch_id": self.branch_id, "stage_entered_at": iso(self.entered_at),
            "stage_due_at": None, "stuck": False, "lost_reason": "Дорого" if self.status == "lost" else None,
            "closed_at": iso(self.closed_at) if self.closed_at else None, "created_at": iso(self.created_at),
            "updated_at": iso(self.entered_at), "version": self.version,
        }

    def create(self, when: datetime) -> list:
        self.stage, self.entered_at, self.created_at, self.version, self.seq = self.pipeline["stages"][0], when, when, 1, 1
        return [self.desk.event("deal_created", {"deal": self.snapshot(), "stage": ref(self.stage)}, when,
                                actor=self.owner_id)]

    def move(self, stage_name: str, when: datetime, actor: str | None = None) -> list:
        target = next(s for s in self.pipeline["stages"] if s["name"] == stage_name)
        source, spent = self.stage, (when - self.entered_at).total_seconds()
        previous_status = self.status
        self.stage, self.entered_at, self.version, self.seq = target, when, self.version + 1, self.seq + 1
        self.status = {"won": "won", "lost": "lost"}.get(target["kind"], "open")
        self.closed_at = when if self.status != "open" else None
        actor = actor or self.owner_id
        base = {"deal": self.snapshot()}
        events = [self.desk.event("deal_stage_changed", {**base, "from_stage": ref(source), "to_stage": ref(target),
                                                         "time_in_stage_s": spent, "seq": self.seq}, when, actor)]
        if self.status == "won":
            events.append(self.desk.event("deal_won", {**base, "stage": ref(target)}, when, actor))
        elif self.status == "lost":
            events.append(self.desk.event("deal_lost", {**base, "stage": ref(target), "reason": "Дорого"}, when, actor))
        elif previous_status != "open":
            events.append(self.desk.event("deal_reopened", {**base, "stage": ref(target), "from_status": previous_status},
                                          when, actor))
        return events

    def update(self, when: datetime, **changes) -> list:
        for name, value in changes.items():
            setattr(self, name, value)
        self.version += 1
        return [self.desk.event("deal_updated", {"deal": self.snapshot(), "changed": list(changes)}, when)]


def ref(stage: dict) -> dict:
    return {"id": stage["id"], "name": stage["name"], "kind": stage["kind"], "position": stage["position"]}


class Desk:
    def __init__(self, uow: FakeUnitOfWork):
        self.uow = uow
        self.admin = Caller(new_id(), "admin", None)
        self.head = Caller(new_id(), "head", NORTH)
        self.manager = Caller(new_id(), "manager", NORTH)
        self.other = Caller(new_id(), "manager", NORTH)
        self.south_head = Caller(new_id(), "head", SOUTH)

    def event(self, event_type: str, payload: dict, when: datetime, actor: str | None = None) -> tuple[str, dict]:
        branch = payload.get("branch_id") or next(
            (v["branch_id"] for v in payload.values() if isinstance(v, dict) and "branch_id" in v), NORTH)
        full = {"event_id": new_id(), "occurred_at": when, "branch_id": branch, "actor_id": actor, **payload}
        return event_type, validate_event(event_type, full)

    def apply(self, *event_lists) -> None:
        for events in event_lists:
            for event_type, payload in events if isinstance(events, list) else [events]:
                self.uow.call(projection.apply_event, event_type, payload)

    def people(self) -> list:
        out = [self.event("branch_created", {"branch": {"id": NORTH, "name": "Север", "code": "N",
                                                        "created_at": iso(at(1, month=1))}}, at(1, month=1))]
        for caller, name in ((self.head, "Ольга"), (self.manager, "Анна"), (self.other, "Борис")):
            user = {"id": caller.id, "email": f"{caller.id[:8]}@crm.test", "name": name, "role": caller.role,
                    "branch_id": caller.branch_id, "active": True, "created_at": iso(at(1, month=1)),
                    "updated_at": iso(at(1, month=1))}
            out.append(self.event("user_created", {"user": user}, at(1, month=1)))
        return out

    def pipeline(self, stages=STAGES, branch: str = NORTH) -> tuple[dict, list]:
        pipeline = {"id": new_id(), "branch_id": branch, "name": "Опт", "version": 1,
                    "created_at": iso(at(1, month=1)), "updated_at": iso(at(1, month=1)),
                    "stages": [{"id": new_id(), "name": name, "kind": kind, "position": index, "max_days": None,
                                "script_id": None} for index, (name, kind) in enumerate(stages)]}
        return pipeline, [self.event("pipeline_created", {"pipeline": pipeline}, at(1, month=1))]

    def client(self, created: datetime, source: str | None = None, tags=(), branch: str = NORTH,
               client_id: str | None = None, archived: datetime | None = None, version: int = 1,
               event: str = "client_created") -> tuple[str, dict]:
        client = {"id": client_id or new_id(), "kind": "person", "name": "Иван", "phones": [], "emails": [],
                  "source": source, "tags": list(tags), "custom_fields": {}, "owner_id": self.manager.id,
                  "branch_id": branch, "archived": archived is not None,
                  "archived_at": iso(archived) if archived else None, "created_at": iso(created),
                  "updated_at": iso(archived or created), "version": version}
        extra = {"changed": ["tags"]} if event == "client_updated" else {}
        return self.event(event, {"client": client, **extra}, archived or created)

    def deal(self, pipeline: dict, client_id: str | None = None, owner: Caller | None = None, **fields) -> Deal:
        return Deal(self, pipeline, client_id or new_id(), (owner or self.manager).id, **fields)

    def report(self, name: str, caller: Caller | None = None, **query) -> dict:
        query = {("from" if k == "from_" else k): v for k, v in query.items()}
        return self.uow.read(commands.REPORTS[name], caller or self.head, query)


@pytest.fixture
def desk():
    with FakeUnitOfWork(Base) as uow:
        yield Desk(uow)


def days(n: float) -> timedelta:
    return timedelta(days=n)
