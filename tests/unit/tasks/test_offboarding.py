"""The tasks step of an offboarding: open tasks, unresolved complaints and pending automations' tasks change hands;
done and cancelled tasks stay with their assignee."""

import uuid

from tasks import commands, offboarding
from tasks.models import Complaint
from tests.unit.tasks.test_complaints_and_notices import complaint_of


def test_open_tasks_and_complaints_go_to_the_new_assignee_and_finished_tasks_stay(office):
    open_tasks = [office.task(office.manager) for _ in range(3)]
    done = office.task(office.manager)
    office.uow.call(commands.complete_task, office.manager, done["id"], office.policy)
    cancelled = office.task(office.manager)
    office.uow.call(commands.cancel_task, office.manager, cancelled["id"], {"reason": "Не нужно"})
    complaint = complaint_of(office)  # its task is the manager's too
    office.uow.take_events()
    saga = {"id": str(uuid.uuid4()), "from_user_id": office.manager.id, "to_user_id": office.other_manager.id,
            "actor_id": office.head.id}

    assert office.uow.call(offboarding.transfer_tasks, saga, 3) == {"moved": 3, "done": False}
    assert office.uow.call(offboarding.transfer_tasks, saga, 3) == {"moved": 4, "done": True}

    def assignee(task_id):
        return office.uow.read(commands.require_task, office.admin, task_id).assignee_id

    assert {assignee(t["id"]) for t in open_tasks} | {assignee(complaint["task_id"])} == {office.other_manager.id}
    assert assignee(done["id"]) == assignee(cancelled["id"]) == office.manager.id
    assert office.uow.read(lambda s: s.get(Complaint, complaint["id"]).owner_id) == office.other_manager.id
    events = office.uow.take_events()
    assert [name for name, _ in events] == ["task_updated"] * 4
    assert all(p["changed"] == ["assignee_id"] and p["task"]["assignee_id"] == office.other_manager.id
               for _, p in events)
