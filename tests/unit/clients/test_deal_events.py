"""Deal events on a client's timeline, and how deal openings keep archived clients and branch moves right."""

import uuid

import pytest
from sqlalchemy import select

from clients import commands
from clients import repository as repo
from clients.models import Client, TimelineEntry
from crm_common.caller import Caller
from crm_common.errors import Conflict, Unavailable
from crm_common.events import EVENTS

BRANCH = str(uuid.uuid4())
HEAD = Caller(str(uuid.uuid4()), "head", BRANCH)


def deal_event(client_id: str, **extra) -> dict:
    deal = {"id": str(uuid.uuid4()), "client_id": client_id, "title": "Поставка", "amount": "100.00",
            "currency": "RUB", "status": "open"}
    return {"event_id": str(uuid.uuid4()), "occurred_at": "2026-11-27T10:00:00Z", "branch_id": BRANCH,
            "actor_id": HEAD.id, "deal": deal, **extra}


def new_client(uow) -> dict:
    return commands.create_client(uow, HEAD, {"kind": "company", "name": "ООО Ромашка"}, None, "RU")


def deal_entries(uow, client_id):
    return uow.session.scalars(select(TimelineEntry).where(TimelineEntry.client_id == client_id,
                                                           TimelineEntry.kind == "deal")).all()


def test_a_deal_event_is_put_on_the_timeline_once_however_often_it_is_delivered(uow):
    client = new_client(uow)
    event = deal_event(client["id"])

    assert commands.add_deal_event(uow, "deal_created", event) is True
    assert commands.add_deal_event(uow, "deal_created", event) is False

    [entry] = deal_entries(uow, client["id"])
    assert (entry.type, entry.ref_id, entry.data["title"]) == ("deal_created", event["deal"]["id"], "Поставка")


def test_a_deal_event_for_an_unknown_client_is_dropped(uow):
    assert commands.add_deal_event(uow, "deal_created", deal_event(str(uuid.uuid4()))) is False


def archive(uow, client: dict) -> commands.DealOpenAnswer:
    """Archive the client; returns when, as the service learns it before asking the deals service about
    an opening event's deal."""
    commands.set_archived(uow, HEAD, client["id"], True, commands.NO_DEALS)
    uow.session.commit()
    uow.events.clear()
    return uow.session.get(Client, client["id"]).archived_at


def test_a_deal_opened_for_a_client_archived_meanwhile_brings_the_client_back(uow):
    client = new_client(uow)
    archived_at = archive(uow, client)

    commands.add_deal_event(uow, "deal_created", deal_event(client["id"]), commands.DealOpenAnswer(archived_at, True))

    assert uow.session.get(Client, client["id"]).archived is False
    assert uow.event_types() == ["client_restored"]
    assert EVENTS["client_restored"]().validate(uow.events[0][1]) == {}
    restored = uow.session.scalars(select(TimelineEntry).where(TimelineEntry.type == "client_restored")).one()
    assert restored.data["reason"] == "a deal was opened"


def test_a_late_opening_of_a_deal_closed_since_leaves_the_client_archived(uow):
    client = new_client(uow)
    archived_at = archive(uow, client)
    reopened = deal_event(client["id"], stage={"id": "s", "name": "Новая", "kind": "open"})

    commands.add_deal_event(uow, "deal_reopened", reopened, commands.DealOpenAnswer(archived_at, False))

    assert uow.session.get(Client, client["id"]).archived is True
    assert uow.events == [] and len(deal_entries(uow, client["id"])) == 1, "on the timeline all the same"


def test_an_opening_handled_again_after_the_client_was_archived_under_it_restores_it_then(uow):
    client = new_client(uow)
    event = deal_event(client["id"])
    archived_at = archive(uow, client)  # after the handler saw the client active and asked nothing

    with pytest.raises(Unavailable):  # a temporary failure: the handler puts the event back on the queue
        commands.add_deal_event(uow, "deal_created", event, None)
    uow.rollback()
    assert deal_entries(uow, client["id"]) == [], "nothing of the first attempt is kept"

    assert commands.add_deal_event(uow, "deal_created", event, commands.DealOpenAnswer(archived_at, True)) is True
    assert uow.session.get(Client, client["id"]).archived is False
    assert len(deal_entries(uow, client["id"])) == 1


def test_an_answer_given_for_an_earlier_archiving_is_asked_again(uow):
    client = new_client(uow)
    first_archiving = archive(uow, client)
    commands.set_archived(uow, HEAD, client["id"], False)
    later_archiving = archive(uow, client)  # restored and archived again after the answer
    assert later_archiving != first_archiving

    with pytest.raises(Unavailable):
        commands.add_deal_event(uow, "deal_created", deal_event(client["id"]),
                                commands.DealOpenAnswer(first_archiving, True))


def test_other_deal_events_leave_an_archived_client_archived(uow):
    client = new_client(uow)
    archive(uow, client)

    commands.add_deal_event(uow, "deal_updated", deal_event(client["id"], changed=["title"]))

    assert uow.session.get(Client, client["id"]).archived is True
    assert uow.events == []


def test_a_deal_opened_between_the_open_deals_question_and_the_archive_stops_the_archive(uow):
    client = new_client(uow)
    asked = commands.DealCheck([], repo.deal_openings(uow.session, client["id"]))  # the deals service said: none
    commands.add_deal_event(uow, "deal_created", deal_event(client["id"]))  # a deal's event, handled meanwhile

    with pytest.raises(Conflict) as error:
        commands.set_archived(uow, HEAD, client["id"], True, asked)

    assert "a deal was opened" in error.value.message
    assert uow.session.get(Client, client["id"]).archived is False


def test_a_deal_opened_between_the_question_and_a_branch_move_stops_the_move(uow):
    client = new_client(uow)
    admin = Caller(str(uuid.uuid4()), "admin", None)
    asked = commands.DealCheck([], repo.deal_openings(uow.session, client["id"]))
    commands.add_deal_event(uow, "deal_created", deal_event(client["id"]))

    with pytest.raises(Conflict):
        commands.update_client(uow, admin, client["id"], {"branch_id": str(uuid.uuid4())}, None, None, "RU", asked)


def test_a_move_the_service_did_not_check_deals_for_is_refused(uow):
    """The service asks the deals service only when it sees a move; a move that a concurrent one made
    real in between reaches the command unchecked."""
    client = new_client(uow)
    admin = Caller(str(uuid.uuid4()), "admin", None)

    with pytest.raises(Conflict):
        commands.update_client(uow, admin, client["id"], {"branch_id": str(uuid.uuid4())}, None, None, "RU", None)
