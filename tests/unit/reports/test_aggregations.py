"""The reports' arithmetic on hand-made event lists: funnel, median days, client base, ROI, plan fulfilment,
manager KPIs, script use; and that duplicates and any order of events give the same answers."""

import random

import pytest

from crm_common.errors import Forbidden, NotFound, ValidationError
from crm_common.testing.uow import FakeUnitOfWork
from reports import commands, domain, projection
from reports.models import Base
from tests.unit.reports.conftest import NORTH, SOUTH, at, days


def funnel_story(desk):
    """Four deals through Новая → Переговоры → Счёт → Успех/Отказ, with known days in each stage."""
    pipeline, events = desk.pipeline()
    events += desk.people()
    deals = [desk.deal(pipeline) for _ in range(4)]
    a, b, c, d = deals
    events += a.create(at(1)) + a.move("Переговоры", at(2)) + a.move("Счёт", at(5)) + a.move("Успех", at(6))
    events += b.create(at(1)) + b.move("Переговоры", at(3)) + b.move("Отказ", at(4))
    events += c.create(at(2)) + c.move("Отказ", at(6))
    events += d.create(at(3)) + d.move("Переговоры", at(4)) + d.move("Новая", at(5))  # moved back
    return pipeline, events


def by_name(report):
    return {stage["name"]: stage for stage in report["stages"]}


def test_the_funnel_counts_entries_moves_on_and_losses_per_stage(desk):
    pipeline, events = funnel_story(desk)
    desk.apply(events)

    stages = by_name(desk.report("funnel", pipeline_id=pipeline["id"], from_="2026-11", to="2026-11"))

    assert [s["name"] for s in desk.report("funnel", pipeline_id=pipeline["id"], to="2026-11")["stages"]] == [
        "Новая", "Переговоры", "Счёт", "Успех", "Отказ"]
    new, talks = stages["Новая"], stages["Переговоры"]
    assert (new["entered"], new["moved_on"], new["lost"]) == (5, 3, 1)  # d entered it twice
    assert new["conversion"] == 0.6
    assert (talks["entered"], talks["moved_on"], talks["lost"]) == (3, 1, 1)  # d went back: neither
    assert talks["conversion"] == pytest.approx(0.3333)
    assert (stages["Счёт"]["entered"], stages["Счёт"]["moved_on"]) == (1, 1)
    assert (stages["Успех"]["entered"], stages["Отказ"]["entered"]) == (1, 2)


def test_median_and_mean_days_come_from_the_stage_visits_that_ended(desk):
    pipeline, events = funnel_story(desk)
    desk.apply(events)

    stages = by_name(desk.report("funnel", pipeline_id=pipeline["id"], from_="2026-11", to="2026-11"))

    # Новая: a 1 day, b 2, c 4, d 1 (the second visit of d is still open)
    assert stages["Новая"]["median_days"] == 1.5
    assert stages["Новая"]["mean_days"] == 2.0
    # Переговоры: a 3 days, b 1, d 1
    assert (stages["Переговоры"]["median_days"], stages["Переговоры"]["mean_days"]) == (1.0, pytest.approx(1.667))
    assert stages["Успех"]["median_days"] is None and stages["Успех"]["mean_days"] is None


def test_the_funnel_of_one_owner_counts_only_their_deals(desk):
    pipeline, events = funnel_story(desk)
    theirs = desk.deal(pipeline, owner=desk.other)
    events += theirs.create(at(7)) + theirs.move("Переговоры", at(8))
    desk.apply(events)

    stages = by_name(desk.report("funnel", pipeline_id=pipeline["id"], owner_id=desk.other.id, to="2026-11"))

    assert (stages["Новая"]["entered"], stages["Новая"]["moved_on"], stages["Переговоры"]["entered"]) == (1, 1, 1)


def test_a_funnel_period_counts_the_stage_entries_made_in_it(desk):
    pipeline, events = desk.pipeline()
    deal = desk.deal(pipeline)
    events += deal.create(at(28, month=10)) + deal.move("Переговоры", at(3))
    desk.apply(events)

    october = by_name(desk.report("funnel", pipeline_id=pipeline["id"], from_="2026-10", to="2026-10"))
    november = by_name(desk.report("funnel", pipeline_id=pipeline["id"], from_="2026-11", to="2026-11"))

    assert (october["Новая"]["entered"], october["Новая"]["moved_on"], october["Переговоры"]["entered"]) == (1, 1, 0)
    assert (november["Новая"]["entered"], november["Переговоры"]["entered"]) == (0, 1)
    assert october["Новая"]["median_days"] == 6.0


@pytest.mark.parametrize(("values", "median"), [([1, 2, 3, 4, 5], 3), ([1, 2, 3, 4], 2.5), ([7], 7), ([2, 2, 9], 2)])
def test_the_median_of_a_histogram_is_exact_for_distinct_values(values, median):
    histogram = {}
    for value in values:
        seconds = value * domain.DAY
        bucket = domain.duration_bucket(seconds)
        n, total = histogram.get(bucket, (0, 0.0))
        histogram[bucket] = (n + 1, total + seconds)

    result = domain.median_from_histogram([(b, n, s) for b, (n, s) in histogram.items()])

    assert result / domain.DAY == pytest.approx(median)


def test_a_histogram_median_stays_within_one_percent_of_the_true_one():
    rng = random.Random(7)
    values = sorted(rng.uniform(60, 90 * domain.DAY) for _ in range(1001))
    histogram = {}
    for value in values:
        n, total = histogram.get(domain.duration_bucket(value), (0, 0.0))
        histogram[domain.duration_bucket(value)] = (n + 1, total + value)

    estimate = domain.median_from_histogram([(b, n, s) for b, (n, s) in histogram.items()])

    assert estimate == pytest.approx(values[500], rel=0.01)


def test_every_order_and_every_duplicate_of_the_events_gives_the_same_reports(desk):
    pipeline, events = funnel_story(desk)
    client_events = [desk.client(at(1), "yandex"), desk.client(at(2), "avito", archived=at(9), version=2)]
    events += client_events
    desk.apply(events)
    expected = {name: desk.report(name, **query) for name, query in (
        ("funnel", {"pipeline_id": pipeline["id"], "to": "2026-11"}), ("client_base", {"to": "2026-11"}),
        ("managers", {"month": "2026-11"}), ("plan", {"month": "2026-11"}))}

    for seed in range(5):
        with __import__("crm_common.testing.uow", fromlist=["FakeUnitOfWork"]).FakeUnitOfWork(
                __import__("reports.models", fromlist=["Base"]).Base) as uow:
            other = type(desk)(uow)
            other.head, other.manager, other.other = desk.head, desk.manager, desk.other
            shuffled = events + random.Random(seed).sample(events, 6)  # some delivered twice
            random.Random(seed).shuffle(shuffled)
            other.apply(shuffled)
            for name, query in (("funnel", {"pipeline_id": pipeline["id"], "to": "2026-11"}),
                                ("client_base", {"to": "2026-11"}), ("managers", {"month": "2026-11"}),
                                ("plan", {"month": "2026-11"})):
                assert other.report(name, **query) == expected[name], (seed, name)


def test_events_applied_together_in_one_transaction_give_the_reports_of_events_applied_one_by_one(desk):
    pipeline, events = funnel_story(desk)
    events += [desk.client(at(1), "yandex"), desk.client(at(2), "avito", archived=at(9), version=2)]
    queries = (("funnel", {"pipeline_id": pipeline["id"], "to": "2026-11"}), ("client_base", {"to": "2026-11"}),
               ("managers", {"month": "2026-11"}), ("plan", {"month": "2026-11"}))
    desk.apply(events)
    expected = {name: desk.report(name, **query) for name, query in queries}

    for seed in range(3):
        with FakeUnitOfWork(Base) as uow:
            other = type(desk)(uow)
            other.head, other.manager, other.other = desk.head, desk.manager, desk.other
            shuffled = events + random.Random(seed).sample(events, 6)  # some twice, even in one group
            random.Random(seed).shuffle(shuffled)
            for start in range(0, len(shuffled), 7):
                uow.call(projection.apply_events, shuffled[start:start + 7])
            uow.call(projection.apply_events, shuffled[:5])  # a whole group delivered again changes nothing
            for name, query in queries:
                assert other.report(name, **query) == expected[name], (seed, name)


def test_a_group_of_events_moves_each_counter_row_once(desk, monkeypatch):
    pipeline, events = desk.pipeline()
    deals = [desk.deal(pipeline) for _ in range(5)]
    desk.apply(events, [deal.create(at(1))[0] for deal in deals])
    written = []
    monkeypatch.setattr(projection, "apply_counters", lambda session, changes: written.append(changes))

    desk.uow.call(projection.apply_events, [event for deal in deals for event in deal.move("Переговоры", at(2))])

    [changes] = written  # one write for the group
    funnel = {key: amounts for (table, key), amounts in changes.items() if table == "c_funnel"}
    # one row out of Новая, one into Переговоры, each moved by the five deals at once
    assert sorted((amounts.get("moved_on", 0), amounts.get("entered", 0)) for amounts in funnel.values()) == [(0, 5), (5, 0)]


def test_a_deal_won_before_its_deal_created_arrives_is_counted_once_it_is_known(desk):
    pipeline, events = desk.pipeline()
    deal = desk.deal(pipeline, amount="500.00")
    created = deal.create(at(2))
    won = deal.move("Успех", at(4))
    desk.apply(events + desk.people(), won)

    assert desk.report("plan", month="2026-11")["branches"][0]["fact"] == "500.00"
    stages = by_name(desk.report("funnel", pipeline_id=pipeline["id"], to="2026-11"))
    assert (stages["Новая"]["entered"], stages["Новая"]["moved_on"], stages["Успех"]["entered"]) == (1, 1, 1)

    desk.apply(created)

    assert desk.report("plan", month="2026-11")["branches"][0]["fact"] == "500.00"
    stages = by_name(desk.report("funnel", pipeline_id=pipeline["id"], to="2026-11"))
    assert (stages["Новая"]["entered"], stages["Новая"]["median_days"]) == (1, 2.0)


def test_the_client_base_counts_new_archived_and_the_total_at_each_months_end(desk):
    events = [
        desk.client(at(5, month=9), "yandex", tags=["vip"]),
        desk.client(at(6, month=9), "yandex", tags=["vip", "опт"], archived=at(3, month=11), version=2),
        desk.client(at(7, month=10), None, tags=["опт"]),
        desk.client(at(8, month=10), "avito"),
        desk.client(at(9, month=10), "avito", branch=SOUTH),
    ]
    restored_id = events[3][1]["client"]["id"]
    events.append(desk.client(at(8, month=10), "avito", client_id=restored_id, archived=at(1, month=11), version=2,
                              event="client_archived"))
    restored = desk.client(at(8, month=10), "avito", client_id=restored_id, version=3, event="client_restored")
    desk.apply(events, restored)

    report = desk.report("client_base", from_="2026-09", to="2026-11")

    assert report["months"] == [
        {"month": "2026-09", "total": 2, "new": 2, "archived": 0, "net": 2},
        {"month": "2026-10", "total": 4, "new": 2, "archived": 0, "net": 2},
        {"month": "2026-11", "total": 3, "new": 0, "archived": 1, "net": -1},
    ]
    assert report["by_source"] == [{"source": "yandex", "new": 2}, {"source": None, "new": 1},
                                   {"source": "avito", "new": 1}]
    assert report["by_tag"] == [{"tag": "vip", "total": 1}, {"tag": "опт", "total": 1}]
    assert desk.report("client_base", from_="2026-11", to="2026-11")["months"][0]["total"] == 3
    every = desk.report("client_base", desk.admin, from_="2026-10", to="2026-10")
    assert every["months"][0]["total"] == 5


def test_a_client_moved_between_tags_and_sources_moves_its_counts(desk):
    created = desk.client(at(5), "yandex", tags=["vip"])
    client_id = created[1]["client"]["id"]
    changed = desk.client(at(5), "avito", tags=["опт"], client_id=client_id, version=2, event="client_updated")
    desk.apply(created, changed, created)  # the older snapshot again changes nothing

    report = desk.report("client_base", to="2026-11")

    assert report["by_source"] == [{"source": "avito", "new": 1}]
    assert report["by_tag"] == [{"tag": "опт", "total": 1}]


def channel_story(desk):
    pipeline, events = desk.pipeline()
    events += desk.people()
    yandex = [desk.client(at(d), "yandex") for d in (2, 3, 4, 5)]
    avito = desk.client(at(2), "avito")
    events += yandex + [avito]
    for day, (_, payload) in zip((6, 7), yandex[:2]):
        deal = desk.deal(pipeline, client_id=payload["client"]["id"], amount="30000.00")
        events += deal.create(at(day)) + deal.move("Успех", at(day + 1))
    dollars = desk.deal(pipeline, client_id=yandex[2][1]["client"]["id"], amount="100.00", currency="USD")
    events += dollars.create(at(8)) + dollars.move("Успех", at(9))
    events.append(desk.event("touchpoint_recorded", {
        "client_id": yandex[0][1]["client"]["id"], "touchpoint_id": "0" * 8 + "-0000-4000-8000-" + "0" * 12,
        "channel": "web_form", "source": "yandex", "created": True, "owner_id": None, "utm": {"utm_source": "yandex"},
        "branch_id": NORTH}, at(2)))
    return events


def test_channels_report_roi_and_cost_per_client_in_the_spends_currency(desk):
    desk.apply(channel_story(desk))
    desk.uow.call(commands.set_spend, desk.head, "yandex", {"month": "2026-11", "amount": "20000.00", "currency": "RUB"})

    lines = {line["source"]: line for line in desk.report("channels", to="2026-11")["channels"]}

    yandex = lines["yandex"]
    assert (yandex["touchpoints"], yandex["new_clients"], yandex["deals_won"]) == (1, 4, 2)
    assert (yandex["currency"], yandex["revenue"], yandex["spend"]) == ("RUB", "60000.00", "20000.00")
    assert yandex["roi"] == 2.0  # (60000 - 20000) / 20000
    assert yandex["cost_per_client"] == "5000.00"
    assert yandex["other_currencies"] == [{"currency": "USD", "revenue": "100.00", "deals_won": 1, "spend": "0.00"}]
    assert (lines["avito"]["roi"], lines["avito"]["cost_per_client"], lines["avito"]["new_clients"]) == (None, None, 1)


def test_a_channel_that_spent_more_than_it_earned_has_a_negative_roi():
    assert domain.roi(50_00, 200_00) == -0.75
    assert domain.roi(0, 0) is None
    assert domain.cost_per_client(1000_00, 3) == 33333


def test_plan_fulfilment_is_the_won_amount_in_the_plans_currency_over_the_plan(desk):
    pipeline, events = desk.pipeline()
    events += desk.people()
    for amount, currency, owner in (("60000.00", "RUB", desk.manager), ("15000.00", "RUB", desk.manager),
                                    ("200.00", "EUR", desk.manager), ("10000.00", "RUB", desk.other)):
        deal = desk.deal(pipeline, owner=owner, amount=amount, currency=currency)
        events += deal.create(at(3)) + deal.move("Успех", at(10))
    late = desk.deal(pipeline, amount="99999.00")
    events += late.create(at(3)) + late.move("Успех", at(2, month=12))
    desk.apply(events)
    directory = {"users": {desk.manager.id: {"branch_id": NORTH, "role": "manager", "active": True}}}
    plan = desk.uow.call(commands.set_plan, desk.head, {"month": "2026-11", "user_id": desk.manager.id,
                                                         "amount": "100000.00", "currency": "RUB"}, directory)
    desk.uow.call(commands.set_plan, desk.head, {"month": "2026-11", "amount": "200000.00", "currency": "RUB"})
    desk.uow.call(commands.record_miss_reason, desk.head, plan["id"], {"reason": "Мало заявок", "category": "leads"})

    report = desk.report("plan", month="2026-11")

    anna = next(line for line in report["managers"] if line["user_id"] == desk.manager.id)
    assert (anna["plan"], anna["currency"], anna["fact"], anna["deals_won"]) == ("100000.00", "RUB", "75000.00", 2)
    assert anna["fulfilment"] == 0.75
    assert anna["other_currencies"] == [{"currency": "EUR", "fact": "200.00", "deals_won": 1}]
    assert anna["miss_reason"]["category"] == "leads" and anna["miss_reason"]["reason"] == "Мало заявок"
    boris = next(line for line in report["managers"] if line["user_id"] == desk.other.id)
    assert (boris["plan"], boris["fulfilment"], boris["currency"], boris["fact"]) == (None, None, "RUB", "10000.00")
    [branch] = report["branches"]
    assert (branch["name"], branch["plan"], branch["fact"], branch["fulfilment"]) == ("Север", "200000.00", "85000.00", 0.425)


def test_setting_a_plan_again_replaces_it(desk):
    first = desk.uow.call(commands.set_plan, desk.head, {"month": "2026-11", "amount": "1.00", "currency": "RUB"})
    second = desk.uow.call(commands.set_plan, desk.head, {"month": "2026-11", "amount": "2.00", "currency": "USD"})

    assert first["id"] == second["id"] and (second["amount"], second["currency"]) == ("2.00", "USD")


@pytest.mark.parametrize(("body", "directory", "field"), [
    ({"month": "2026-13", "amount": "1.00", "currency": "RUB"}, None, "month"),
    ({"month": "2026-11", "amount": "-1.00", "currency": "RUB"}, None, "amount"),
    ({"month": "2026-11", "amount": "1.00", "currency": "XYZ"}, None, "currency"),
    ({"month": "2026-11", "amount": "1.00", "currency": "RUB", "user_id": "5e0b7a8c-4a5e-4b43-9d5c-3c8c5a0a1f11"},
     {"users": {}}, "user_id"),
    ({"month": "2026-11", "amount": "1.00", "currency": "RUB", "user_id": "5e0b7a8c-4a5e-4b43-9d5c-3c8c5a0a1f11"},
     {"users": {"5e0b7a8c-4a5e-4b43-9d5c-3c8c5a0a1f11": {"branch_id": SOUTH, "role": "manager", "active": True}}},
     "user_id"),
    ({"month": "2026-11", "amount": "1.00", "currency": "RUB", "branch_id": SOUTH}, None, "branch_id"),
])
def test_a_plan_that_breaks_a_rule_is_refused_naming_the_field(desk, body, directory, field):
    with pytest.raises(ValidationError) as error:
        desk.uow.call(commands.set_plan, desk.head, body, directory)

    assert field in error.value.fields


def test_a_miss_reason_outside_the_categories_is_refused(desk):
    plan = desk.uow.call(commands.set_plan, desk.head, {"month": "2026-11", "amount": "1.00", "currency": "RUB"})

    with pytest.raises(ValidationError) as error:
        desk.uow.call(commands.record_miss_reason, desk.head, plan["id"], {"reason": "x", "category": "weather"})
    assert "category" in error.value.fields
    with pytest.raises(NotFound):
        desk.uow.call(commands.record_miss_reason, desk.south_head, plan["id"], {"reason": "x", "category": "other"})


def test_the_managers_report_counts_calls_meetings_tasks_penalties_moves_and_wins(desk):
    pipeline, events = desk.pipeline()
    events += desk.people()
    client = desk.client(at(2))
    client_id = client[1]["client"]["id"]
    events.append(client)
    for index, kind in enumerate(("call", "call", "meeting", "note")):
        interaction = {"id": f"{index:08d}-0000-4000-8000-000000000000", "client_id": client_id, "branch_id": NORTH,
                       "type": kind, "direction": None, "text": None, "occurred_at": "2026-11-03T10:00:00Z",
                       "duration_s": None, "script_id": None, "author_id": desk.manager.id,
                       "created_at": "2026-11-03T10:00:00Z"}
        events.append(desk.event("interaction_logged", {"client_id": client_id, "owner_id": desk.manager.id,
                                                        "interaction": interaction}, at(3)))
    deal = desk.deal(pipeline, client_id=client_id, amount="700.00")
    events += deal.create(at(3)) + deal.move("Переговоры", at(4)) + deal.move("Успех", at(5))
    on_time, late = task(desk, "done", at(20), completed=at(10)), task(desk, "done", at(5), completed=at(8), overdue=True)
    events += [desk.event("task_completed", {"task": on_time, "on_time": True}, at(10)),
               desk.event("task_overdue", {"task": {**late, "status": "open", "completed_at": None,
                                                    "version": 1}}, at(5)),
               desk.event("task_completed", {"task": late, "on_time": False}, at(8))]
    fine = {"id": "00000000-0000-4000-8000-0000000000aa", "user_id": desk.manager.id, "task_id": late["id"],
            "branch_id": NORTH, "amount": "500.00", "currency": "RUB", "reason": "просрочка", "month": "2026-11",
            "status": "active", "waived_at": None, "waive_reason": None, "created_at": "2026-11-05T10:00:00Z"}
    # another task's penalty, waived: that task stays overdue (one penalty per overdue task, decision 28)
    waived = {**fine, "id": "00000000-0000-4000-8000-0000000000bb", "status": "waived",
              "task_id": "00000000-0000-4000-8000-0000000000cc"}
    events += [desk.event("penalty_recorded", {"penalty": fine}, at(5)),
               desk.event("penalty_waived", {"penalty": waived, "reason": "болел"}, at(6)),
               desk.event("penalty_recorded", {"penalty": {**waived, "status": "active"}}, at(5))]  # late: stays waived
    desk.apply(events)

    report = desk.report("managers", month="2026-11")

    anna = next(line for line in report["managers"] if line["user_id"] == desk.manager.id)
    assert (anna["name"], anna["calls"], anna["meetings"], anna["interactions"]) == ("Анна", 2, 1, 4)
    assert (anna["tasks_done_on_time"], anna["tasks_overdue"]) == (1, 2)
    assert (anna["penalties"], anna["penalty_amounts"]) == (1, [{"amount": "500.00", "currency": "RUB"}])
    assert (anna["deals_moved"], anna["deals_won"], anna["revenue"]) == (2, 1, [{"amount": "700.00", "currency": "RUB"}])
    boris = next(line for line in report["managers"] if line["user_id"] == desk.other.id)
    assert (boris["calls"], boris["deals_won"], boris["revenue"]) == (0, 0, [])
    mine = desk.report("managers", desk.manager, month="2026-11")["managers"]
    assert [line["user_id"] for line in mine] == [desk.manager.id] and mine[0]["calls"] == 2


def test_an_overdue_task_handed_to_someone_else_stays_overdue_for_who_missed_it(desk):
    events = desk.people()
    late = task(desk, "open", at(5), overdue=True)
    fine = {"id": "00000000-0000-4000-8000-0000000000dd", "user_id": desk.manager.id, "task_id": late["id"],
            "branch_id": NORTH, "amount": "500.00", "currency": "RUB", "reason": "просрочка", "month": "2026-11",
            "status": "active", "waived_at": None, "waive_reason": None, "created_at": "2026-11-05T10:00:00Z"}
    done = {**late, "assignee_id": desk.other.id, "status": "done", "completed_at": at(9).isoformat(), "version": 4}
    events += [desk.event("task_overdue", {"task": late}, at(5)), desk.event("penalty_recorded", {"penalty": fine}, at(5)),
               desk.event("task_completed", {"task": done, "on_time": False}, at(9))]  # by the heir of an offboarding
    desk.apply(events)

    lines = {line["user_id"]: line for line in desk.report("managers", month="2026-11")["managers"]}

    assert (lines[desk.manager.id]["tasks_overdue"], lines[desk.manager.id]["penalties"]) == (1, 1)
    assert (lines[desk.other.id]["tasks_overdue"], lines[desk.other.id]["tasks_done_on_time"]) == (0, 0)


def task(desk, status, due, completed=None, overdue=False) -> dict:
    return {"id": f"{abs(hash((due, completed))) % 10**8:08d}-0000-4000-8000-000000000000", "title": "Перезвонить",
            "description": None, "status": status, "assignee_id": desk.manager.id, "author_id": desk.head.id,
            "branch_id": NORTH, "client_id": None, "deal_id": None, "template_id": None, "template_version": None,
            "due_at": domain.parse_time(due).isoformat(), "completed_at": completed.isoformat() if completed else None,
            "cancelled_at": None, "cancel_reason": None, "overdue": overdue, "checklist": [], "penalty": None,
            "created_at": "2026-11-01T10:00:00+00:00", "updated_at": "2026-11-01T10:00:00+00:00", "version": 2}


def test_the_scripts_report_counts_uses_clients_and_deals_won_after_a_use(desk):
    pipeline, events = desk.pipeline()
    script = {"id": "00000000-0000-4000-8000-00000000005c", "branch_id": NORTH, "title": "Первый звонок",
              "body": "...", "stage_id": None, "version": 1, "created_at": "2026-11-01T10:00:00Z",
              "updated_at": "2026-11-01T10:00:00Z"}
    events.append(desk.event("script_created", {"script": script}, at(1)))
    clients = [desk.client(at(1)) for _ in range(3)]
    events += clients
    for index, ((_, payload), day) in enumerate(zip(clients + clients[:1], (2, 3, 4, 5))):
        interaction = {"id": f"{index:08d}-0000-4000-8000-0000000000cc", "client_id": payload["client"]["id"],
                       "branch_id": NORTH, "type": "call", "direction": "out", "text": None,
                       "occurred_at": f"2026-11-0{day}T10:00:00Z", "duration_s": 60, "script_id": script["id"],
                       "author_id": desk.manager.id, "created_at": f"2026-11-0{day}T10:00:00Z"}
        events.append(desk.event("interaction_logged", {"client_id": payload["client"]["id"], "owner_id": None,
                                                        "interaction": interaction}, at(day)))
    before = desk.deal(pipeline, client_id=clients[1][1]["client"]["id"])  # won before the use on the 3rd
    after = desk.deal(pipeline, client_id=clients[0][1]["client"]["id"])
    events += before.create(at(1)) + before.move("Успех", at(2)) + after.create(at(6)) + after.move("Успех", at(9))
    desk.apply(events)

    [line] = desk.report("scripts", to="2026-11")["scripts"]

    assert (line["title"], line["uses"], line["clients"], line["deals_won"]) == ("Первый звонок", 4, 3, 1)


def test_a_manager_sees_no_report_but_their_own_managers_line(desk):
    for name in ("client_base", "funnel", "plan", "channels", "scripts"):
        with pytest.raises(Forbidden):
            desk.report(name, desk.manager)


def test_a_head_naming_another_branch_sees_nothing_of_it(desk):
    with pytest.raises(NotFound):
        desk.report("client_base", branch_id=SOUTH)


@pytest.mark.parametrize(("query", "field"), [
    ({"from": "2026-1", "to": "2026-11"}, "from"), ({"to": "November"}, "to"),
    ({"from": "2026-11", "to": "2026-10"}, "to"), ({"from": "2000-01", "to": "2026-11"}, "from"),
    ({"to": "2026-11", "colour": "red"}, "colour"), ({"branch_id": "north"}, "branch_id"),
])
def test_a_bad_period_is_refused_naming_the_field(desk, query, field):
    with pytest.raises(ValidationError) as error:
        desk.uow.read(commands.client_base, desk.head, query)

    assert field in error.value.fields


def test_a_funnel_needs_a_pipeline_the_caller_may_see(desk):
    pipeline, events = desk.pipeline(branch=SOUTH)
    desk.apply(events)

    with pytest.raises(ValidationError):
        desk.uow.read(commands.funnel, desk.head, {})
    with pytest.raises(NotFound):
        desk.uow.read(commands.funnel, desk.head, {"pipeline_id": pipeline["id"]})
    assert desk.uow.read(commands.funnel, desk.south_head, {"pipeline_id": pipeline["id"]})["stages"]


def test_spend_that_is_negative_or_not_a_decimal_is_refused(desk):
    for amount in ("-5.00", "abc", 5):
        with pytest.raises(ValidationError) as error:
            desk.uow.call(commands.set_spend, desk.head, "yandex", {"month": "2026-11", "amount": amount, "currency": "RUB"})
        assert "amount" in error.value.fields
    with pytest.raises(ValidationError) as error:
        desk.uow.call(commands.set_spend, desk.admin, "yandex", {"month": "2026-11", "amount": "1.00", "currency": "RUB"})
    assert "branch_id" in error.value.fields


def test_days_between_months_are_counted_in_utc():
    assert domain.month_of(domain.parse_time("2026-11-30T23:30:00-02:00")) == "2026-12"
    assert domain.months_between("2026-11", "2027-02") == ["2026-11", "2026-12", "2027-01", "2027-02"]
    assert days(1) == domain.parse_time("2026-11-02T00:00:00Z") - domain.parse_time("2026-11-01T00:00:00Z")
