"""A small sales desk to drive the deals use cases on crm_common's fake unit of work.

Each call runs like an RPC entrypoint on a worker (``uow.call``): a fresh session on an in-memory SQLite
database, one transaction, events kept only if it commits.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from crm_common.caller import Caller
from crm_common.contracts.deals import DealQuerySchema
from crm_common.schemas import load_or_raise
from crm_common.testing.uow import FakeUnitOfWork
from deals import commands, views
from deals.models import Base, Deal, Stage, StageVisit

NORTH, SOUTH = str(uuid.uuid4()), str(uuid.uuid4())

STAGES = [
    {"name": "Новая", "kind": "open", "max_days": 2},
    {"name": "Переговоры", "kind": "open"},
    {"name": "Договор", "kind": "open", "max_days": 0.5},
    {"name": "Успех", "kind": "won"},
    {"name": "Отказ", "kind": "lost"},
]


def _user() -> str:
    return str(uuid.uuid4())


class SalesDesk:
    """Callers of two branches and short ways to build pipelines, clients and deals for a test."""

    north, south = NORTH, SOUTH
    head = Caller(_user(), "head", NORTH)
    manager = Caller(_user(), "manager", NORTH)
    other_manager = Caller(_user(), "manager", NORTH)
    south_head = Caller(_user(), "head", SOUTH)
    south_manager = Caller(_user(), "manager", SOUTH)
    admin = Caller(_user(), "admin", None)
    retired = _user()
    directory = {
        "users": {
            manager.id: {"branch_id": NORTH, "role": "manager", "active": True},
            other_manager.id: {"branch_id": NORTH, "role": "manager", "active": True},
            head.id: {"branch_id": NORTH, "role": "head", "active": True},
            south_manager.id: {"branch_id": SOUTH, "role": "manager", "active": True},
            retired: {"branch_id": NORTH, "role": "manager", "active": False},
        }
    }

    def __init__(self, uow: FakeUnitOfWork):
        self.uow = uow

    def pipeline(self, caller: Caller | None = None, stages=None, name: str = "Опт", **extra) -> dict:
        raw = {"name": name, "stages": [dict(s) for s in (stages or STAGES)], **extra}
        pipeline = self.uow.call(commands.create_pipeline, caller or self.head, raw)
        self.uow.take_events()  # pipeline_created: the tests that want it create the pipeline themselves
        return pipeline

    @staticmethod
    def stage(pipeline: dict, name: str) -> dict:
        return next(stage for stage in pipeline["stages"] if stage["name"] == name)

    @staticmethod
    def client(owner: Caller | str | None = None, branch: str = NORTH, archived: bool = False) -> dict:
        owner_id = owner.id if isinstance(owner, Caller) else owner
        return {"id": str(uuid.uuid4()), "branch_id": branch, "owner_id": owner_id, "archived": archived,
                "kind": "company", "name": "ООО Берёза"}

    def deal(self, pipeline: dict, caller: Caller | None = None, client: dict | None = None, directory=None,
             **fields) -> dict:
        caller = caller or self.head
        if client is None:
            client = self.client(owner=caller if caller.is_manager else self.manager, branch=pipeline["branch_id"])
        raw = {"client_id": client["id"], "pipeline_id": pipeline["id"], "title": "Поставка", "amount": "1250.50",
               "currency": "RUB", **fields}
        data = commands.load_new_deal(raw)
        return self.uow.call(commands.create_deal, caller, data, client, directory or self.directory)

    def move(self, deal: dict | str, stage: dict | str, caller: Caller | None = None, reason: str | None = None,
             expected_version=None) -> dict:
        deal_id = deal if isinstance(deal, str) else deal["id"]
        raw = {"stage_id": stage if isinstance(stage, str) else stage["id"]}
        if reason is not None:
            raw["lost_reason"] = reason
        return self.uow.call(commands.move_deal, caller or self.head, deal_id, raw, expected_version)

    def update(self, deal: dict, changes: dict, caller: Caller | None = None, expected_version=None) -> dict:
        return self.uow.call(commands.update_deal, caller or self.head, deal["id"], changes, expected_version,
                             self.directory)

    def get(self, deal: dict | str, caller: Caller | None = None) -> dict:
        deal_id = deal if isinstance(deal, str) else deal["id"]
        return self.uow.read(lambda s: views.dump_deal(s, commands.require_deal(s, caller or self.head, deal_id)))

    def history(self, deal: dict, caller: Caller | None = None) -> list[dict]:
        page = self.uow.read(commands.deal_history, caller or self.head, deal["id"], {"cursor": None, "limit": 200})
        return page["items"]

    def list(self, caller: Caller | None = None, **query) -> list[dict]:
        filters = load_or_raise(DealQuerySchema(), {"limit": "200", **query})
        return self.uow.read(views.list_deals, caller or self.head, filters)["items"]

    def stored(self, deal: dict | str) -> Deal:
        deal_id = deal if isinstance(deal, str) else deal["id"]
        return self.uow.read(lambda s: s.get(Deal, deal_id))

    def stored_stage(self, stage_id: str) -> Stage:
        return self.uow.read(lambda s: s.get(Stage, stage_id))

    def backdate(self, deal: dict | str, days: float) -> None:
        """Pretend the deal entered its current stage ``days`` earlier (without touching its version)."""
        deal_id = deal if isinstance(deal, str) else deal["id"]
        shift = timedelta(days=days)
        session = self.uow.session
        stored = session.get(Deal, deal_id)
        session.execute(
            update(Deal.__table__).where(Deal.__table__.c.id == deal_id).values(
                stage_entered_at=stored.stage_entered_at - shift,
                stage_due_at=None if stored.stage_due_at is None else stored.stage_due_at - shift,
            )
        )
        visit = session.scalars(
            select(StageVisit).where(StageVisit.deal_id == deal_id, StageVisit.exited_at.is_(None))
        ).one()
        session.execute(
            update(StageVisit.__table__).where(StageVisit.__table__.c.id == visit.id)
            .values(entered_at=visit.entered_at - shift)
        )
        session.commit()
        self.uow.close()

    def set_due(self, deal: dict | str, due: datetime | None) -> None:
        deal_id = deal if isinstance(deal, str) else deal["id"]
        self.uow.session.execute(
            update(Deal.__table__).where(Deal.__table__.c.id == deal_id).values(stage_due_at=due)
        )
        self.uow.session.commit()
        self.uow.close()


@pytest.fixture
def uow():
    with FakeUnitOfWork(Base) as unit:
        yield unit


@pytest.fixture
def sales(uow) -> SalesDesk:
    return SalesDesk(uow)
