"""Tasks through their use cases: who may set, see, tick, complete, edit and cancel them."""

import pytest

from crm_common.errors import ChecklistIncomplete, Conflict, Forbidden, ValidationError, VersionConflict
from crm_common.schemas import PageQuerySchema
from tasks import commands
from tasks.exceptions import ChecklistItemNotFound, TaskNotFound
from tests.unit.tasks.conftest import later


def page(**filters):
    return {**PageQuerySchema().load({}), **filters}


def test_a_task_defaults_to_the_caller_and_announces_itself(office):
    task = office.task(checklist=["Позвонить", "Записать итог"])
    assert task["assignee_id"] == task["author_id"] == office.manager.id
    assert task["branch_id"] == office.north and task["status"] == "open" and task["overdue"] is False
    assert [item["text"] for item in task["checklist"]] == ["Позвонить", "Записать итог"]
    assert office.uow.event_types() == ["task_created"]
    assert office.events("task_created")[0]["task"] == task


def test_a_manager_cannot_give_a_task_to_someone_else(office):
    with pytest.raises(Forbidden):
        office.task(assignee_id=office.other_manager.id)


@pytest.mark.parametrize("who", ["retired", "south_manager", "stranger"])
def test_a_head_assigns_only_to_active_users_of_the_branch(office, who):
    stranger = "00000000-0000-4000-8000-000000000000"
    assignee = {"retired": office.retired, "south_manager": office.south_manager.id}.get(who, stranger)
    with pytest.raises(ValidationError) as error:
        office.task(office.head, assignee_id=assignee)
    assert "assignee_id" in error.value.fields
    assert office.uow.events == []


def test_a_deadline_in_the_past_is_refused(office):
    with pytest.raises(ValidationError) as error:
        office.task(due_at="2020-01-01T00:00:00Z")
    assert error.value.fields == {"due_at": ["Must be in the future."]}


def test_a_client_or_deal_the_caller_does_not_see_is_refused(office):
    client = office.client()
    with pytest.raises(ValidationError) as error:
        office.task(client_id=client["id"], client=None)
    assert "client_id" in error.value.fields
    with pytest.raises(ValidationError) as error:
        office.task(deal_id=client["id"], deal=None)
    assert "deal_id" in error.value.fields


def test_a_deal_of_another_client_is_refused_and_a_deal_alone_brings_its_client(office):
    client, other = office.client(), office.client()
    deal = office.deal(client)
    with pytest.raises(ValidationError) as error:
        office.task(client_id=other["id"], client=other, deal_id=deal["id"], deal=deal)
    assert "deal_id" in error.value.fields
    task = office.task(deal_id=deal["id"], deal=deal)
    assert (task["client_id"], task["deal_id"]) == (client["id"], deal["id"])


def test_an_admins_task_goes_to_the_branch_of_its_client_or_assignee(office):
    client = office.client()
    task = office.task(office.admin, client_id=client["id"], client=client, assignee_id=office.manager.id)
    assert task["branch_id"] == office.north and task["author_id"] == office.admin.id
    with pytest.raises(ValidationError) as error:
        office.task(office.admin)
    assert "assignee_id" in error.value.fields


def test_a_task_from_a_template_copies_its_steps_instruction_deadline_and_penalty(office):
    template = office.template(penalty={"amount": "300.00", "currency": "RUB"})
    data = commands.load_new_task({"template_id": template["id"]})
    task = office.uow.call(commands.create_task, office.manager, data, None, None, office.directory)
    assert task["title"] == "Первый звонок" and task["description"] == "Позвоните и представьтесь."
    assert [item["text"] for item in task["checklist"]] == ["Представиться", "Выявить потребность"]
    assert task["penalty"] == {"amount": "300.00", "currency": "RUB"}
    assert (task["template_id"], task["template_version"]) == (template["id"], 1)
    own = office.task(template_id=template["id"], checklist=[], title="Свой звонок")
    assert own["checklist"] == [] and own["title"] == "Свой звонок"


def test_an_unknown_template_is_refused(office):
    with pytest.raises(ValidationError) as error:
        office.task(template_id=office.head.id)
    assert "template_id" in error.value.fields


def test_a_manager_sees_tasks_assigned_to_them_or_set_by_them_a_head_the_branch_others_nothing(office):
    mine = office.task()
    for_other = office.task(office.head, assignee_id=office.other_manager.id)
    read = office.uow.read
    assert {t["id"] for t in read(commands.list_tasks, office.manager, page())["items"]} == {mine["id"]}
    assert {t["id"] for t in read(commands.list_tasks, office.head, page())["items"]} == {mine["id"], for_other["id"]}
    assert read(commands.list_tasks, office.south_head, page())["items"] == []
    with pytest.raises(TaskNotFound):
        read(commands.require_task, office.south_head, mine["id"])
    with pytest.raises(TaskNotFound):
        read(commands.require_task, office.manager, "not-an-id")


def test_tasks_filter_by_status_assignee_overdue_and_deadline(office):
    soon = office.task(due_at=later(1))
    office.task(due_at=later(48))
    office.uow.call(commands.complete_task, office.manager, soon["id"], office.policy)
    read = office.uow.read
    assert [t["id"] for t in read(commands.list_tasks, office.head, page(status="done"))["items"]] == [soon["id"]]
    from datetime import UTC, datetime, timedelta
    due_before = datetime.now(UTC) + timedelta(hours=2)
    assert [t["id"] for t in read(commands.list_tasks, office.head, page(due_before=due_before))["items"]] == [soon["id"]]
    assert read(commands.list_tasks, office.head, page(overdue=True))["items"] == []
    assert len(read(commands.list_tasks, office.head, page(assignee_id=office.manager.id))["items"]) == 2


def test_steps_are_ticked_one_by_one_and_an_index_out_of_range_is_not_found(office):
    task = office.task(checklist=["Позвонить", "Записать итог"])
    ticked = office.uow.call(commands.tick, office.manager, task["id"], "1", {"done": True})
    assert [item["done"] for item in ticked["checklist"]] == [False, True] and ticked["version"] == 2
    for index in ("2", "-1", "x"):
        with pytest.raises(ChecklistItemNotFound):
            office.uow.call(commands.tick, office.manager, task["id"], index, {"done": True})
    with pytest.raises(ValidationError):
        office.uow.call(commands.tick, office.manager, task["id"], "0", {"done": "yes"})


def test_completing_needs_every_step_and_completing_twice_announces_it_once(office):
    task = office.task(checklist=["Позвонить"])
    with pytest.raises(ChecklistIncomplete):
        office.uow.call(commands.complete_task, office.manager, task["id"], office.policy)
    office.uow.call(commands.tick, office.manager, task["id"], "0", {"done": True})
    done = office.uow.call(commands.complete_task, office.manager, task["id"], office.policy)
    again = office.uow.call(commands.complete_task, office.manager, task["id"], office.policy)
    assert done == again and done["status"] == "done" and done["completed_at"]
    completions = office.events("task_completed")
    assert len(completions) == 1 and completions[0]["on_time"] is True


def test_only_the_assignee_or_a_head_completes_and_only_the_author_or_a_head_cancels(office):
    task = office.task(office.head, assignee_id=office.manager.id)
    with pytest.raises(Forbidden):
        office.uow.call(commands.cancel_task, office.manager, task["id"], {"reason": "Не хочу"})
    cancelled = office.uow.call(commands.cancel_task, office.head, task["id"], {"reason": "Клиент отказался"})
    assert cancelled["status"] == "cancelled" and cancelled["cancel_reason"] == "Клиент отказался"
    assert office.events("task_cancelled")[0]["reason"] == "Клиент отказался"
    with pytest.raises(Conflict):
        office.uow.call(commands.complete_task, office.manager, task["id"], office.policy)
    with pytest.raises(ValidationError):
        office.uow.call(commands.cancel_task, office.head, task["id"], {})


def test_an_edit_with_a_stale_version_is_refused_and_a_fresh_one_is_announced(office):
    task = office.task()
    changed = office.uow.call(commands.update_task, office.manager, task["id"], {"title": "Новый"}, 1, office.directory)
    assert changed["version"] == 2 and changed["title"] == "Новый"
    assert office.events("task_updated")[-1]["changed"] == ["title"]
    with pytest.raises(VersionConflict) as error:
        office.uow.call(commands.update_task, office.manager, task["id"], {"title": "Старый"}, 1, office.directory)
    assert error.value.details == {"current_version": 2}


def test_a_head_reassigns_within_the_branch_and_a_manager_not_at_all(office):
    task = office.task(office.head, assignee_id=office.manager.id)
    with pytest.raises(Forbidden):
        office.uow.call(commands.update_task, office.manager, task["id"], {"title": "x"}, None, office.directory)
    moved = office.uow.call(commands.update_task, office.head, task["id"], {"assignee_id": office.other_manager.id},
                            None, office.directory)
    assert moved["assignee_id"] == office.other_manager.id
    with pytest.raises(ValidationError):
        office.uow.call(commands.update_task, office.head, task["id"], {"assignee_id": office.retired}, None,
                        office.directory)
    with pytest.raises(ValidationError):
        office.uow.call(commands.update_task, office.head, task["id"], {}, None, office.directory)
