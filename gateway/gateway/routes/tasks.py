"""Tasks, processes, complaints: tasks with checklists and deadlines, penalties, task templates (the written
instruction of each process step), automations and complaints (served by the tasks service)."""

from __future__ import annotations

from crm_common.contracts.tasks import (
    AutomationCreateSchema,
    AutomationQuerySchema,
    AutomationSchema,
    ChecklistTickSchema,
    ComplaintCreateSchema,
    ComplaintQuerySchema,
    ComplaintSchema,
    ComplaintUpdateSchema,
    PenaltyQuerySchema,
    PenaltySchema,
    ReasonSchema,
    TaskCreateSchema,
    TaskQuerySchema,
    TaskSchema,
    TaskUpdateSchema,
    TemplateCreateSchema,
    TemplateQuerySchema,
    TemplateSchema,
    TemplateUpdateSchema,
)
from crm_common.schemas import page_schema
from gateway import identity
from gateway.http import api
from gateway.routes.common import check_named_branch, etag, if_match, query_args

TaskPage = page_schema(TaskSchema, "TaskPage")
PenaltyPage = page_schema(PenaltySchema, "PenaltyPage")
TemplatePage = page_schema(TemplateSchema, "TaskTemplatePage")
AutomationPage = page_schema(AutomationSchema, "AutomationPage")
ComplaintPage = page_schema(ComplaintSchema, "ComplaintPage")
PROCESS_MANAGERS = ("admin", "head")


def assignee_directory(reader, body: dict) -> dict:
    """What the tasks service needs to know of the assignee a body names: the gateway vouches for it."""
    return identity.directory(reader, [body.get("assignee_id")])


class TaskRoutes:
    # ---- tasks

    @api("POST", "/tasks", etag=True, status=201, body=TaskCreateSchema, response=TaskSchema, errors=(403, 422),
         summary="Set a task", tag="tasks")
    def create_task(self, request, caller):
        """``{"title": "Перезвонить после КП", "due_at": "2026-12-01T10:00:00Z", "checklist": ["Позвонить",
        "Записать итог"], "client_id": ..., "deal_id": ..., "penalty": {"amount": "300.00", "currency": "RUB"}}``
        → 201 task. The assignee defaults to you; a manager assigns only to themself (403), a head within the
        branch; the assignee must be an active user of the branch, the client and deal yours to see, ``due_at``
        in the future (422). With ``template_id`` the template's checklist, instruction and deadline
        (now + ``due_in_hours``) are copied unless given."""
        body = request.json_body
        task = self.tasks_rpc.create_task(caller.dump(), body, assignee_directory(self.db.reader, body))
        return 201, task, etag(task)

    @api("GET", "/tasks", query=TaskQuerySchema, response=TaskPage, errors=(400,), summary="List tasks",
         tag="tasks")
    def list_tasks(self, request, caller):
        """Filters: assignee_id, status (open, done, cancelled), ``overdue=true``, client_id, deal_id,
        ``due_before=`` (a date or time). Newest first; ``sort=due_at`` puts the nearest deadline first. A manager
        sees the tasks assigned to them or set by them, a head the branch's."""
        return self.tasks_rpc.list_tasks(caller.dump(), query_args(request))

    @api("GET", "/tasks/<task_id>", etag=True, response=TaskSchema, errors=(404,), summary="One task", tag="tasks")
    def get_task(self, request, caller, task_id):
        """The task with its checklist; the ETag is its version for If-Match."""
        task = self.tasks_rpc.get_task(caller.dump(), task_id)
        return 200, task, etag(task)

    @api("PATCH", "/tasks/<task_id>", etag=True, body=TaskUpdateSchema, response=TaskSchema, if_match=True,
         errors=(403, 404, 409, 422), summary="Change a task", tag="tasks")
    def update_task(self, request, caller, task_id):
        """``{"title"?, "description"?, "due_at"?, "assignee_id"?}`` by who set the task, a head or an admin. With
        ``If-Match: <version>`` a stale version is 409 ``version_conflict``; a done or cancelled task is 409."""
        body = request.json_body
        task = self.tasks_rpc.update_task(caller.dump(), task_id, body, if_match(request),
                                          assignee_directory(self.db.reader, body))
        return 200, task, etag(task)

    @api("POST", "/tasks/<task_id>/checklist/<index>", etag=True, body=ChecklistTickSchema, response=TaskSchema,
         errors=(403, 404, 409, 422), summary="Tick a checklist step", tag="tasks")
    def tick_checklist(self, request, caller, task_id, index):
        """``{"done": true}`` on step ``index`` (from 0) → 200 task; an index out of range is 404. Two people
        ticking steps at the same moment both keep their tick."""
        task = self.tasks_rpc.tick_checklist(caller.dump(), task_id, index, request.json_body)
        return 200, task, etag(task)

    @api("POST", "/tasks/<task_id>/complete", etag=True, response=TaskSchema, errors=(403, 404, 409),
         summary="Complete a task", tag="tasks")
    def complete_task(self, request, caller, task_id):
        """→ 200 done task; 409 ``checklist_incomplete`` while a step is not done (the steps are the process).
        Completing a done task again returns it unchanged. Completed after ``due_at``, it is overdue and
        penalised."""
        task = self.tasks_rpc.complete_task(caller.dump(), task_id)
        return 200, task, etag(task)

    @api("POST", "/tasks/<task_id>/cancel", etag=True, body=ReasonSchema, response=TaskSchema, errors=(403, 404, 409, 422),
         summary="Cancel a task", tag="tasks")
    def cancel_task(self, request, caller, task_id):
        """``{"reason": "Клиент отказался"}`` by who set the task, a head or an admin; a done task is 409."""
        task = self.tasks_rpc.cancel_task(caller.dump(), task_id, request.json_body)
        return 200, task, etag(task)

    # ---- penalties

    @api("GET", "/penalties", query=PenaltyQuerySchema, response=PenaltyPage, errors=(400,),
         summary="List penalties", tag="tasks")
    def list_penalties(self, request, caller):
        """One per missed deadline: ``?user_id=&month=2026-11&status=active|waived``. A manager sees their own,
        a head the branch's. ``month`` is the UTC month of the task's ``due_at``."""
        return self.tasks_rpc.list_penalties(caller.dump(), query_args(request))

    @api("POST", "/penalties/<penalty_id>/waive", roles=PROCESS_MANAGERS, body=ReasonSchema, response=PenaltySchema,
         errors=(403, 404, 409, 422), summary="Waive a penalty", tag="tasks")
    def waive_penalty(self, request, caller, penalty_id):
        """``{"reason": "Клиент перенёс встречу"}`` (head, admin) → the penalty, ``status: waived``; waived
        already is 409."""
        return self.tasks_rpc.waive_penalty(caller.dump(), penalty_id, request.json_body)

    # ---- task templates

    @api("POST", "/task-templates", etag=True, status=201, roles=PROCESS_MANAGERS, body=TemplateCreateSchema,
         response=TemplateSchema, errors=(403, 422), summary="Write a process step", tag="tasks")
    def create_template(self, request, caller):
        """The written instruction of one step of a process: ``{"name": "Первый звонок", "process": "Продажа",
        "instruction": "Представьтесь, выясните задачу...", "checklist": ["Представиться", "Выявить потребность"],
        "due_in_hours": 24, "penalty": {"amount": "300.00", "currency": "RUB"}}`` → 201, version 1."""
        body = request.json_body
        check_named_branch(self.db.reader, body)
        template = self.tasks_rpc.create_template(caller.dump(), body)
        return 201, template, etag(template)

    @api("GET", "/task-templates", query=TemplateQuerySchema, response=TemplatePage, errors=(400,),
         summary="List process steps", tag="tasks")
    def list_templates(self, request, caller):
        """The branch's templates, recently changed first; ``?process=`` for one process."""
        return self.tasks_rpc.list_templates(caller.dump(), query_args(request))

    @api("GET", "/task-templates/<template_id>", etag=True, response=TemplateSchema, errors=(404,), summary="One process step",
         tag="tasks")
    def get_template(self, request, caller, template_id):
        """A template at its current version."""
        template = self.tasks_rpc.get_template(caller.dump(), template_id)
        return 200, template, etag(template)

    @api("PATCH", "/task-templates/<template_id>", etag=True, roles=PROCESS_MANAGERS, body=TemplateUpdateSchema,
         response=TemplateSchema, if_match=True, errors=(403, 404, 409, 422), summary="Change a process step (new version)",
         tag="tasks")
    def update_template(self, request, caller, template_id):
        """Every change makes a new version; tasks keep the version they were made from (``template_version``)."""
        template = self.tasks_rpc.update_template(caller.dump(), template_id, request.json_body, if_match(request))
        return 200, template, etag(template)

    # ---- automations

    @api("POST", "/automations", status=201, roles=PROCESS_MANAGERS, body=AutomationCreateSchema,
         response=AutomationSchema, errors=(403, 422), summary="Automate a process step", tag="tasks")
    def create_automation(self, request, caller):
        """``{"event": "deal_won", "template_id": ..., "assign_to": "owner", "delay_hours": 168}`` → 201: when the
        event happens in the template's branch, a task from the template for the record's owner (or the
        branch's head), linked to its client and deal, ``delay_hours`` later, once per event. Events:
        client_created, deal_created, deal_stage_changed (``stage_id``: entering that stage), deal_won, deal_lost,
        deal_stuck, complaint_created, task_overdue; ``pipeline_id`` and ``stage_id`` for deal events only."""
        return 201, self.tasks_rpc.create_automation(caller.dump(), request.json_body)

    @api("GET", "/automations", query=AutomationQuerySchema, response=AutomationPage, errors=(400,),
         summary="List automations", tag="tasks")
    def list_automations(self, request, caller):
        """The branch's automations, newest first; ``?event=&active=true``."""
        return self.tasks_rpc.list_automations(caller.dump(), query_args(request))

    @api("DELETE", "/automations/<automation_id>", roles=PROCESS_MANAGERS, response=AutomationSchema,
         errors=(403, 404), summary="Disable an automation", tag="tasks")
    def disable_automation(self, request, caller, automation_id):
        """Disables it (nothing is destroyed): no new tasks, and its delayed tasks not yet made are not made."""
        return self.tasks_rpc.disable_automation(caller.dump(), automation_id)

    # ---- complaints

    @api("POST", "/complaints", etag=True, status=201, body=ComplaintCreateSchema, response=ComplaintSchema,
         errors=(403, 422), summary="Register a complaint", tag="tasks")
    def create_complaint(self, request, caller):
        """``{"client_id": ..., "deal_id": ..., "subject": "Доставка опоздала", "text": "...", "channel": "phone"}``
        → 201 ``{id, status: open, ..., task_id, due_at}``: a task for the client's owner due within
        ``CRM_COMPLAINT_SLA_HOURS``, and a notice to the branch's head."""
        complaint = self.tasks_rpc.create_complaint(caller.dump(), request.json_body)
        return 201, complaint, etag(complaint)

    @api("GET", "/complaints", query=ComplaintQuerySchema, response=ComplaintPage, errors=(400,),
         summary="List complaints", tag="tasks")
    def list_complaints(self, request, caller):
        """``?status=open|in_progress|resolved&client_id=``, newest first."""
        return self.tasks_rpc.list_complaints(caller.dump(), query_args(request))

    @api("GET", "/complaints/<complaint_id>", etag=True, response=ComplaintSchema, errors=(404,), summary="One complaint",
         tag="tasks")
    def get_complaint(self, request, caller, complaint_id):
        """A complaint you handle or registered (a head: the branch's)."""
        complaint = self.tasks_rpc.get_complaint(caller.dump(), complaint_id)
        return 200, complaint, etag(complaint)

    @api("PATCH", "/complaints/<complaint_id>", etag=True, body=ComplaintUpdateSchema, response=ComplaintSchema, if_match=True,
         errors=(404, 409, 422), summary="Work on a complaint", tag="tasks")
    def update_complaint(self, request, caller, complaint_id):
        """``{"status": "in_progress"}`` or ``{"status": "resolved", "resolution": "Вернули деньги"}`` (resolved
        needs a resolution; its task is then done). A resolved complaint is closed (409)."""
        complaint = self.tasks_rpc.update_complaint(caller.dump(), complaint_id, request.json_body, if_match(request))
        return 200, complaint, etag(complaint)
