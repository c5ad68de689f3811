"""Deal events on a client's timeline: written once, and a deal opened for an archived client restores it."""

import uuid

from sqlalchemy import select

from clients import commands
from clients.models import Client, TimelineEntry
from crm_common.caller import Caller
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


def test_a_deal_opened_for_a_client_archived_meanwhile_brings_the_client_back(uow):
    client = new_client(uow)
    commands.set_archived(uow, HEAD, client["id"], True)  # the archive saw no open deals a moment before
    uow.events.clear()

    commands.add_deal_event(uow, "deal_created", deal_event(client["id"]))

    assert uow.session.get(Client, client["id"]).archived is False
    assert uow.event_types() == ["client_restored"]
    assert EVENTS["client_restored"]().validate(uow.events[0][1]) == {}
    restored = uow.session.scalars(select(TimelineEntry).where(TimelineEntry.type == "client_restored")).one()
    assert restored.data["reason"] == "a deal was opened"


def test_other_deal_events_leave_an_archived_client_archived(uow):
    client = new_client(uow)
    commands.set_archived(uow, HEAD, client["id"], True)
    uow.events.clear()

    commands.add_deal_event(uow, "deal_updated", deal_event(client["id"], changed=["title"]))

    assert uow.session.get(Client, client["id"]).archived is True
    assert uow.events == []
