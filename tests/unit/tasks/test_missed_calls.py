"""A missed incoming call (``call_missed`` from the clients service) gives the owner a call-back task and a notice."""

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from crm_common.schemas import PageQuerySchema, iso
from tasks import commands, repository
from tasks.models import Task


def missed_event(office, client, owner_id):
    started = iso(datetime.now(UTC) - timedelta(minutes=1))
    call = {"id": str(uuid.uuid4()), "call_id": "1700000000.42", "branch_id": client["branch_id"],
            "client_id": client["id"], "client_created": False, "direction": "in", "from": "+79161234567",
            "to": "101", "status": "missed", "started_at": started, "answered_at": None, "ended_at": None,
            "duration_s": None, "user_id": None, "route_to": None}
    return {"event_id": str(uuid.uuid4()), "occurred_at": iso(datetime.now(UTC)), "branch_id": client["branch_id"],
            "actor_id": None, "call": call, "client_id": client["id"], "owner_id": owner_id}


def test_a_missed_call_makes_one_call_back_task_for_the_owner_due_within_the_sla(office):
    client = office.client(office.manager)
    event = missed_event(office, client, office.manager.id)

    assert office.uow.call(commands.call_missed, event, office.policy) is True
    assert office.uow.call(commands.call_missed, event, office.policy) is False
    tasks = office.uow.read(lambda s: s.scalars(select(Task)).all())
    assert [(t.assignee_id, t.client_id, t.author_id) for t in tasks] == [(office.manager.id, client["id"], None)]
    learnt = datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00"))
    assert tasks[0].due_at == learnt + timedelta(minutes=office.policy.callback_sla_minutes)
    assert "+79161234567" in tasks[0].title
    notices = office.uow.read(repository.list_notifications, office.manager, PageQuerySchema().load({}),
                              lambda n: n)["items"]
    assert [(n.kind, n.ref_type, n.ref_id) for n in notices] == [("call_missed", "task", tasks[0].id)]


def test_a_missed_call_of_an_unowned_client_goes_to_the_head(office):
    client = office.client(office.manager)
    office.uow.call(commands.call_missed, missed_event(office, client, None), office.policy)

    tasks = office.uow.read(lambda s: s.scalars(select(Task)).all())
    assert [t.assignee_id for t in tasks] == [office.head.id]
