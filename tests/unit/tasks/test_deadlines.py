"""Missed deadlines: a task found past its deadline becomes overdue once, with exactly one penalty."""

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from crm_common.errors import Conflict, Forbidden, ValidationError
from crm_common.schemas import PageQuerySchema
from tasks import commands, repository
from tasks.exceptions import PenaltyNotFound
from tasks.models import Notification, Penalty


def page(**filters):
    return {**PageQuerySchema().load({}), **filters}


def penalties(office, caller=None, **filters):
    return office.uow.read(repository.list_penalties, caller or office.head, page(**filters), lambda p: p)["items"]


def test_a_task_past_its_deadline_becomes_overdue_with_one_penalty_however_often_the_check_runs(office):
    task = office.task(checklist=["Позвонить"])
    office.backdate(task["id"])
    assert office.check() == 1
    assert office.check() == 0
    assert office.check() == 0
    found = office.uow.read(commands.require_task, office.manager, task["id"])
    assert found.overdue and found.status == "open"
    rows = penalties(office)
    assert len(rows) == 1 and rows[0].user_id == office.manager.id and rows[0].task_id == task["id"]
    assert office.uow.event_types().count("task_overdue") == office.uow.event_types().count("penalty_recorded") == 1


def test_the_penalty_is_the_tasks_own_else_the_default_and_counts_in_the_deadlines_month(office):
    own = office.task(penalty={"amount": "1500.00", "currency": "USD"})
    plain = office.task()
    for task in (own, plain):
        office.backdate(task["id"], hours=30 * 24)
    office.check()
    by_task = {p.task_id: p for p in penalties(office)}
    assert (by_task[own["id"]].amount_minor, by_task[own["id"]].currency) == (150000, "USD")
    assert (by_task[plain["id"]].amount_minor, by_task[plain["id"]].currency) == (50000, "RUB")
    recorded = office.events("penalty_recorded")[0]["penalty"]
    assert recorded["month"] == office.uow.read(commands.require_task, office.head, recorded["task_id"]).due_at.strftime("%Y-%m")
    assert Decimal(recorded["amount"]) in (Decimal("1500.00"), Decimal("500.00"))


def test_a_done_or_cancelled_task_is_never_penalised(office):
    done, cancelled = office.task(), office.task()
    office.uow.call(commands.complete_task, office.manager, done["id"], office.policy)
    office.uow.call(commands.cancel_task, office.manager, cancelled["id"], {"reason": "Не нужно"})
    for task in (done, cancelled):
        office.backdate(task["id"])
    assert office.check() == 0 and penalties(office) == []


def test_completing_late_before_the_check_records_the_penalty_once_and_says_not_on_time(office):
    task = office.task()
    office.backdate(task["id"])
    done = office.uow.call(commands.complete_task, office.manager, task["id"], office.policy)
    assert done["overdue"] is True and done["status"] == "done"
    assert office.check() == 0
    assert len(penalties(office)) == 1
    assert office.events("task_completed")[0]["on_time"] is False
    assert office.uow.event_types() [-3:] == ["task_overdue", "penalty_recorded", "task_completed"]


def test_the_assignee_and_the_branchs_head_are_told_of_an_overdue_task(office):
    task = office.task()
    office.backdate(task["id"])
    office.check()
    notices = office.uow.read(lambda s: s.scalars(select(Notification)).all())
    assert {(n.user_id, n.kind, n.ref_id) for n in notices} == {
        (office.manager.id, "task_overdue", task["id"]), (office.head.id, "task_overdue", task["id"])}


def test_the_check_works_through_more_overdue_tasks_than_one_batch(office, uow):
    for _ in range(7):
        office.backdate(office.task()["id"])
    assert commands.Deadlines(uow, office.policy).check(batch=3) == 7
    uow.close()
    assert uow.read(lambda s: s.scalar(select(func.count()).select_from(Penalty))) == 7


def test_a_manager_sees_own_penalties_a_head_the_branchs_and_another_branch_none(office):
    mine = office.task()
    theirs = office.task(office.other_manager)
    for task in (mine, theirs):
        office.backdate(task["id"])
    office.check()
    assert {p.task_id for p in penalties(office, office.manager)} == {mine["id"]}
    assert len(penalties(office, office.head)) == 2
    assert penalties(office, office.south_head) == []
    assert len(penalties(office, office.head, user_id=office.other_manager.id)) == 1
    assert penalties(office, office.head, month="1999-01") == []


def test_a_head_waives_a_penalty_once_with_a_reason_and_a_manager_may_not(office):
    office.backdate(office.task()["id"])
    office.check()
    penalty_id = penalties(office)[0].id
    with pytest.raises(Forbidden):
        office.uow.call(commands.waive_penalty, office.manager, penalty_id, {"reason": "Сам себе"})
    with pytest.raises(ValidationError):
        office.uow.call(commands.waive_penalty, office.head, penalty_id, {"reason": " "})
    with pytest.raises(PenaltyNotFound):
        office.uow.call(commands.waive_penalty, office.south_head, penalty_id, {"reason": "Чужой"})
    waived = office.uow.call(commands.waive_penalty, office.head, penalty_id, {"reason": "Клиент перенёс"})
    assert waived["status"] == "waived" and waived["waive_reason"] == "Клиент перенёс"
    assert office.events("penalty_waived")[0]["reason"] == "Клиент перенёс"
    with pytest.raises(Conflict):
        office.uow.call(commands.waive_penalty, office.head, penalty_id, {"reason": "Ещё раз"})


def test_a_penalty_built_for_a_batch_looks_exactly_as_a_stored_one(office):
    from tasks import views

    office.backdate(office.task(penalty={"amount": "1250.50", "currency": "EUR"})["id"])
    office.check()
    stored = penalties(office)[0]
    row = {column.key: getattr(stored, column.key) for column in stored.__table__.columns}
    assert views.penalty_row(row) == views.penalty(stored)
