"""Complaints, stuck deals and notifications; the users learnt from the gateway; the export for read models."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from crm_common.errors import BadRequest, Conflict, ValidationError, VersionConflict
from crm_common.schemas import PageQuerySchema, iso
from tasks import commands, notices, repository
from tasks.exceptions import ComplaintNotFound, NotificationNotFound
from tasks.models import Notification, Task, User
from tests.unit.tasks.conftest import user_event


def page(**filters):
    return {**PageQuerySchema().load({}), **filters}


def complaint_of(office, caller=None, client=None, deal=None, **fields):
    client = client or office.client(office.manager)
    data = commands.load_new_complaint({"client_id": client["id"], "subject": "Доставка опоздала",
                                        "text": "Ждали неделю", **fields})
    return office.uow.call(commands.create_complaint, caller or office.head, data, client, deal, office.policy)


def notices_of(office, caller):
    return office.uow.read(repository.list_notifications, caller, page(), lambda n: n)["items"]


def test_a_complaint_opens_a_task_for_the_clients_owner_due_within_the_sla_and_tells_the_head(office):
    before = datetime.now(UTC)
    complaint = complaint_of(office, channel="phone")
    assert complaint["status"] == "open" and complaint["owner_id"] == office.manager.id
    due = datetime.fromisoformat(complaint["due_at"].replace("Z", "+00:00"))
    assert before + timedelta(hours=24) <= due <= datetime.now(UTC) + timedelta(hours=24)
    task = office.uow.read(commands.require_task, office.manager, complaint["task_id"])
    assert task.assignee_id == office.manager.id and task.due_at == due and task.client_id == complaint["client_id"]
    assert office.uow.event_types() == ["task_created", "complaint_created"]
    assert [(n.kind, n.ref_id) for n in notices_of(office, office.head)] == [("complaint", complaint["id"])]
    assert [n.kind for n in notices_of(office, office.manager)] == ["complaint"]


def test_a_complaint_about_an_unowned_client_goes_to_the_head(office):
    client = office.client(owner=None)
    client["owner_id"] = None
    assert complaint_of(office, office.manager, client=client)["owner_id"] == office.head.id


def test_a_complaint_needs_a_client_the_caller_sees_and_a_deal_of_that_client(office):
    data = commands.load_new_complaint({"client_id": str(uuid.uuid4()), "subject": "x", "text": "y"})
    with pytest.raises(ValidationError) as error:
        office.uow.call(commands.create_complaint, office.head, data, None, None, office.policy)
    assert "client_id" in error.value.fields
    client = office.client()
    with pytest.raises(ValidationError) as error:
        complaint_of(office, client=client, deal_id=str(uuid.uuid4()), deal=office.deal(office.client()))
    assert "deal_id" in error.value.fields
    with pytest.raises(ValidationError) as error:
        commands.load_new_complaint({"client_id": client["id"], "text": "y"})
    assert "subject" in error.value.fields


def test_resolving_needs_a_resolution_closes_the_complaint_and_its_task(office):
    complaint = complaint_of(office)
    with pytest.raises(ValidationError) as error:
        office.uow.call(commands.update_complaint, office.manager, complaint["id"], {"status": "resolved"})
    assert "resolution" in error.value.fields
    working = office.uow.call(commands.update_complaint, office.manager, complaint["id"], {"status": "in_progress"}, 1)
    assert working["status"] == "in_progress" and working["version"] == 2
    with pytest.raises(VersionConflict):
        office.uow.call(commands.update_complaint, office.manager, complaint["id"], {"status": "resolved",
                                                                                      "resolution": "x"}, 1)
    resolved = office.uow.call(commands.update_complaint, office.manager, complaint["id"],
                               {"status": "resolved", "resolution": "Вернули деньги"})
    assert resolved["resolved_at"] and resolved["resolution"] == "Вернули деньги"
    assert office.uow.event_types()[-2:] == ["complaint_resolved", "task_completed"]
    assert office.uow.read(commands.require_task, office.head, complaint["task_id"]).status == "done"
    with pytest.raises(Conflict):
        office.uow.call(commands.update_complaint, office.head, complaint["id"], {"status": "in_progress"})


def test_complaints_are_seen_by_their_owner_and_the_branch_not_by_others(office):
    complaint = complaint_of(office)
    read = office.uow.read
    assert read(commands.require_complaint, office.manager, complaint["id"]).id == complaint["id"]
    for stranger in (office.other_manager, office.south_head):
        with pytest.raises(ComplaintNotFound):
            read(commands.require_complaint, stranger, complaint["id"])
    found = read(repository.list_complaints, office.head, page(status="open"), lambda c: c.id)["items"]
    assert found == [complaint["id"]]


def stuck_event(office, deal):
    return {"event_id": str(uuid.uuid4()), "occurred_at": iso(datetime.now(UTC)), "branch_id": deal["branch_id"],
            "actor_id": None, "deal": deal, "stage": {"id": deal["stage_id"], "name": "КП отправлено", "kind": "open"},
            "max_days": 2.0, "days_in_stage": 3.5}


def test_a_stuck_deal_makes_a_task_for_its_owner_and_tells_the_head_once(office):
    deal = office.deal(office.client(office.manager))
    event = stuck_event(office, deal)
    assert office.uow.call(commands.deal_stuck, event, office.policy) is True
    assert office.uow.call(commands.deal_stuck, event, office.policy) is False
    tasks = office.uow.read(lambda s: s.scalars(select(Task)).all())
    assert [(t.assignee_id, t.deal_id, t.client_id) for t in tasks] == [(office.manager.id, deal["id"], deal["client_id"])]
    assert "КП отправлено" in tasks[0].description
    head_notices = notices_of(office, office.head)
    assert [(n.kind, n.ref_type, n.ref_id) for n in head_notices] == [("deal_stuck", "deal", deal["id"])]
    assert "3.5 days" in head_notices[0].text


def test_a_notification_is_read_by_its_user_only_and_reading_again_keeps_the_first_time(office):
    complaint_of(office)
    notice = notices_of(office, office.head)[0]
    with pytest.raises(NotificationNotFound):
        office.uow.call(commands.read_notification, office.manager, notice.id)
    first = office.uow.call(commands.read_notification, office.head, notice.id)
    again = office.uow.call(commands.read_notification, office.head, notice.id)
    assert first["read_at"] and again["read_at"] == first["read_at"]
    unread = office.uow.read(repository.list_notifications, office.head, page(unread=True), lambda n: n)["items"]
    assert unread == []


def test_an_event_that_only_tells_people_is_one_line_in_on_events(office, monkeypatch):
    monkeypatch.setitem(notices.ON_EVENTS, "user_updated", notices.Notice(
        "backup_failed", (notices.ADMINS, notices.HEADS), "Пользователь {user[name]} изменён", "user", "user.id"))
    event = user_event(office.manager.id, "manager", office.north, event_type="user_updated")
    assert office.uow.call(commands.notify_from_event, "user_updated", event) is True
    assert office.uow.call(commands.notify_from_event, "user_updated", event) is False
    rows = office.uow.read(lambda s: s.scalars(select(Notification)).all())
    assert {n.user_id for n in rows} == {office.admin.id, office.head.id}
    assert {n.text for n in rows} == {"Пользователь Анна изменён"} and {n.ref_id for n in rows} == {office.manager.id}


def test_a_failed_backup_is_told_to_every_administrator_once(office):
    from crm_common.events import validate_event

    event = validate_event("backup_failed", {"branch_id": None, "backup_id": "b1", "trigger": "schedule",
                                             "stage": "copy", "error": "offsite:crm: connection refused",
                                             "target": "offsite:crm"})

    assert office.uow.call(commands.notify_from_event, "backup_failed", event) is True
    assert office.uow.call(commands.notify_from_event, "backup_failed", event) is False
    rows = office.uow.read(lambda s: s.scalars(select(Notification)).all())
    assert {n.user_id for n in rows} == {office.admin.id}
    assert [n.text for n in rows] == ["Backup b1 failed (copy): offsite:crm: connection refused"]
    assert rows[0].kind == "backup_failed" and rows[0].ref_id == "b1"


def test_the_users_copy_keeps_the_newest_version_whatever_order_the_events_come_in(office):
    newer = user_event(office.head.id, "head", office.north, active=False, updated_at="2026-06-01T00:00:00Z",
                       event_type="user_updated")
    older = user_event(office.head.id, "head", office.north, active=True, updated_at="2026-03-01T00:00:00Z",
                       event_type="user_updated")
    for event in (newer, older):
        office.uow.call(commands.remember_user, "user_updated", event)
    assert office.uow.read(lambda s: s.get(User, office.head.id).active) is False
    assert notices.People(office.uow.session).heads(office.north) == []
    office.uow.close()


def test_the_export_pages_through_every_record_oldest_first_in_the_events_shape(office):
    made = [office.task()["id"] for _ in range(3)] + [office.task(office.south_manager)["id"]]
    first = office.uow.read(commands.export, "tasks", None, 2)
    rest = office.uow.read(commands.export, "tasks", first["next_cursor"], 2)
    assert [t["id"] for t in first["items"] + rest["items"]] == made and rest["next_cursor"] is None
    assert first["items"][0] == office.events("task_created")[0]["task"]
    assert office.uow.read(commands.export, "penalties", None, 10) == {"items": [], "next_cursor": None}
    with pytest.raises(BadRequest):
        office.uow.read(commands.export, "deals", None, 10)


def test_the_system_gives_a_deactivated_owners_tasks_to_the_head(office):
    leaving = user_event(office.other_manager.id, "manager", office.north, active=False,
                         updated_at="2026-06-01T00:00:00Z", event_type="user_updated")
    office.uow.call(commands.remember_user, "user_updated", leaving)
    deal = office.deal(office.client(office.other_manager))
    office.uow.call(commands.deal_stuck, stuck_event(office, deal), office.policy)
    complaint = complaint_of(office, client=office.client(office.other_manager))
    tasks = office.uow.read(lambda s: s.scalars(select(Task)).all())
    assert {t.assignee_id for t in tasks} == {office.head.id} and complaint["owner_id"] == office.head.id
