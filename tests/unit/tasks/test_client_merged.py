"""A merged client's tasks follow it to the client it became, once per event."""

import uuid

from tasks import commands
from tasks.models import Task


def merged(office, kept: dict, merged_id: str, event_id: str | None = None) -> dict:
    return {"event_id": event_id or str(uuid.uuid4()), "occurred_at": "2026-11-30T10:00:00Z",
            "branch_id": kept["branch_id"], "actor_id": office.head.id, "client": kept, "merged_id": merged_id}


def client_of(office, task_id: str) -> str | None:
    with office.uow.transaction() as session:
        client_id = session.get(Task, task_id).client_id
    office.uow.close()
    return client_id


def test_the_merged_clients_tasks_move_to_the_kept_client_with_one_task_updated_each(office):
    kept, gone, bystander = office.client(), office.client(), office.client()
    moving = [office.task(client=gone, client_id=gone["id"])["id"] for _ in range(2)]
    staying = office.task(client=bystander, client_id=bystander["id"])["id"]
    office.uow.take_events()

    moved = office.uow.call(commands.repoint_merged_client, merged(office, kept, gone["id"]))

    assert moved == 2
    assert [client_of(office, task_id) for task_id in moving] == [kept["id"], kept["id"]]
    assert client_of(office, staying) == bystander["id"]
    updates = office.events("task_updated")
    assert sorted(u["task"]["id"] for u in updates) == sorted(moving)
    assert all(u["changed"] == ["client_id"] and u["task"]["client_id"] == kept["id"] for u in updates)


def test_the_same_merge_delivered_twice_moves_and_tells_once(office):
    kept, gone = office.client(), office.client()
    office.task(client=gone, client_id=gone["id"])
    office.uow.take_events()
    event = merged(office, kept, gone["id"])

    assert office.uow.call(commands.repoint_merged_client, event) == 1
    assert office.uow.call(commands.repoint_merged_client, event) == 0
    assert len(office.events("task_updated")) == 1
