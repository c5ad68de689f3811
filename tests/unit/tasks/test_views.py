"""How tasks are shown: built directly for speed, and still exactly what the contract's schema dumps."""

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tasks import views
from tasks.domain import Amount
from tasks.models import Task
from tasks.schemas import task_out

NOW = datetime(2026, 11, 30, 21, 15, 7, 123456, tzinfo=UTC)


def schema_dump(row: Task) -> dict:
    """What the service showed before the direct build: the contract's schema over the row's columns."""
    penalty = Amount.stored(row.penalty_minor, row.penalty_currency)
    return task_out.dump({**views.columns(row), "overdue": row.overdue, "penalty": penalty.dump() if penalty else None})


def a_task(**changes) -> Task:
    fields = dict(
        id=str(uuid.uuid4()), branch_id=str(uuid.uuid4()), title="Перезвонить клиенту", description=None,
        status="open", assignee_id=str(uuid.uuid4()), author_id=None, client_id=None, deal_id=None, template_id=None,
        template_version=None, checklist=[], due_at=NOW + timedelta(hours=3), overdue_at=None, completed_at=None,
        cancelled_at=None, cancel_reason=None, penalty_minor=None, penalty_currency=None, created_at=NOW,
        updated_at=NOW, version=1,
    )
    return Task(**{**fields, **changes})


STEPS = [{"text": "Позвонить", "done": True, "done_at": "2026-11-30T20:00:00.5Z"},
         {"text": "Записать итог", "done": False, "done_at": None}]


@pytest.mark.parametrize("changes", [
    {},
    {"checklist": None},
    {"checklist": STEPS, "description": "Клиент просил после обеда", "author_id": str(uuid.uuid4()),
     "client_id": str(uuid.uuid4()), "deal_id": str(uuid.uuid4())},
    {"template_id": str(uuid.uuid4()), "template_version": 3, "penalty_minor": 125050, "penalty_currency": "EUR"},
    {"penalty_minor": 0, "penalty_currency": "RUB", "overdue_at": NOW, "version": 2},
    {"status": "done", "completed_at": NOW + timedelta(seconds=1), "checklist": [dict(STEPS[0])]},
    {"status": "cancelled", "cancelled_at": NOW, "cancel_reason": "Клиент отказался", "due_at": NOW - timedelta(days=400)},
    {"due_at": datetime(2026, 12, 1, 13, 0, tzinfo=timezone(timedelta(hours=3))), "created_at": datetime(2025, 1, 1, tzinfo=UTC)},
])
def test_a_task_is_shown_exactly_as_the_contracts_schema_dumps_it(changes):
    row = a_task(**changes)
    assert views.task(row) == schema_dump(row)
    assert list(views.task(row)) == list(schema_dump(row))  # the same keys in the same order
