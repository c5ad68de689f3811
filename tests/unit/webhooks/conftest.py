"""The webhooks use cases on crm_common's fake unit of work (an in-memory SQLite database)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from crm_common.caller import Caller
from crm_common.schemas import iso
from crm_common.testing.uow import FakeUnitOfWork
from webhooks import commands
from webhooks.models import Base
from webhooks.secrets import SecretBox

NORTH, SOUTH = str(uuid.uuid4()), str(uuid.uuid4())
SECRET = "whsec_0123456789abcdef"
POLICY = commands.Policy(retry_base_s=10, retry_for_s=3600, timeout_s=5)


@pytest.fixture
def uow():
    with FakeUnitOfWork(Base) as unit:
        yield unit


@pytest.fixture
def box() -> SecretBox:
    return SecretBox("a-key-for-the-unit-tests-0123456789abcdef")


class Office:
    admin = Caller(str(uuid.uuid4()), "admin", None)
    head = Caller(str(uuid.uuid4()), "head", NORTH)
    south_head = Caller(str(uuid.uuid4()), "head", SOUTH)
    manager = Caller(str(uuid.uuid4()), "manager", NORTH)
    north, south = NORTH, SOUTH

    def __init__(self, uow, box):
        self.uow, self.box = uow, box

    def webhook(self, caller=None, **fields) -> dict:
        raw = {"url": "https://erp.example.com/hooks", "events": ["client_created", "deal_won"], "secret": SECRET,
               **fields}
        return self.uow.call(commands.create_webhook, caller or self.admin, commands.load_new_webhook(raw), self.box)

    def event(self, event_type="client_created", branch_id=NORTH, event_id=None) -> dict:
        return {"event_id": event_id or str(uuid.uuid4()), "occurred_at": iso(datetime.now(UTC)),
                "branch_id": branch_id, "actor_id": None, "client": {"id": str(uuid.uuid4()), "name": "ООО Берёза"}}

    def record(self, event_type="client_created", payload=None, **kwargs) -> int:
        return self.uow.call(commands.record_event, event_type, payload or self.event(event_type, **kwargs))


@pytest.fixture
def office(uow, box) -> Office:
    return Office(uow, box)
