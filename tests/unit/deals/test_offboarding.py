"""The deals step of an offboarding: open deals go to the new owner a batch at a time, closed deals stay."""

import uuid

import pytest

from crm_common.errors import Conflict
from deals import offboarding


def transfer(sales, to=None, saga_id=None) -> dict:
    return {"id": saga_id or str(uuid.uuid4()), "from_user_id": sales.manager.id,
            "to_user_id": to or sales.other_manager.id, "actor_id": sales.head.id}


def test_open_deals_move_in_batches_and_won_and_lost_deals_keep_their_owner(sales):
    pipeline = sales.pipeline()
    open_deals = [sales.deal(pipeline, caller=sales.manager) for _ in range(5)]
    won = sales.deal(pipeline, caller=sales.manager)
    sales.move(won, sales.stage(pipeline, "Успех"))
    lost = sales.deal(pipeline, caller=sales.manager)
    sales.move(lost, sales.stage(pipeline, "Отказ"), reason="Дорого")
    sales.uow.take_events()
    saga = transfer(sales)

    states = [sales.uow.call(offboarding.transfer_deals, saga, 2) for _ in range(3)]

    assert states == [{"moved": 2, "done": False}, {"moved": 4, "done": False}, {"moved": 5, "done": True}]
    for deal in open_deals:
        stored = sales.get(deal)
        assert (stored["owner_id"], stored["version"]) == (sales.other_manager.id, deal["version"] + 1)
    assert sales.get(won)["owner_id"] == sales.get(lost)["owner_id"] == sales.manager.id
    events = sales.uow.take_events()
    assert [name for name, _ in events] == ["deal_updated"] * 5
    assert all(p["changed"] == ["owner_id"] and p["deal"]["owner_id"] == sales.other_manager.id for _, p in events)
    assert {p["deal"]["id"] for _, p in events} == {d["id"] for d in open_deals}


def test_a_step_asked_again_after_it_finished_moves_and_counts_nothing_more(sales):
    pipeline = sales.pipeline()
    sales.deal(pipeline, caller=sales.manager)
    saga = transfer(sales)
    assert sales.uow.call(offboarding.transfer_deals, saga, 10) == {"moved": 1, "done": True}
    sales.deal(pipeline, caller=sales.manager)  # given to the user after the step: not this saga's business
    sales.uow.take_events()

    assert sales.uow.call(offboarding.transfer_deals, saga, 10) == {"moved": 1, "done": True}
    assert sales.uow.events == []


def test_a_saga_id_reused_for_other_users_is_refused(sales):
    saga = transfer(sales)
    sales.uow.call(offboarding.transfer_deals, saga, 10)

    with pytest.raises(Conflict):
        sales.uow.call(offboarding.transfer_deals, {**saga, "to_user_id": sales.head.id}, 10)
