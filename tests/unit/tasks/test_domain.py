"""The rules of tasks, penalties, templates, complaints and automations, on plain objects."""

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from crm_common.caller import Caller
from crm_common.errors import ChecklistIncomplete, Conflict, Forbidden, ValidationError
from tasks import domain
from tasks.domain import ComplaintRules, PenaltyRules, TaskRules

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
BRANCH = str(uuid.uuid4())


@dataclass
class PlainTask(TaskRules):
    due_at: datetime = NOW + timedelta(hours=2)
    status: str = "open"
    assignee_id: str = "anna"
    author_id: str | None = "boss"
    overdue_at: datetime | None = None
    completed_at: datetime | None = None
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    checklist: list = field(default_factory=lambda: domain.new_checklist(["Позвонить", "Записать итог"]))
    updated_at: datetime = NOW
    title: str = "Перезвонить"


def test_a_task_is_overdue_only_once_and_only_after_its_deadline():
    task = PlainTask(checklist=[])
    assert task.mark_overdue(NOW) is False
    assert task.mark_overdue(NOW + timedelta(hours=3)) is True
    assert task.overdue and task.overdue_at == NOW + timedelta(hours=3)
    assert task.mark_overdue(NOW + timedelta(hours=4)) is False


def test_a_task_that_is_done_or_cancelled_never_becomes_overdue():
    for status in ("done", "cancelled"):
        assert PlainTask(status=status).mark_overdue(NOW + timedelta(days=1)) is False


def test_completing_with_a_step_not_done_is_refused_and_names_the_steps():
    task = PlainTask()
    task.tick(0, True, NOW)
    with pytest.raises(ChecklistIncomplete) as error:
        task.complete(NOW)
    assert error.value.code == "checklist_incomplete" and error.value.status == 409
    assert error.value.details == {"undone": [1]} and "checklist.1" in error.value.fields
    assert task.status == "open"


def test_completing_on_time_then_again_changes_nothing_the_second_time():
    task = PlainTask(checklist=[])
    assert task.complete(NOW) == domain.Completion(on_time=True, became_overdue=False)
    assert task.complete(NOW + timedelta(days=1)) is None
    assert task.completed_at == NOW


def test_completing_late_marks_the_task_overdue_first():
    task = PlainTask(checklist=[])
    completion = task.complete(NOW + timedelta(hours=5))
    assert completion == domain.Completion(on_time=False, became_overdue=True)
    assert task.overdue and task.status == "done"


def test_a_task_found_overdue_and_completed_later_is_not_on_time_and_not_penalised_twice():
    task = PlainTask(checklist=[])
    task.mark_overdue(NOW + timedelta(hours=3))
    assert task.complete(NOW + timedelta(hours=4)) == domain.Completion(on_time=False, became_overdue=False)


def test_ticking_a_step_records_when_and_unticking_clears_it():
    task = PlainTask()
    before = task.checklist
    assert task.tick(1, True, NOW) is True
    assert task.checklist[1] == {"text": "Записать итог", "done": True, "done_at": "2026-11-26T10:00:00Z"}
    assert before[1]["done"] is False, "a new list, so the JSON column sees the change"
    assert task.tick(1, True, NOW) is False
    assert task.tick(1, False, NOW) is True and task.checklist[1]["done_at"] is None


@pytest.mark.parametrize("index", [-1, 2, 99])
def test_a_step_out_of_range_is_not_found(index):
    with pytest.raises(domain.ChecklistItemNotFound):
        PlainTask().tick(index, True, NOW)


def test_a_cancelled_task_cannot_be_completed_or_ticked_and_a_done_one_not_cancelled():
    cancelled = PlainTask()
    assert cancelled.cancel("Клиент отказался", NOW) is True
    assert cancelled.cancel("again", NOW) is False
    with pytest.raises(Conflict):
        cancelled.complete(NOW)
    with pytest.raises(Conflict):
        cancelled.tick(0, True, NOW)
    done = PlainTask(checklist=[])
    done.complete(NOW)
    with pytest.raises(Conflict):
        done.cancel("late", NOW)


def test_moving_the_deadline_into_the_past_is_refused():
    with pytest.raises(ValidationError) as error:
        PlainTask().edit({"due_at": NOW - timedelta(minutes=1)}, NOW)
    assert "due_at" in error.value.fields


def test_the_assignee_works_on_a_task_and_its_author_manages_it():
    task = PlainTask()
    anna, boss = Caller("anna", "manager", BRANCH), Caller("boss", "manager", BRANCH)
    assert task.may_work_on(anna) and not task.may_manage(anna)
    assert task.may_manage(boss) and not task.may_work_on(boss)
    assert task.may_manage(Caller("h", "head", BRANCH)) and task.may_work_on(Caller("a", "admin", None))


def test_a_manager_assigns_only_to_themself():
    manager = Caller("anna", "manager", BRANCH)
    assert domain.assignee_for(manager, None, BRANCH, None) == "anna"
    with pytest.raises(Forbidden):
        domain.assignee_for(manager, "olga", BRANCH, {"users": {"olga": {"branch_id": BRANCH, "active": True}}})


@pytest.mark.parametrize("user", [None, {"branch_id": BRANCH, "active": False}, {"branch_id": "other", "active": True}])
def test_a_head_assigns_only_to_active_users_of_the_branch(user):
    head = Caller("boss", "head", BRANCH)
    directory = {"users": {"olga": user} if user else {}}
    with pytest.raises(ValidationError) as error:
        domain.assignee_for(head, "olga", BRANCH, directory)
    assert "assignee_id" in error.value.fields


def test_the_penalty_is_the_tasks_own_else_the_default_and_counts_in_the_month_of_the_deadline():
    default = domain.Amount(50000, "RUB")
    assert domain.penalty_amount(None, default) == default
    assert domain.penalty_amount(domain.Amount(100, "USD"), default) == domain.Amount(100, "USD")
    assert domain.month_of(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == "2026-12"


def test_a_penalty_is_waived_once():
    @dataclass
    class PlainPenalty(PenaltyRules):
        status: str = "active"
        waived_at: datetime | None = None
        waived_by: str | None = None
        waive_reason: str | None = None

    penalty = PlainPenalty()
    penalty.waive("Клиент перенёс встречу", "boss", NOW)
    assert (penalty.status, penalty.waived_by) == ("waived", "boss")
    with pytest.raises(Conflict):
        penalty.waive("again", "boss", NOW)


def test_a_resolved_complaint_is_closed():
    @dataclass
    class PlainComplaint(ComplaintRules):
        status: str = "open"
        resolution: str | None = None
        resolved_at: datetime | None = None
        updated_at: datetime = NOW

    complaint = PlainComplaint()
    assert complaint.move_to("in_progress", None, NOW) is True
    assert complaint.move_to("in_progress", None, NOW) is False
    assert complaint.move_to("resolved", "Вернули деньги", NOW) is True and complaint.resolved_at == NOW
    assert complaint.move_to("resolved", "Вернули деньги", NOW) is False
    with pytest.raises(Conflict):
        complaint.move_to("in_progress", None, NOW)


def automation(**fields):
    base = dict(active=True, event="deal_stage_changed", branch_id=BRANCH, pipeline_id=None, stage_id=None)
    return SimpleNamespace(**{**base, **fields})


def test_an_automation_matches_its_event_in_its_branch_and_its_pipeline_and_stage():
    record = domain.Record(BRANCH, "anna", "client", "deal", "pipe", "stage")
    assert domain.matches(automation(), "deal_stage_changed", record)
    assert domain.matches(automation(pipeline_id="pipe", stage_id="stage"), "deal_stage_changed", record)
    assert not domain.matches(automation(stage_id="other"), "deal_stage_changed", record)
    assert not domain.matches(automation(pipeline_id="other"), "deal_stage_changed", record)
    assert not domain.matches(automation(branch_id="other"), "deal_stage_changed", record)
    assert not domain.matches(automation(), "deal_won", record)
    assert not domain.matches(automation(active=False), "deal_stage_changed", record)


def test_an_automations_task_is_due_its_delay_after_the_event():
    assert domain.run_at(NOW, 168) == NOW + timedelta(days=7)
    assert domain.run_at(NOW, 0) == NOW


def test_the_owner_and_the_head_stand_in_for_each_other():
    assert domain.choose_assignee("owner", "anna", ["boss"]) == "anna"
    assert domain.choose_assignee("owner", None, ["boss"]) == "boss"
    assert domain.choose_assignee("head", "anna", ["boss", "second"]) == "boss"
    assert domain.choose_assignee("head", "anna", []) == "anna"
    assert domain.choose_assignee("head", None, []) is None


def test_the_record_behind_each_event_is_its_client_deal_complaint_or_task():
    deal = {"id": "d", "branch_id": BRANCH, "owner_id": "anna", "client_id": "c", "pipeline_id": "p", "stage_id": "s"}
    assert domain.record_of("deal_won", {"deal": deal}) == domain.Record(BRANCH, "anna", "c", "d", "p", "s")
    client = {"id": "c", "branch_id": BRANCH, "owner_id": None}
    assert domain.record_of("client_created", {"client": client}) == domain.Record(BRANCH, None, client_id="c")
    task = {"branch_id": BRANCH, "assignee_id": "anna", "client_id": None, "deal_id": "d"}
    assert domain.record_of("task_overdue", {"task": task}) == domain.Record(BRANCH, "anna", None, "d")
