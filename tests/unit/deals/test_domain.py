"""The rules of the sales process with plain objects: money, time limits, stage moves, pipeline changes."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from crm_common.errors import Conflict, ValidationError
from deals.domain import StageInfo, days_between, due_at, from_minor, plan_move, plan_stages, status_of, to_minor

PIPELINE, OTHER_PIPELINE = "pipeline-1", "pipeline-2"
NEW = StageInfo("new", "Новая", "open", PIPELINE)
TALKS = StageInfo("talks", "Переговоры", "open", PIPELINE)
WON = StageInfo("won", "Успех", "won", PIPELINE)
LOST = StageInfo("lost", "Отказ", "lost", PIPELINE)
FORGOTTEN = StageInfo("forgotten", "Звонок", "open", PIPELINE, removed=True)
ELSEWHERE = StageInfo("elsewhere", "Новая", "open", OTHER_PIPELINE)
ENTERED = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("amount", "minor"),
    [
        ("0.00", 0),
        ("0.01", 1),
        ("0.10", 10),
        ("1250.50", 125050),
        ("19.99", 1999),
        ("999999999999.99", 99999999999999),
    ],
)
def test_amounts_become_minor_units_and_come_back_exactly(amount, minor):
    assert to_minor(Decimal(amount)) == minor
    assert isinstance(to_minor(Decimal(amount)), int)
    assert str(from_minor(minor)) == amount


def test_an_amount_of_whole_units_reads_back_with_two_places():
    assert str(from_minor(to_minor(Decimal("7")))) == "7.00"


@pytest.mark.parametrize(
    ("max_days", "after"),
    [
        (2, timedelta(days=2)),
        (0.5, timedelta(hours=12)),
        (0.25, timedelta(hours=6)),
        (1.5, timedelta(hours=36)),
        (1 / 24, timedelta(hours=1)),
    ],
)
def test_a_deal_becomes_due_max_days_after_it_entered_its_stage(max_days, after):
    assert due_at(ENTERED, max_days) == ENTERED + after


def test_a_stage_without_a_time_limit_never_makes_a_deal_due():
    assert due_at(ENTERED, None) is None


def test_days_between_counts_fractions_of_a_day():
    assert days_between(ENTERED, ENTERED + timedelta(hours=36)) == 1.5


@pytest.mark.parametrize("kind", ["open", "won", "lost"])
def test_a_deal_takes_the_status_of_its_stage_kind(kind):
    assert status_of(kind) == kind


@pytest.mark.parametrize(
    ("current", "target", "reason", "events"),
    [
        (NEW, TALKS, None, ["deal_stage_changed"]),
        (TALKS, NEW, None, ["deal_stage_changed"]),
        (NEW, WON, None, ["deal_stage_changed", "deal_won"]),
        (NEW, LOST, "Дорого", ["deal_stage_changed", "deal_lost"]),
        (WON, TALKS, None, ["deal_stage_changed", "deal_reopened"]),
        (LOST, NEW, None, ["deal_stage_changed", "deal_reopened"]),
        (LOST, WON, None, ["deal_stage_changed", "deal_won"]),
        (WON, LOST, "Вернули товар", ["deal_stage_changed", "deal_lost"]),
    ],
)
def test_a_move_names_the_events_it_raises(current, target, reason, events):
    move = plan_move(current, target, PIPELINE, reason)

    assert move.events == events


@pytest.mark.parametrize(("current", "reason"), [(NEW, None), (TALKS, None), (WON, None), (LOST, "Дорого")])
def test_moving_a_deal_to_the_stage_it_is_in_is_no_move(current, reason):
    assert plan_move(current, current, PIPELINE, reason) is None


@pytest.mark.parametrize("target", [None, ELSEWHERE], ids=["unknown", "of another pipeline"])
def test_a_stage_outside_the_deals_pipeline_is_refused_naming_stage_id(target):
    with pytest.raises(ValidationError) as error:
        plan_move(NEW, target, PIPELINE, None)

    assert list(error.value.fields) == ["stage_id"]


def test_a_removed_stage_cannot_be_entered():
    with pytest.raises(ValidationError) as error:
        plan_move(NEW, FORGOTTEN, PIPELINE, None)

    assert list(error.value.fields) == ["stage_id"]


@pytest.mark.parametrize("reason", [None, ""])
def test_losing_a_deal_needs_a_reason(reason):
    with pytest.raises(ValidationError) as error:
        plan_move(NEW, LOST, PIPELINE, reason)

    assert list(error.value.fields) == ["lost_reason"]


@pytest.mark.parametrize("target", [TALKS, WON])
def test_only_a_lost_deal_has_a_reason(target):
    with pytest.raises(ValidationError) as error:
        plan_move(NEW, target, PIPELINE, "Дорого")

    assert list(error.value.fields) == ["lost_reason"]


def _existing(*stages: StageInfo) -> dict[str, StageInfo]:
    return {stage.id: stage for stage in stages}


def _wanted(stage: StageInfo, **changes) -> dict:
    return {"id": stage.id, "name": stage.name, "kind": stage.kind, "max_days": None, "script_id": None, **changes}


def test_a_stage_plan_keeps_changes_adds_and_removes_stages_in_the_new_order():
    fresh = {"id": None, "name": "Счёт", "kind": "open", "max_days": 1, "script_id": None}
    wanted = [_wanted(TALKS, name="Встреча"), _wanted(NEW), fresh, _wanted(WON), _wanted(LOST)]
    existing = _existing(NEW, TALKS, WON, LOST, StageInfo("call", "Звонок", "open", PIPELINE))

    plan = plan_stages(existing, wanted, {"new": 3, "won": 1})

    assert plan.keep == [("talks", wanted[0], 0), ("new", wanted[1], 1), ("won", wanted[3], 3), ("lost", wanted[4], 4)]
    assert plan.add == [(fresh, 2)]
    assert plan.remove == ["call"]


def test_a_stage_with_deals_cannot_be_removed():
    with pytest.raises(Conflict) as error:
        plan_stages(_existing(NEW, TALKS, WON, LOST), [_wanted(NEW), _wanted(WON), _wanted(LOST)], {"talks": 2})

    assert list(error.value.fields) == ["stages"]
    assert error.value.details == {"stage_id": "talks", "deals": 2}


def test_a_stage_whose_deals_all_left_can_be_removed():
    plan = plan_stages(_existing(NEW, TALKS, WON, LOST), [_wanted(NEW), _wanted(WON), _wanted(LOST)], {"talks": 0})

    assert plan.remove == ["talks"]


def test_the_kind_of_a_stage_with_deals_cannot_change():
    wanted = [_wanted(NEW), _wanted(TALKS, kind="won"), _wanted(WON), _wanted(LOST)]

    with pytest.raises(Conflict) as error:
        plan_stages(_existing(NEW, TALKS, WON, LOST), wanted, {"talks": 1})

    assert list(error.value.fields) == ["stages.1.kind"]


def test_the_kind_of_an_empty_stage_may_change():
    wanted = [_wanted(NEW), _wanted(TALKS, kind="won"), _wanted(WON), _wanted(LOST)]

    plan = plan_stages(_existing(NEW, TALKS, WON, LOST), wanted, {"new": 4})

    assert plan.keep[1] == ("talks", wanted[1], 1) and plan.remove == []


@pytest.mark.parametrize("stranger", [ELSEWHERE, FORGOTTEN], ids=["unknown", "removed"])
def test_a_stage_id_that_is_not_a_live_stage_of_the_pipeline_is_refused_naming_its_position(stranger):
    wanted = [_wanted(NEW), _wanted(WON), _wanted(stranger), _wanted(LOST)]

    with pytest.raises(ValidationError) as error:
        plan_stages(_existing(NEW, WON, LOST, FORGOTTEN), wanted, {})

    assert list(error.value.fields) == ["stages.2.id"]


def test_a_stage_removed_earlier_is_not_removed_again():
    plan = plan_stages(_existing(NEW, WON, LOST, FORGOTTEN), [_wanted(NEW), _wanted(WON), _wanted(LOST)], {})

    assert plan.remove == []
