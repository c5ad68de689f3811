"""Stuck deals: raised once per stage entry, without anyone asking, for open deals past their stage's limit."""

from datetime import timedelta

import pytest

from crm_common.clock import utcnow
from crm_common.events import EVENTS
from deals import commands

LATER = timedelta(days=30)


def raise_stuck(sales, now, batch: int = 500) -> int:
    return sales.uow.call(commands.raise_stuck_deals, now=now, batch=batch)


def stuck_events(sales) -> list[dict]:
    return [payload for event_type, payload in sales.uow.events if event_type == "deal_stuck"]


def test_a_deal_past_its_stage_limit_is_raised_with_its_stage_and_days(sales):
    pipeline = sales.pipeline()
    deal = sales.deal(pipeline, caller=sales.manager)
    entered = sales.stored(deal).stage_entered_at
    now = entered + timedelta(days=2, hours=12)

    assert raise_stuck(sales, now) == 1

    [payload] = stuck_events(sales)
    assert EVENTS["deal_stuck"]().validate(payload) == {}
    assert payload["branch_id"] == sales.north
    assert payload["stage"] == {"id": deal["stage_id"], "name": "Новая", "kind": "open", "position": 0}
    assert (payload["max_days"], payload["days_in_stage"]) == (2.0, 2.5)
    assert (payload["deal"]["id"], payload["deal"]["owner_id"], payload["deal"]["stuck"]) == (deal["id"], sales.manager.id, True)
    assert sales.stored(deal).stuck_raised_at == now


@pytest.mark.parametrize(("offset", "raised"), [(timedelta(0), 1), (timedelta(microseconds=-1), 0)])
def test_a_deal_is_raised_from_the_moment_its_stage_limit_passes(sales, offset, raised):
    deal = sales.deal(sales.pipeline())

    assert raise_stuck(sales, sales.stored(deal).stage_due_at + offset) == raised
    assert len(stuck_events(sales)) == raised


def test_a_fractional_limit_raises_a_deal_after_that_part_of_a_day(sales):
    pipeline = sales.pipeline()
    deal = sales.move(sales.deal(pipeline), sales.stage(pipeline, "Договор"))
    entered = sales.stored(deal).stage_entered_at

    assert raise_stuck(sales, entered + timedelta(hours=11, minutes=59)) == 0
    assert raise_stuck(sales, entered + timedelta(hours=12)) == 1


def test_a_stuck_deal_is_raised_once_however_often_the_check_runs(sales):
    deal = sales.deal(sales.pipeline())
    due = sales.stored(deal).stage_due_at

    assert raise_stuck(sales, due + timedelta(hours=1)) == 1
    assert raise_stuck(sales, due + timedelta(hours=2)) == 0
    assert raise_stuck(sales, due + LATER) == 0

    assert len(stuck_events(sales)) == 1


def test_a_deal_that_leaves_and_reenters_a_stage_is_raised_again_for_the_new_entry(sales):
    pipeline = sales.pipeline()
    new, talks = sales.stage(pipeline, "Новая"), sales.stage(pipeline, "Переговоры")
    deal = sales.deal(pipeline)
    sales.backdate(deal, 3)
    assert raise_stuck(sales, utcnow()) == 1

    sales.move(deal, talks)
    sales.move(deal, new)
    assert sales.stored(deal).stuck_raised_at is None
    assert raise_stuck(sales, utcnow()) == 0

    assert raise_stuck(sales, utcnow() + timedelta(days=2, minutes=1)) == 1
    first, second = stuck_events(sales)
    assert first["deal"]["id"] == second["deal"]["id"] == deal["id"]
    assert first["event_id"] != second["event_id"]


def test_deals_in_untimed_stages_and_closed_deals_are_never_raised(sales):
    pipeline = sales.pipeline()
    untimed = sales.move(sales.deal(pipeline), sales.stage(pipeline, "Переговоры"))
    won = sales.move(sales.deal(pipeline), sales.stage(pipeline, "Успех"))
    lost = sales.move(sales.deal(pipeline), sales.stage(pipeline, "Отказ"), reason="Дорого")
    for deal in (untimed, won, lost):
        sales.backdate(deal, 400)

    assert raise_stuck(sales, utcnow() + timedelta(days=3650)) == 0
    assert stuck_events(sales) == []


def test_a_closed_deal_is_not_raised_even_if_a_due_time_was_left_on_it(sales):
    pipeline = sales.pipeline()
    deal = sales.move(sales.deal(pipeline), sales.stage(pipeline, "Успех"))
    sales.set_due(deal, utcnow() - timedelta(days=1))

    assert raise_stuck(sales, utcnow()) == 0


def test_stuck_deals_are_raised_in_batches_until_none_is_left(sales):
    pipeline = sales.pipeline()
    deals = [sales.deal(pipeline) for _ in range(5)]
    sales.uow.take_events()

    assert raise_stuck(sales, utcnow() + timedelta(days=3), batch=2) == 5

    assert sorted(p["deal"]["id"] for p in stuck_events(sales)) == sorted(d["id"] for d in deals)
    assert raise_stuck(sales, utcnow() + timedelta(days=4), batch=2) == 0


def test_a_batch_that_ends_exactly_on_the_last_deal_still_raises_them_all(sales):
    pipeline = sales.pipeline()
    for _ in range(4):
        sales.deal(pipeline)

    assert raise_stuck(sales, utcnow() + timedelta(days=3), batch=2) == 4
    assert len(stuck_events(sales)) == 4


def test_only_deals_already_due_are_raised(sales):
    pipeline = sales.pipeline()
    overdue, fresh = sales.deal(pipeline), sales.deal(pipeline)
    sales.backdate(overdue, 2.5)

    assert raise_stuck(sales, utcnow()) == 1
    assert [p["deal"]["id"] for p in stuck_events(sales)] == [overdue["id"]]
    assert sales.stored(fresh).stuck_raised_at is None


def test_a_stuck_deal_raised_keeps_its_version(sales):
    deal = sales.deal(sales.pipeline())

    raise_stuck(sales, sales.stored(deal).stage_due_at)

    assert sales.get(deal)["version"] == 1


def test_retiming_a_stage_does_not_raise_again_a_deal_already_raised_that_is_still_past_the_new_limit(sales):
    pipeline = sales.pipeline()
    deal = sales.deal(pipeline)
    sales.backdate(deal, 5)
    assert raise_stuck(sales, utcnow()) == 1
    stages = [{k: s[k] for k in ("id", "name", "kind", "max_days")} for s in pipeline["stages"]]
    stages[0]["max_days"] = 3

    sales.uow.call(commands.update_pipeline, sales.head, pipeline["id"], {"stages": stages})

    assert sales.get(deal)["stuck"] is True
    assert raise_stuck(sales, utcnow()) == 0
    assert len(stuck_events(sales)) == 1


def test_a_deal_not_yet_raised_is_raised_once_a_shorter_limit_makes_it_due(sales):
    pipeline = sales.pipeline()
    deal = sales.deal(pipeline)
    sales.backdate(deal, 1)
    assert raise_stuck(sales, utcnow()) == 0
    stages = [{k: s[k] for k in ("id", "name", "kind", "max_days")} for s in pipeline["stages"]]
    stages[0]["max_days"] = 0.5

    sales.uow.call(commands.update_pipeline, sales.head, pipeline["id"], {"stages": stages})

    assert raise_stuck(sales, utcnow()) == 1
    assert stuck_events(sales)[0]["max_days"] == 0.5
