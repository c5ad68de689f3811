"""How deals are shown: built directly for speed, and still exactly what the contract's schema dumps."""

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from deals import domain, views
from deals.models import Deal, Script, Stage
from deals.schemas import deal_out

NOW = datetime(2026, 11, 30, 21, 15, 7, 123456, tzinfo=UTC)


def schema_dump(view: views.DealView, deal: Deal, stage: Stage, script: Script | None) -> dict:
    """What the service showed before the direct build: the contract's schema over the row's columns."""
    stage_data = {"id": stage.id, "name": stage.name, "kind": stage.kind, "max_days": stage.max_days}
    if view.with_script:
        stage_data["script"] = ({"id": script.id, "title": script.title, "body": script.body, "version": script.version}
                                if script else None)
    return deal_out.dump({
        **views.columns(deal), "amount": domain.from_minor(deal.amount_minor), "stage": stage_data,
        "stuck": bool(deal.status == "open" and deal.stage_due_at and deal.stage_due_at <= view.now),
    })


def a_deal(**changes) -> Deal:
    fields = dict(
        id=str(uuid.uuid4()), branch_id=str(uuid.uuid4()), client_id=str(uuid.uuid4()), pipeline_id=str(uuid.uuid4()),
        stage_id=str(uuid.uuid4()), status="open", title="Поставка", amount_minor=12345678, currency="RUB",
        owner_id=str(uuid.uuid4()), stage_entered_at=NOW - timedelta(days=3), stage_due_at=NOW + timedelta(days=2),
        stuck_raised_at=None, lost_reason=None, closed_at=None, created_at=NOW - timedelta(days=30), updated_at=NOW,
        version=4,
    )
    return Deal(**{**fields, **changes})


def a_stage(**changes) -> Stage:
    return Stage(**{**dict(id=str(uuid.uuid4()), pipeline_id=str(uuid.uuid4()), name="КП отправлено", kind="open",
                           position=1, max_days=5.0, script_id=None), **changes})


SCRIPT = Script(id=str(uuid.uuid4()), branch_id=str(uuid.uuid4()), title="Звонок", body="Здравствуйте!", version=2)


@pytest.mark.parametrize(("deal", "stage"), [
    ({}, {}),
    ({"stage_due_at": NOW - timedelta(seconds=1), "owner_id": None, "amount_minor": 0}, {"max_days": 0.5}),
    ({"stage_due_at": None}, {"max_days": None}),
    ({"status": "won", "closed_at": NOW, "stage_due_at": None}, {"kind": "won", "max_days": None}),
    ({"status": "lost", "lost_reason": "Дорого", "closed_at": NOW.astimezone(timezone(timedelta(hours=3)))},
     {"kind": "lost", "max_days": None}),
])
@pytest.mark.parametrize(("with_script", "script"), [(False, None), (True, None), (True, SCRIPT)])
def test_a_deal_is_shown_exactly_as_the_contracts_schema_dumps_it(deal, stage, with_script, script):
    view = views.DealView(None, with_script=with_script, now=NOW)
    row, stage_row = a_deal(**deal), a_stage(**stage)
    shown = view.one(row, stage_row, script)
    assert shown == schema_dump(view, row, stage_row, script)
    assert list(shown) == list(schema_dump(view, row, stage_row, script))  # the same keys in the same order
