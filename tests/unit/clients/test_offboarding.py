"""The clients step of an offboarding: every client of the leaver, archived ones too, goes to the heir, with its
event and a timeline entry; a merged client (a redirect) is left alone."""

import uuid

from sqlalchemy import select, update

from clients import commands, offboarding
from clients.models import Client, TimelineEntry
from tests.unit.clients.test_commands import DIRECTORY, HEAD, MANAGER, OTHER_MANAGER, create


def test_the_leavers_clients_archived_or_not_go_to_the_heir_once_each(uow):
    mine = [uow.call(create, MANAGER, name=f"Клиент {n}") for n in range(3)]
    uow.call(commands.set_archived, HEAD, mine[2]["id"], True, commands.NO_DEALS)
    merged = uow.call(create, HEAD, directory=DIRECTORY, owner_id=MANAGER.id, name="Дубль")
    uow.session.execute(update(Client).where(Client.id == merged["id"]).values(merged_into=mine[0]["id"]))
    uow.commit()
    others = uow.call(create, OTHER_MANAGER, name="Чужой")
    uow.take_events()
    saga = {"id": str(uuid.uuid4()), "from_user_id": MANAGER.id, "to_user_id": OTHER_MANAGER.id, "actor_id": HEAD.id}

    assert uow.call(offboarding.transfer_clients, saga, 2) == {"moved": 2, "done": False}
    assert uow.call(offboarding.transfer_clients, saga, 2) == {"moved": 3, "done": True}
    assert uow.call(offboarding.transfer_clients, saga, 2) == {"moved": 3, "done": True}

    owners = dict(uow.read(lambda s: s.execute(select(Client.id, Client.owner_id)).all()))
    assert {owners[c["id"]] for c in mine} == {OTHER_MANAGER.id}
    assert owners[merged["id"]] == MANAGER.id and owners[others["id"]] == OTHER_MANAGER.id
    events = uow.take_events()
    assert [name for name, _ in events] == ["client_updated"] * 3
    assert {p["client"]["id"] for _, p in events} == {c["id"] for c in mine}
    assert all(p["changed"] == ["owner_id"] and p["client"]["version"] > 1 for _, p in events)
    entries = uow.read(lambda s: s.scalars(select(TimelineEntry).where(TimelineEntry.data["offboarding_id"].as_string()
                                                                      == saga["id"])).all())
    assert sorted(e.client_id for e in entries) == sorted(c["id"] for c in mine)
