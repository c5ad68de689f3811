"""Automations: events become tasks from templates for the owner or the head, once, after their delay."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from crm_common.errors import Forbidden, ValidationError
from crm_common.schemas import iso
from tasks import commands
from tasks.models import ScheduledTask, Task


def deal_event(office, deal, event_type="deal_created", occurred_at=None, **extra):
    payload = {"event_id": str(uuid.uuid4()), "occurred_at": occurred_at or iso(datetime.now(UTC)),
               "branch_id": deal["branch_id"], "actor_id": None, "deal": deal, **extra}
    return payload


def tasks_of(office):
    return office.uow.read(lambda s: s.scalars(select(Task)).all())


def test_a_deal_event_makes_a_task_from_the_template_for_the_deals_owner_once(office):
    template = office.template()
    office.automation(template)
    client = office.client(office.manager)
    event = deal_event(office, office.deal(client))
    assert office.uow.call(commands.follow_event, "deal_created", event) is True
    assert office.uow.call(commands.follow_event, "deal_created", event) is False
    made = tasks_of(office)
    assert len(made) == 1
    task = made[0]
    assert task.assignee_id == office.manager.id and task.author_id is None
    assert (task.client_id, task.deal_id, task.template_id) == (client["id"], event["deal"]["id"], template["id"])
    assert [item["text"] for item in task.checklist] == ["Представиться", "Выявить потребность"]


def test_an_automation_for_the_head_gives_the_task_to_the_branchs_head(office):
    office.automation(office.template(), assign_to="head", event="deal_won")
    event = deal_event(office, office.deal(office.client()), "deal_won", stage={"id": "s", "name": "Успех", "kind": "won"})
    office.uow.call(commands.follow_event, "deal_won", event)
    assert [t.assignee_id for t in tasks_of(office)] == [office.head.id]


def test_only_the_stage_an_automation_names_sets_it_off(office):
    pipeline_id, stage_id = str(uuid.uuid4()), str(uuid.uuid4())
    pipeline = {"id": pipeline_id, "branch_id": office.north, "stages": [{"id": stage_id}]}
    office.automation(office.template(), pipeline=pipeline, event="deal_stage_changed", pipeline_id=pipeline_id,
                      stage_id=stage_id)
    client = office.client()
    other = deal_event(office, office.deal(client, pipeline_id, str(uuid.uuid4())), "deal_stage_changed")
    entering = deal_event(office, office.deal(client, pipeline_id, stage_id), "deal_stage_changed")
    for event in (other, entering):
        office.uow.call(commands.follow_event, "deal_stage_changed", event)
    assert [t.deal_id for t in tasks_of(office)] == [entering["deal"]["id"]]


def test_another_branchs_events_set_off_nothing(office):
    office.automation(office.template())
    office.uow.call(commands.follow_event, "deal_created",
                    deal_event(office, office.deal(office.client(office.south_manager, office.south))))
    assert tasks_of(office) == []


def test_a_delayed_task_waits_in_the_schedule_and_is_made_once_when_due(office, uow):
    office.automation(office.template(), event="deal_won", delay_hours=168)
    won_at = datetime.now(UTC) - timedelta(days=1)
    event = deal_event(office, office.deal(office.client()), "deal_won", occurred_at=iso(won_at),
                       stage={"id": "s", "name": "Успех", "kind": "won"})
    office.uow.call(commands.follow_event, "deal_won", event)
    assert tasks_of(office) == []
    row = uow.read(lambda s: s.scalars(select(ScheduledTask)).one())
    assert row.status == "pending" and row.run_at == won_at.replace(microsecond=won_at.microsecond) + timedelta(days=7)
    people = commands.notices.People(uow.session)
    assert commands.Automations(uow, people, datetime.now(UTC)).run_due() == 0
    uow.close()
    week_later = won_at + timedelta(days=7, minutes=1)
    assert commands.Automations(uow, commands.notices.People(uow.session), week_later).run_due() == 1
    assert commands.Automations(uow, commands.notices.People(uow.session), week_later).run_due() == 0
    uow.close()
    assert len(tasks_of(office)) == 1


def test_a_disabled_automation_sets_off_nothing_and_its_scheduled_tasks_are_not_made(office, uow):
    automation = office.automation(office.template(), delay_hours=1)
    event = deal_event(office, office.deal(office.client()))
    office.uow.call(commands.follow_event, "deal_created", event)
    disabled = office.uow.call(commands.disable_automation, office.head, automation["id"])
    assert disabled["active"] is False and disabled["disabled_at"]
    later = datetime.now(UTC) + timedelta(hours=2)
    assert commands.Automations(uow, commands.notices.People(uow.session), later).run_due() == 0
    uow.close()
    office.uow.call(commands.follow_event, "deal_created", deal_event(office, office.deal(office.client())))
    assert tasks_of(office) == []
    assert uow.read(lambda s: s.scalars(select(ScheduledTask.status)).all()) == ["skipped"]


def test_an_overdue_task_sets_off_the_task_overdue_automations(office):
    office.automation(office.template(name="Разбор просрочки"), event="task_overdue", assign_to="head")
    office.backdate(office.task()["id"])
    office.check()
    made = [t for t in tasks_of(office) if t.title == "Разбор просрочки"]
    assert [t.assignee_id for t in made] == [office.head.id]


def test_automations_are_for_heads_and_admins_and_check_their_template_and_filters(office):
    template = office.template()
    with pytest.raises(Forbidden):
        office.automation(template, caller=office.manager)
    with pytest.raises(ValidationError) as error:
        office.automation(template, caller=office.south_head)
    assert "template_id" in error.value.fields
    with pytest.raises(ValidationError) as error:
        office.automation(template, event="client_created", pipeline_id=str(uuid.uuid4()))
    assert "pipeline_id" in error.value.fields
    with pytest.raises(ValidationError) as error:
        office.automation(template, pipeline_id=str(uuid.uuid4()), pipeline=None)
    assert "pipeline_id" in error.value.fields
    pipeline = {"id": str(uuid.uuid4()), "branch_id": office.north, "stages": [{"id": str(uuid.uuid4())}]}
    with pytest.raises(ValidationError) as error:
        office.automation(template, pipeline=pipeline, pipeline_id=pipeline["id"], stage_id=str(uuid.uuid4()))
    assert "stage_id" in error.value.fields
    with pytest.raises(ValidationError) as error:
        office.automation(template, event="deal_exploded")
    assert "event" in error.value.fields


def test_editing_a_template_makes_a_new_version_and_old_tasks_keep_theirs(office):
    template = office.template()
    old_task = office.task(template_id=template["id"])
    changed = office.uow.call(commands.update_template, office.head, template["id"], {"checklist": ["Один шаг"]}, 1)
    assert changed["version"] == 2 and changed["checklist"] == ["Один шаг"]
    new_task = office.task(template_id=template["id"])
    assert (old_task["template_version"], new_task["template_version"]) == (1, 2)
    assert [i["text"] for i in new_task["checklist"]] == ["Один шаг"]
    same = office.uow.call(commands.update_template, office.head, template["id"], {"checklist": ["Один шаг"]}, None)
    assert same["version"] == 2
    with pytest.raises(Forbidden):
        office.uow.call(commands.update_template, office.manager, template["id"], {"name": "x"}, None)


def test_an_event_no_automation_of_its_branch_follows_writes_nothing_not_even_its_delivery(office):
    office.automation(office.template(), event="deal_won")
    event = deal_event(office, office.deal(office.client()))

    assert office.uow.call(commands.follow_event, "deal_created", event) is False

    assert office.uow.read(lambda s: s.get(office.uow.processed_model, event["event_id"])) is None
    assert tasks_of(office) == [] and office.uow.read(lambda s: s.scalars(select(ScheduledTask)).all()) == []
