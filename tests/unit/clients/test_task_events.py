"""Task and complaint events on a client's timeline: one entry per event, whatever redelivery does."""

import uuid

from sqlalchemy import select

from clients import commands
from clients.models import TimelineEntry
from crm_common.caller import Caller

BRANCH = str(uuid.uuid4())
HEAD = Caller(str(uuid.uuid4()), "head", BRANCH)


def task(client_id):
    return {"id": str(uuid.uuid4()), "title": "Перезвонить", "status": "done", "assignee_id": HEAD.id,
            "due_at": "2026-11-28T10:00:00Z", "client_id": client_id, "deal_id": None, "branch_id": BRANCH}


def event(record_key, record, **extra):
    return {"event_id": str(uuid.uuid4()), "occurred_at": "2026-11-27T10:00:00Z", "branch_id": BRANCH,
            "actor_id": HEAD.id, record_key: record, **extra}


def entries(uow, client_id):
    return uow.session.scalars(select(TimelineEntry).where(TimelineEntry.client_id == client_id)
                               .where(TimelineEntry.kind.in_(("task", "complaint")))).all()


def new_client(uow) -> dict:
    return commands.create_client(uow, HEAD, {"kind": "company", "name": "ООО Ромашка"}, None, "RU")


def test_a_completed_task_is_on_its_clients_timeline_once_however_often_it_is_delivered(uow):
    client = new_client(uow)
    completed = event("task", task(client["id"]), on_time=False)
    assert commands.add_task_event(uow, "task_completed", completed) is True
    assert commands.add_task_event(uow, "task_completed", completed) is False
    (entry,) = entries(uow, client["id"])
    assert (entry.kind, entry.type, entry.ref_id) == ("task", "task_completed", completed["task"]["id"])
    assert entry.data["on_time"] is False and entry.data["title"] == "Перезвонить"


def test_a_resolved_complaint_shows_its_resolution(uow):
    client = new_client(uow)
    complaint = {"id": str(uuid.uuid4()), "subject": "Опоздали", "status": "resolved", "owner_id": HEAD.id,
                 "due_at": "2026-11-28T10:00:00Z", "deal_id": None, "client_id": client["id"],
                 "resolution": "Скидка 10%"}
    commands.add_task_event(uow, "complaint_resolved", event("complaint", complaint))
    (entry,) = entries(uow, client["id"])
    assert entry.kind == "complaint" and entry.data["resolution"] == "Скидка 10%"


def test_a_task_without_a_client_or_of_an_unknown_client_leaves_no_entry(uow):
    no_client = event("task", task(None))
    unknown = event("task", task(str(uuid.uuid4())))
    assert commands.add_task_event(uow, "task_created", no_client) is False
    assert commands.add_task_event(uow, "task_created", unknown) is False
    assert uow.session.scalars(select(TimelineEntry).where(TimelineEntry.kind == "task")).all() == []
