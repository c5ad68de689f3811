"""Moving deals through their pipeline: statuses, the stage history and the events each move raises."""

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from crm_common.clock import utcnow
from crm_common.errors import Conflict, ValidationError, VersionConflict
from crm_common.events import EVENTS
from deals import commands
from deals import repository as repo
from deals.exceptions import DealNotFound
from deals.models import Deal, StageVisit


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def snapshot(deal: dict) -> dict:
    return {k: v for k, v in deal.items() if k != "stage"}


def ref(stage: dict) -> dict:
    return {"id": stage["id"], "name": stage["name"], "kind": stage["kind"], "position": stage["position"]}


def test_a_deal_lost_reopened_and_won_keeps_every_step_in_its_history_and_events(sales):
    pipeline = sales.pipeline()
    new, talks, won, lost = (sales.stage(pipeline, name) for name in ("Новая", "Переговоры", "Успех", "Отказ"))
    deal = sales.deal(pipeline)
    sales.backdate(deal, 3)
    sales.uow.take_events()

    before = utcnow()
    lost_deal = sales.move(deal, lost, reason="Дорого", expected_version=1)
    after = utcnow()
    assert (lost_deal["status"], lost_deal["stage_id"], lost_deal["lost_reason"], lost_deal["version"]) == (
        "lost", lost["id"], "Дорого", 2)
    assert before <= at(lost_deal["closed_at"]) <= after and lost_deal["closed_at"] == lost_deal["stage_entered_at"]
    assert lost_deal["stage_due_at"] is None and lost_deal["stuck"] is False

    reopened = sales.move(deal, talks, expected_version=2)
    assert (reopened["status"], reopened["stage_id"], reopened["lost_reason"], reopened["closed_at"]) == (
        "open", talks["id"], None, None)

    won_deal = sales.move(deal, won, expected_version=3)
    assert (won_deal["status"], won_deal["stage_id"], won_deal["lost_reason"], won_deal["version"]) == (
        "won", won["id"], None, 4)
    assert won_deal["closed_at"] == won_deal["stage_entered_at"]
    assert sales.get(deal) == won_deal

    history = sales.history(deal)
    visits = sales.uow.read(lambda s: s.scalars(select(StageVisit).where(StageVisit.deal_id == deal["id"])).all())
    assert sorted((v.seq, v.id) for v in visits) == [(n, v["id"]) for n, v in enumerate(history, 1)]
    assert [(v["stage_id"], v["stage_name"], v["stage_kind"], v["from_stage_id"], v["lost_reason"]) for v in history] == [
        (new["id"], "Новая", "open", None, None),
        (lost["id"], "Отказ", "lost", new["id"], "Дорого"),
        (talks["id"], "Переговоры", "open", lost["id"], None),
        (won["id"], "Успех", "won", talks["id"], None),
    ]
    for visit, following in zip(history, history[1:]):
        assert visit["exited_at"] == following["entered_at"]
        assert visit["time_spent_s"] == (at(visit["exited_at"]) - at(visit["entered_at"])).total_seconds()
    assert (history[-1]["exited_at"], history[-1]["time_spent_s"]) == (None, None)
    assert history[-1]["entered_at"] == won_deal["stage_entered_at"]
    assert 3 * 86400 <= history[0]["time_spent_s"] < 3 * 86400 + 60
    assert {v["moved_by"] for v in history} == {sales.head.id}

    events = sales.uow.take_events()
    assert [event_type for event_type, _ in events] == [
        "deal_stage_changed", "deal_lost", "deal_stage_changed", "deal_reopened", "deal_stage_changed", "deal_won",
    ]
    for event_type, payload in events:
        assert EVENTS[event_type]().validate(payload) == {}
        assert (payload["branch_id"], payload["actor_id"]) == (sales.north, sales.head.id)
    (_, to_lost), (_, lost_payload), (_, to_talks), (_, reopened_payload), (_, to_won), (_, won_payload) = events
    assert (to_lost["from_stage"], to_lost["to_stage"]) == (ref(new), ref(lost))
    assert to_lost["time_in_stage_s"] == history[0]["time_spent_s"]
    assert to_lost["deal"] == lost_payload["deal"] == snapshot(lost_deal)
    assert (lost_payload["stage"], lost_payload["reason"]) == (ref(lost), "Дорого")
    assert (to_talks["from_stage"], to_talks["to_stage"]) == (ref(lost), ref(talks))
    assert to_talks["time_in_stage_s"] == history[1]["time_spent_s"]
    assert (reopened_payload["stage"], reopened_payload["from_status"]) == (ref(talks), "lost")
    assert to_talks["deal"] == reopened_payload["deal"] == snapshot(reopened)
    assert (to_won["from_stage"], to_won["to_stage"]) == (ref(talks), ref(won))
    assert to_won["time_in_stage_s"] == history[2]["time_spent_s"]
    assert [to_lost["seq"], to_talks["seq"], to_won["seq"]] == [2, 3, 4]  # the visit each move starts
    assert won_payload["stage"] == ref(won)
    assert to_won["deal"] == won_payload["deal"] == snapshot(won_deal)


def test_a_move_between_open_stages_emits_only_deal_stage_changed_and_times_the_new_stage(sales):
    pipeline = sales.pipeline()
    contract = sales.stage(pipeline, "Договор")
    deal = sales.deal(pipeline)
    sales.uow.take_events()

    moved = sales.move(deal, contract)

    assert sales.uow.event_types() == ["deal_stage_changed"]
    stored = sales.stored(deal)
    assert stored.stage_due_at == stored.stage_entered_at + timedelta(hours=12)
    assert (moved["status"], moved["stage"]["name"], moved["stage"]["max_days"]) == ("open", "Договор", 0.5)


def test_reopening_a_won_deal_says_it_was_won(sales):
    pipeline = sales.pipeline()
    deal = sales.move(sales.deal(pipeline), sales.stage(pipeline, "Успех"))
    sales.uow.take_events()

    reopened = sales.move(deal, sales.stage(pipeline, "Новая"))

    assert sales.uow.event_types() == ["deal_stage_changed", "deal_reopened"]
    assert sales.uow.events[1][1]["from_status"] == "won"
    stored = sales.stored(deal)
    assert (reopened["status"], reopened["closed_at"]) == ("open", None)
    assert stored.stage_due_at == stored.stage_entered_at + timedelta(days=2)


def reopen(sales, deal: dict, stage: dict, client_branch_id: str) -> dict:
    return sales.uow.call(commands.move_deal, sales.head, deal["id"], {"stage_id": stage["id"]}, None, client_branch_id)


def test_a_deal_whose_client_moved_to_another_branch_is_not_reopened(sales):
    pipeline = sales.pipeline()
    deal = sales.move(sales.deal(pipeline), sales.stage(pipeline, "Успех"))

    with pytest.raises(Conflict) as error:
        reopen(sales, deal, sales.stage(pipeline, "Новая"), client_branch_id=sales.south)

    assert "stage_id" in error.value.fields
    assert sales.stored(deal).status == "won"


def test_a_deal_whose_client_stayed_in_the_branch_is_reopened(sales):
    pipeline = sales.pipeline()
    deal = sales.move(sales.deal(pipeline), sales.stage(pipeline, "Отказ"), reason="Дорого")

    assert reopen(sales, deal, sales.stage(pipeline, "Новая"), client_branch_id=deal["branch_id"])["status"] == "open"


def test_a_lost_deal_can_be_won_straight_away(sales):
    pipeline = sales.pipeline()
    deal = sales.move(sales.deal(pipeline), sales.stage(pipeline, "Отказ"), reason="Дорого")
    sales.uow.take_events()

    won = sales.move(deal, sales.stage(pipeline, "Успех"))

    assert sales.uow.event_types() == ["deal_stage_changed", "deal_won"]
    assert (won["status"], won["lost_reason"]) == ("won", None) and won["closed_at"] is not None


def test_a_move_with_a_stale_version_is_refused_and_changes_nothing(sales):
    pipeline = sales.pipeline()
    deal = sales.move(sales.deal(pipeline), sales.stage(pipeline, "Переговоры"))
    history = sales.history(deal)
    sales.uow.take_events()

    with pytest.raises(VersionConflict) as error:
        sales.move(deal, sales.stage(pipeline, "Успех"), expected_version=1)

    assert error.value.details == {"current_version": 2}
    assert sales.get(deal) == deal
    assert sales.history(deal) == history
    assert sales.uow.events == []


def test_moving_a_deal_to_the_stage_it_is_in_changes_nothing_and_emits_nothing(sales):
    deal = sales.deal(sales.pipeline())
    sales.uow.take_events()

    same = sales.move(deal, deal["stage_id"], expected_version=1)

    assert same == deal
    assert len(sales.history(deal)) == 1 and sales.uow.events == []


def test_losing_a_deal_without_a_reason_is_refused_and_changes_nothing(sales):
    pipeline = sales.pipeline()
    deal = sales.deal(pipeline)
    sales.uow.take_events()

    with pytest.raises(ValidationError) as error:
        sales.move(deal, sales.stage(pipeline, "Отказ"))

    assert list(error.value.fields) == ["lost_reason"]
    assert sales.get(deal) == deal and sales.uow.events == []


def test_a_reason_is_refused_for_a_deal_that_is_not_lost(sales):
    pipeline = sales.pipeline()

    with pytest.raises(ValidationError) as error:
        sales.move(sales.deal(pipeline), sales.stage(pipeline, "Успех"), reason="Дорого")

    assert list(error.value.fields) == ["lost_reason"]


def test_a_deal_cannot_move_into_another_pipeline(sales):
    deal = sales.deal(sales.pipeline())
    elsewhere = sales.pipeline(name="Розница")

    with pytest.raises(ValidationError) as error:
        sales.move(deal, elsewhere["stages"][1])

    assert list(error.value.fields) == ["stage_id"]


def test_a_deal_cannot_move_to_a_stage_that_does_not_exist(sales):
    deal = sales.deal(sales.pipeline())

    with pytest.raises(ValidationError) as error:
        sales.move(deal, "7c9e6679-7425-40de-944b-e07fc1f90ae7")

    assert list(error.value.fields) == ["stage_id"]


def test_a_manager_cannot_move_someone_elses_deal(sales):
    pipeline = sales.pipeline()
    deal = sales.deal(pipeline, caller=sales.manager)

    with pytest.raises(DealNotFound):
        sales.move(deal, sales.stage(pipeline, "Переговоры"), caller=sales.other_manager)


def test_a_manager_moves_their_own_deal_and_is_recorded_as_the_mover(sales):
    pipeline = sales.pipeline()
    deal = sales.deal(pipeline, caller=sales.manager)

    sales.move(deal, sales.stage(pipeline, "Переговоры"), caller=sales.manager)

    assert [v["moved_by"] for v in sales.history(deal)] == [sales.manager.id, sales.manager.id]
    assert sales.uow.events[-1][1]["actor_id"] == sales.manager.id


def test_leaving_a_stage_where_the_deal_was_stuck_clears_the_stuck_flag(sales):
    pipeline = sales.pipeline()
    deal = sales.deal(pipeline)
    sales.backdate(deal, 5)
    assert sales.get(deal)["stuck"] is True

    moved = sales.move(deal, sales.stage(pipeline, "Переговоры"))

    assert moved["stuck"] is False and moved["stage_due_at"] is None


def test_of_two_simultaneous_moves_the_second_to_save_is_a_version_conflict(sales, monkeypatch):
    pipeline = sales.pipeline()
    deal = sales.deal(pipeline)
    sales.uow.take_events()
    original = repo.last_visit

    def someone_else_moves_it_first(session, deal_id):
        session.execute(update(Deal.__table__).where(Deal.__table__.c.id == deal_id).values(version=2))
        return original(session, deal_id)

    monkeypatch.setattr(repo, "last_visit", someone_else_moves_it_first)
    with pytest.raises(VersionConflict):
        sales.move(deal, sales.stage(pipeline, "Переговоры"), expected_version=1)
    monkeypatch.undo()

    assert sales.get(deal) == deal
    assert len(sales.history(deal)) == 1 and sales.uow.events == []


def test_the_history_of_a_deal_is_hidden_from_those_who_cannot_see_the_deal(sales):
    deal = sales.deal(sales.pipeline(), caller=sales.manager)

    for stranger in (sales.other_manager, sales.south_head):
        with pytest.raises(DealNotFound):
            sales.history(deal, stranger)
    assert len(sales.history(deal, sales.manager)) == 1
