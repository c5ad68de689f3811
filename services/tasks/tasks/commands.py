"""Use cases of the tasks service: tasks and their checklists, deadlines and penalties, templates,
automations, complaints, notifications, and what other services' events set in motion.

Each takes the unit of work (``uow.session``, ``uow.emit``), the caller and the raw input; committing is the
entrypoint's job (the overdue check and the schedule commit per batch themselves). What other services know
(a client, a deal, a pipeline, the users the gateway vouches for) comes in as arguments, fetched before the
transaction, so these functions never make remote calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import update
from sqlalchemy.orm.exc import StaleDataError

from crm_common.caller import Caller
from crm_common.clock import utcnow
from crm_common.errors import BadRequest, Forbidden, ValidationError, VersionConflict, require
from crm_common.schemas import load_or_raise, new_id
from tasks import domain, notices, views
from tasks import repository as repo
from tasks.domain import Amount
from tasks.exceptions import (
    AutomationNotFound,
    ChecklistItemNotFound,
    ComplaintNotFound,
    NotificationNotFound,
    PenaltyNotFound,
    TaskNotFound,
    TemplateNotFound,
)
from tasks.models import Automation, Complaint, Penalty, ScheduledTask, Task, Template, TemplateVersion, User
from tasks.schemas import (
    AutomationCreateSchema,
    ChecklistTickSchema,
    ComplaintCreateSchema,
    ComplaintUpdateSchema,
    ReasonSchema,
    TaskCreateSchema,
    TaskUpdateSchema,
    TemplateCreateSchema,
    TemplateUpdateSchema,
)

MANAGERS_OF_PROCESS = ("admin", "head")


@dataclass(frozen=True)
class Policy:
    """The settings the rules need: ``CRM_DEFAULT_PENALTY`` in ``CRM_DEFAULT_CURRENCY``,
    ``CRM_COMPLAINT_SLA_HOURS``, ``CRM_STUCK_TASK_HOURS``."""

    default_penalty: Amount
    complaint_sla_hours: float = 24.0
    stuck_task_hours: float = 24.0
    callback_sla_minutes: float = 15.0

    @classmethod
    def from_settings(cls, settings) -> Policy:
        penalty = Amount(domain.to_minor(Decimal(settings.default_penalty)), settings.default_currency)
        return cls(penalty, settings.complaint_sla_hours, settings.stuck_task_hours, settings.callback_sla_minutes)


def _require_process_manager(caller: Caller, what: str) -> None:
    if caller.role not in MANAGERS_OF_PROCESS:
        raise Forbidden(f"only a head of sales or an administrator may change {what}")


def _flush(session, record: str = "task") -> None:
    try:
        session.flush()
    except StaleDataError:
        raise VersionConflict(f"the {record} was changed by someone else at the same moment; read it again") from None


def _event(record_key: str, row_dump: dict, actor_id: str | None, **extra) -> dict:
    return {"branch_id": row_dump["branch_id"], "actor_id": actor_id, record_key: row_dump, **extra}


# ---- tasks

def load_new_task(raw: dict) -> dict:
    return load_or_raise(TaskCreateSchema, raw)


def _new_task(uow, *, branch_id: str, title: str, assignee_id: str, due_at: datetime, now: datetime,
              author_id: str | None = None, description: str | None = None, checklist: list[str] | None = None,
              client_id: str | None = None, deal_id: str | None = None, template: Template | None = None,
              penalty: Amount | None = None, full_check: bool = True) -> tuple[Task, dict]:
    """Insert a task and emit ``task_created``; every way a task comes into being goes through here."""
    task = Task(
        id=new_id(), branch_id=branch_id, title=title[:200], description=description, status="open",
        assignee_id=assignee_id, author_id=author_id, client_id=client_id, deal_id=deal_id,
        template_id=template.id if template else None, template_version=template.version if template else None,
        checklist=domain.new_checklist(checklist or []), due_at=due_at,
        penalty_minor=penalty.minor if penalty else None, penalty_currency=penalty.currency if penalty else None,
        created_at=now, updated_at=now, version=1,
    )
    uow.session.add(task)
    out = views.task(task)
    uow.emit("task_created", _event("task", out, author_id), full_check=full_check)
    return task, out


def create_task(uow, caller: Caller, data: dict, client: dict | None, deal: dict | None,
                directory: dict | None) -> dict:
    """``data`` was loaded with ``load_new_task``; ``client`` and ``deal`` are what the clients and deals
    services showed the caller for the ids it names (None: no such record, or not the caller's to see)."""
    session = uow.session
    now = utcnow()
    template = None
    if data.get("template_id"):
        template = repo.get_template(session, caller, data["template_id"])
        if template is None:
            raise ValidationError("unknown template", fields={"template_id": ["No such template."]})
    client_id, deal_id, linked_branch = _linked_records(data, client, deal)
    branch_id = linked_branch or caller.branch_id or _branch_of_assignee(data.get("assignee_id"), directory)
    if not branch_id:
        raise ValidationError("the task needs a branch", fields={
            "assignee_id": ["An administrator names an assignee of a branch, a client or a deal."]})
    if not caller.is_admin and branch_id != caller.branch_id:
        raise ValidationError("not your branch", fields={"client_id": ["No such client (or not yours)."]})
    if template is not None and template.branch_id != branch_id:
        raise ValidationError("template of another branch", fields={"template_id": ["A template of another branch."]})
    assignee_id = domain.assignee_for(caller, data.get("assignee_id"), branch_id, directory)
    due_at = data.get("due_at") or domain.due_in(now, template.due_in_hours)
    domain.check_due_at(due_at, now)
    penalty = Amount.of(data["penalty"]) if data.get("penalty") is not None else (template.penalty if template else None)
    _, out = _new_task(
        uow, branch_id=branch_id, title=data.get("title") or template.name, assignee_id=assignee_id, due_at=due_at,
        now=now, author_id=caller.id,
        description=data["description"] if "description" in data else (template.instruction if template else None),
        checklist=data["checklist"] if "checklist" in data else (list(template.checklist) if template else []),
        client_id=client_id, deal_id=deal_id, template=template, penalty=penalty,
    )
    return out


def _linked_records(data: dict, client: dict | None, deal: dict | None) -> tuple[str | None, str | None, str | None]:
    client_id, deal_id = data.get("client_id"), data.get("deal_id")
    if deal_id and deal is None:
        raise ValidationError("unknown deal", fields={"deal_id": ["No such deal (or not yours)."]})
    if client_id and client is None:
        raise ValidationError("unknown client", fields={"client_id": ["No such client (or not yours)."]})
    if deal is not None and client_id and deal["client_id"] != client_id:
        raise ValidationError("the deal is another client's", fields={"deal_id": ["Not a deal of this client."]})
    branch_id = (deal or client or {}).get("branch_id")
    return client_id or (deal["client_id"] if deal else None), deal_id, branch_id


def _branch_of_assignee(assignee_id: str | None, directory: dict | None) -> str | None:
    user = ((directory or {}).get("users") or {}).get(assignee_id) if assignee_id else None
    return user.get("branch_id") if user else None


def require_task(session, caller: Caller, task_id: str, for_update: bool = False) -> Task:
    return require(repo.get_task(session, caller, task_id, for_update), TaskNotFound)


def update_task(uow, caller: Caller, task_id: str, raw: dict, expected_version, directory) -> dict:
    changes = load_or_raise(TaskUpdateSchema, raw)
    session = uow.session
    task = require_task(session, caller, task_id, for_update=True)
    VersionConflict.check("task", task.version, expected_version)
    if not task.may_manage(caller):
        raise Forbidden("only who set the task, a head of sales or an administrator may change it")
    if "assignee_id" in changes and changes["assignee_id"] != task.assignee_id:
        changes["assignee_id"] = domain.assignee_for(caller, changes["assignee_id"], task.branch_id, directory)
    changed = task.edit(changes, utcnow())
    if not changed:
        return views.task(task)
    _flush(session)
    out = views.task(task)
    uow.emit("task_updated", _event("task", out, caller.id, changed=changed))
    return out


def tick(uow, caller: Caller, task_id: str, index, raw: dict) -> dict:
    data = load_or_raise(ChecklistTickSchema, raw)
    try:
        position = int(str(index))
    except ValueError:
        raise ChecklistItemNotFound() from None
    session = uow.session
    task = require_task(session, caller, task_id, for_update=True)
    if not task.may_work_on(caller):
        raise Forbidden("only the assignee, a head of sales or an administrator works on the task")
    if not task.tick(position, data["done"], utcnow()):
        return views.task(task)
    _flush(session)
    out = views.task(task)
    uow.emit("task_updated", _event("task", out, caller.id, changed=["checklist"]))
    return out


def complete_task(uow, caller: Caller, task_id: str, policy: Policy) -> dict:
    """Done, if every step is; completing a done task again returns it and tells no one."""
    session = uow.session
    task = require_task(session, caller, task_id, for_update=True)
    if not task.may_work_on(caller):
        raise Forbidden("only the assignee, a head of sales or an administrator completes the task")
    now = utcnow()
    completion = task.complete(now)
    if completion is None:
        return views.task(task)
    _flush(session)
    out = views.task(task)
    if completion.became_overdue:  # late, and no check found it yet: the penalty is due all the same
        Deadlines(uow, policy, now).record([task])
    uow.emit("task_completed", _event("task", out, caller.id, on_time=completion.on_time))
    return out


def cancel_task(uow, caller: Caller, task_id: str, raw: dict) -> dict:
    data = load_or_raise(ReasonSchema, raw)
    session = uow.session
    task = require_task(session, caller, task_id, for_update=True)
    if not task.may_manage(caller):
        raise Forbidden("only who set the task, a head of sales or an administrator may cancel it")
    if not task.cancel(data["reason"], utcnow()):
        return views.task(task)
    _flush(session)
    out = views.task(task)
    uow.emit("task_cancelled", _event("task", out, caller.id, reason=data["reason"]))
    return out


# ---- deadlines and penalties

# Tasks per transaction of the deadline check: a whole interval's worth on a busy CRM (decisions.md 82). The events of a
# batch go out when it commits, and their fan-out (the relay in this process, every consumer on the machine) then
# competes with the rest of the check, so smaller batches make a pass slower, not the events sooner.
OVERDUE_BATCH = 2000


class Deadlines:
    """Finds tasks past their deadline: each becomes overdue once, with one penalty against its assignee,
    ``task_overdue`` and ``penalty_recorded``, a notice to the assignee and the branch's heads, and the
    ``task_overdue`` automations scheduled."""

    def __init__(self, uow, policy: Policy, now: datetime | None = None):
        self.uow = uow
        self.policy = policy
        self.now = now or utcnow()
        self.people = notices.People(uow.session)
        self.automations = Automations(uow, self.people, self.now)  # looked up once per check, not per batch

    def check(self, batch: int = OVERDUE_BATCH) -> int:
        """Every open task past its deadline, ``batch`` at a time, one transaction each."""
        found = 0
        while True:
            tasks = repo.due_for_overdue(self.uow.session, self.now, batch)
            for task in tasks:
                self.uow.session.expunge(task)  # written below in one UPDATE, not one per row
            marked = [task for task in tasks if task.mark_overdue(self.now)]
            if marked:
                self.uow.session.execute(
                    update(Task).where(Task.id.in_([task.id for task in marked]))
                    .values(overdue_at=self.now, updated_at=self.now, version=Task.version + 1)
                    .execution_options(synchronize_session=False)
                )
                for task in marked:
                    task.version += 1
                found += self.record(marked)
            self.uow.commit()
            if len(tasks) < batch:
                return found

    def record(self, tasks: list[Task]) -> int:
        """Penalties for tasks just marked overdue (and written), with their events and notices. The unique
        penalty per task is what finally decides: a task that has one already gets nothing more."""
        session, now = self.uow.session, self.now
        rows = []
        for task in tasks:
            amount = domain.penalty_amount(Amount.stored(task.penalty_minor, task.penalty_currency),
                                           self.policy.default_penalty)
            rows.append({"id": new_id(), "task_id": task.id, "user_id": task.assignee_id, "branch_id": task.branch_id,
                         "amount_minor": amount.minor, "currency": amount.currency,
                         "reason": domain.penalty_reason(task.title, task.due_at), "month": domain.month_of(task.due_at),
                         "status": "active", "created_at": now})
        insert = repo.insert_for(session)(Penalty).on_conflict_do_nothing(index_elements=["task_id"])
        recorded = set(session.scalars(insert.returning(Penalty.task_id), rows).all())
        found = [(task, row) for task, row in zip(tasks, rows) if task.id in recorded]
        if not found:
            return 0
        # one statement per event type for the batch: the first event of each is checked in full against its
        # contract, the rest (built by the same code) for their keys
        overdue = self.uow.emit_many("task_overdue", [_event("task", views.task(task), None) for task, _ in found])
        self.uow.emit_many("penalty_recorded", [_event("penalty", views.penalty_row(row), None) for _, row in found])
        notices.store(session, [notice for event in overdue
                                for notice in notices.notices_for(self.people, notices.TASK_OVERDUE, event, now)])
        self.automations.schedule_many("task_overdue", overdue)
        return len(found)


def require_penalty(session, caller: Caller, penalty_id: str, for_update: bool = False) -> Penalty:
    return require(repo.get_penalty(session, caller, penalty_id, for_update), PenaltyNotFound)


def waive_penalty(uow, caller: Caller, penalty_id: str, raw: dict) -> dict:
    if caller.is_manager:
        raise Forbidden("only a head of sales or an administrator waives penalties")
    data = load_or_raise(ReasonSchema, raw)
    penalty = require_penalty(uow.session, caller, penalty_id, for_update=True)
    penalty.waive(data["reason"], caller.id, utcnow())
    uow.session.flush()
    out = views.penalty(penalty)
    uow.emit("penalty_waived", _event("penalty", out, caller.id, reason=data["reason"]))
    return out


# ---- templates

def create_template(uow, caller: Caller, raw: dict) -> dict:
    _require_process_manager(caller, "task templates")
    data = load_or_raise(TemplateCreateSchema, raw)
    branch_id = caller.target_branch(data.pop("branch_id"))
    penalty = Amount.of(data.pop("penalty"))
    now = utcnow()
    template = Template(id=new_id(), branch_id=branch_id, **data, penalty_minor=penalty.minor if penalty else None,
                        penalty_currency=penalty.currency if penalty else None, version=1, created_at=now,
                        updated_at=now)
    uow.session.add(template)
    uow.session.flush()
    uow.session.add(_template_version(template, caller.id))
    return views.template(template)


def _template_version(template: Template, author_id: str | None) -> TemplateVersion:
    return TemplateVersion(
        template_id=template.id, version=template.version, name=template.name, process=template.process,
        instruction=template.instruction, checklist=list(template.checklist), due_in_hours=template.due_in_hours,
        penalty_minor=template.penalty_minor, penalty_currency=template.penalty_currency, author_id=author_id,
        created_at=template.updated_at,
    )


def require_template(session, caller: Caller, template_id: str, for_update: bool = False) -> Template:
    return require(repo.get_template(session, caller, template_id, for_update), TemplateNotFound)


def update_template(uow, caller: Caller, template_id: str, raw: dict, expected_version=None) -> dict:
    """Every change is a new version; tasks made from an older one keep it (``template_version``)."""
    _require_process_manager(caller, "task templates")
    changes = load_or_raise(TemplateUpdateSchema, raw)
    template = require_template(uow.session, caller, template_id, for_update=True)
    VersionConflict.check("template", template.version, expected_version)
    if template.change(changes, utcnow()):
        uow.session.add(_template_version(template, caller.id))
        uow.session.flush()
    return views.template(template)


# ---- automations

def create_automation(uow, caller: Caller, raw: dict, pipeline: dict | None) -> dict:
    """``pipeline``: what the deals service showed the caller for ``pipeline_id`` (None if not found)."""
    _require_process_manager(caller, "automations")
    data = load_or_raise(AutomationCreateSchema, raw)
    template = repo.get_template(uow.session, caller, data["template_id"])
    if template is None:
        raise ValidationError("unknown template", fields={"template_id": ["No such template."]})
    if data["pipeline_id"]:
        if pipeline is None or pipeline["branch_id"] != template.branch_id:
            raise ValidationError("unknown pipeline", fields={"pipeline_id": ["No such pipeline in the template's branch."]})
        if data["stage_id"] and data["stage_id"] not in {stage["id"] for stage in pipeline["stages"]}:
            raise ValidationError("unknown stage", fields={"stage_id": ["Not a stage of this pipeline."]})
    automation = Automation(id=new_id(), branch_id=template.branch_id, created_by=caller.id, active=True,
                            created_at=utcnow(), **data)
    uow.session.add(automation)
    uow.session.flush()
    return views.automation(automation)


def disable_automation(uow, caller: Caller, automation_id: str) -> dict:
    """Stops it: no new tasks from it, and the ones it scheduled but has not made yet are not made."""
    _require_process_manager(caller, "automations")
    automation = require(repo.get_automation(uow.session, caller, automation_id), AutomationNotFound)
    if automation.active:
        automation.active = False
        automation.disabled_at = utcnow()
        uow.session.flush()
    return views.automation(automation)


def occurred_at(payload: dict) -> datetime:
    return datetime.fromisoformat(payload["occurred_at"].replace("Z", "+00:00"))


class Automations:
    """Turns events into scheduled tasks (a row per automation and event, unique), and scheduled tasks that
    are due into tasks."""

    def __init__(self, uow, people: notices.People, now: datetime | None = None):
        self.uow = uow
        self.people = people
        self.now = now or utcnow()
        self._by_branch: dict[tuple[str, str | None], list[Automation]] = {}

    def know(self, event_type: str, branch_id: str | None, automations: list[Automation]) -> None:
        """The active automations of an event type in a branch, read already (instead of reading them again)."""
        self._by_branch[(event_type, branch_id)] = automations

    def _automations(self, event_type: str, branch_id: str | None) -> list[Automation]:
        key = (event_type, branch_id)
        if key not in self._by_branch:
            self._by_branch[key] = repo.active_automations(self.uow.session, event_type, [branch_id])
        return self._by_branch[key]

    def schedule(self, event_type: str, payload: dict) -> list[ScheduledTask]:
        """One row per matching automation; one due now becomes its task in this same transaction."""
        return self.schedule_many(event_type, [payload])

    def schedule_many(self, event_type: str, payloads: list[dict]) -> list[ScheduledTask]:
        """``schedule`` for events of one type at once (the deadline check's batch), written in one flush."""
        made = []
        for payload in payloads:
            record = domain.record_of(event_type, payload)
            for automation in self._automations(event_type, record.branch_id):
                if not domain.matches(automation, event_type, record):
                    continue
                row = ScheduledTask(
                    id=new_id(), automation_id=automation.id, source_event_id=payload["event_id"],
                    event_type=event_type, branch_id=record.branch_id, owner_id=record.owner_id,
                    client_id=record.client_id, deal_id=record.deal_id,
                    run_at=domain.run_at(occurred_at(payload), automation.delay_hours), status="pending",
                    created_at=self.now,
                )
                self.uow.session.add(row)
                made.append(row)
        if made:
            self.uow.session.flush()  # the unique (automation, event) decides between two deliveries at once
        due_by = max(self.now, utcnow())  # an event emitted in this transaction occurred after self.now
        for row in made:
            if row.run_at <= due_by:
                self.run(row)
        return made

    def run(self, row: ScheduledTask) -> Task | None:
        session = self.uow.session
        automation = session.get(Automation, row.automation_id)
        template = session.get(Template, automation.template_id)
        row.done_at = self.now
        if not automation.active:
            row.status, row.note = "skipped", "the automation was disabled before the task was due"
            return None
        owner = self.people.usable(row.owner_id, row.branch_id)
        assignee = domain.choose_assignee(automation.assign_to, owner, self.people.heads(row.branch_id))
        if assignee is None:
            row.status, row.note = "skipped", "the record has no owner and the branch no head"
            return None
        task, _ = _new_task(
            self.uow, branch_id=row.branch_id, title=template.name, assignee_id=assignee,
            due_at=domain.due_in(self.now, template.due_in_hours), now=self.now, description=template.instruction,
            checklist=list(template.checklist), client_id=row.client_id, deal_id=row.deal_id, template=template,
            penalty=template.penalty,
        )
        row.status, row.task_id = "done", task.id
        return task

    def run_due(self, batch: int = 200) -> int:
        """Make the tasks whose delay has passed, ``batch`` at a time; rows another replica holds are skipped."""
        made = 0
        while True:
            rows = repo.due_schedules(self.uow.session, self.now, batch)
            for row in rows:
                made += self.run(row) is not None
            self.uow.commit()
            if len(rows) < batch:
                return made


# ---- what other services' events set in motion

def follow_event(uow, event_type: str, payload: dict) -> bool:
    """Schedule the automations of a client or deal event, once; False if it was handled before or no automation
    of its branch follows events of its type. That is asked first, in one read without a transaction: most events
    have none (an import's tens of thousands of ``client_created``), and a delivery that schedules nothing need
    not be remembered (a scheduled task is unique per automation and event as well)."""
    record = domain.record_of(event_type, payload)
    found = repo.active_automations(uow.reader, event_type, [record.branch_id])
    if not found:
        return False
    if not uow.first_delivery(payload["event_id"], event_type):
        return False
    automations = Automations(uow, notices.People(uow.session))
    automations.know(event_type, record.branch_id, found)  # read once: a task is made only after run() reads it again
    automations.schedule(event_type, payload)
    return True


def deal_stuck(uow, payload: dict, policy: Policy) -> bool:
    """A stuck deal always gets a task for its owner (the head's, if it has none) and a notice to the
    branch's heads; then its automations run as for any other event."""
    if not uow.first_delivery(payload["event_id"], "deal_stuck"):
        return False
    now = utcnow()
    people = notices.People(uow.session)
    deal, stage = payload["deal"], payload["stage"]
    owner = people.usable(deal.get("owner_id"), deal["branch_id"])
    assignee = domain.choose_assignee("owner", owner, people.heads(deal["branch_id"]))
    if assignee is not None:
        _new_task(
            uow, branch_id=deal["branch_id"], title=f"Move the stuck deal «{deal['title']}» on", assignee_id=assignee,
            due_at=domain.due_in(now, policy.stuck_task_hours), now=now, client_id=deal["client_id"], deal_id=deal["id"],
            description=(f"The deal has been at «{stage['name']}» for {payload['days_in_stage']:.1f} days; the stage "
                         f"allows {payload['max_days']:g}. Move it to the next stage or close it."),
        )
    notices.notify(uow.session, people, notices.DEAL_STUCK, payload, now)
    Automations(uow, people, now).schedule("deal_stuck", payload)
    return True


def call_missed(uow, payload: dict, policy: Policy) -> bool:
    """A missed incoming call: a task to call the client back for its owner (the head's, if the owner is gone),
    due ``CRM_CALLBACK_SLA_MINUTES`` after the CRM learnt of it, and a notice to the same person."""
    if not uow.first_delivery(payload["event_id"], "call_missed"):
        return False
    now = utcnow()
    people = notices.People(uow.session)
    call = payload["call"]
    owner = people.usable(payload.get("owner_id"), call["branch_id"])
    assignee = domain.choose_assignee("owner", owner, people.heads(call["branch_id"]))
    if assignee is None:
        return True
    learnt_at = occurred_at(payload)
    _, task = _new_task(
        uow, branch_id=call["branch_id"], title=f"Call back {call['from']}", assignee_id=assignee,
        due_at=learnt_at + timedelta(minutes=policy.callback_sla_minutes), now=now, client_id=payload["client_id"],
        description=f"Missed incoming call from {call['from']} at {call['started_at'][:16]} UTC. Call the client back.",
        checklist=["Call the client back", "Write down the outcome"],
    )
    notices.notify(uow.session, people, notices.CALL_MISSED, {**payload, "assignee_id": assignee, "task": task}, now)
    return True


def notify_from_event(uow, event_type: str, payload: dict) -> bool:
    """An event handled only to tell people (``notices.ON_EVENTS``)."""
    if not uow.first_delivery(payload["event_id"], event_type):
        return False
    notices.notify(uow.session, notices.People(uow.session), notices.ON_EVENTS[event_type], payload, utcnow())
    return True


def remember_user(uow, event_type: str, payload: dict) -> bool:
    """Keep the gateway's users as its events describe them; an older version arriving late changes nothing."""
    if not uow.first_delivery(payload["event_id"], event_type):
        return False
    data = payload["user"]
    changed_at = datetime.fromisoformat(data["updated_at"].replace("Z", "+00:00"))
    user = uow.session.get(User, data["id"], with_for_update=repo.is_postgresql(uow.session))
    if user is None:
        user = User(id=data["id"])
        uow.session.add(user)
    elif user.updated_at > changed_at:
        return True
    user.branch_id, user.role, user.active, user.name = data["branch_id"], data["role"], data["active"], data["name"]
    user.updated_at = changed_at
    return True


# ---- complaints

def load_new_complaint(raw: dict) -> dict:
    return load_or_raise(ComplaintCreateSchema, raw)


def create_complaint(uow, caller: Caller, data: dict, client: dict | None, deal: dict | None, policy: Policy) -> dict:
    """A complaint about a client the caller sees, with a task for the client's owner due within the SLA and a
    notice to the branch's heads. ``client`` / ``deal``: what the clients and deals services showed the caller."""
    if client is None:
        raise ValidationError("unknown client", fields={"client_id": ["No such client (or not yours)."]})
    if data["deal_id"] and (deal is None or deal["client_id"] != client["id"]):
        raise ValidationError("unknown deal", fields={"deal_id": ["No such deal of this client."]})
    session = uow.session
    now = utcnow()
    people = notices.People(session)
    branch_id = client["branch_id"]
    owner = people.usable(client.get("owner_id"), branch_id)
    handler = domain.choose_assignee("owner", owner, people.heads(branch_id)) or caller.id
    due_at = domain.due_in(now, policy.complaint_sla_hours)
    task, _ = _new_task(
        uow, branch_id=branch_id, title=f"Complaint: {data['subject']}", assignee_id=handler, due_at=due_at, now=now,
        author_id=caller.id, description=data["text"], client_id=client["id"], deal_id=data["deal_id"],
    )
    complaint = Complaint(
        id=new_id(), branch_id=branch_id, client_id=client["id"], deal_id=data["deal_id"], subject=data["subject"],
        text=data["text"], channel=data["channel"], status="open", author_id=caller.id, owner_id=handler,
        task_id=task.id, due_at=due_at, created_at=now, updated_at=now, version=1,
    )
    session.add(complaint)
    session.flush()
    out = views.complaint(complaint)
    event = uow.emit("complaint_created", _event("complaint", out, caller.id))
    notices.notify(session, people, notices.COMPLAINT, event, now)
    Automations(uow, people, now).schedule("complaint_created", event)
    return out


def require_complaint(session, caller: Caller, complaint_id: str, for_update: bool = False) -> Complaint:
    return require(repo.get_complaint(session, caller, complaint_id, for_update), ComplaintNotFound)


def update_complaint(uow, caller: Caller, complaint_id: str, raw: dict, expected_version=None) -> dict:
    """In progress, or resolved with a resolution: then its task is done too (if its steps are)."""
    data = load_or_raise(ComplaintUpdateSchema, raw)
    session = uow.session
    complaint = require_complaint(session, caller, complaint_id, for_update=True)
    VersionConflict.check("complaint", complaint.version, expected_version)
    now = utcnow()
    if not complaint.move_to(data["status"], data["resolution"], now):
        return views.complaint(complaint)
    _flush(session, "complaint")
    out = views.complaint(complaint)
    if complaint.status == "resolved":
        uow.emit("complaint_resolved", _event("complaint", out, caller.id))
        _close_complaint_task(uow, complaint, caller, now)
    return out


def _close_complaint_task(uow, complaint: Complaint, caller: Caller, now: datetime) -> None:
    task = uow.session.get(Task, complaint.task_id, with_for_update=repo.is_postgresql(uow.session)) \
        if complaint.task_id else None
    if task is None or task.status != "open" or any(not item["done"] for item in task.checklist or []):
        return
    completion = task.complete(now)
    _flush(uow.session)
    out = views.task(task)
    uow.emit("task_completed", _event("task", out, caller.id, on_time=completion.on_time))


# ---- notifications

def read_notification(uow, caller: Caller, notification_id: str) -> dict:
    notification = require(repo.get_notification(uow.session, caller, notification_id), NotificationNotFound)
    if notification.read_at is None:
        notification.read_at = utcnow()
        uow.session.flush()
    return views.notification(notification)


# ---- clients merged elsewhere

def repoint_merged_client(uow, payload: dict) -> int:
    """``client_merged``: the merged client's tasks, complaints and scheduled tasks now belong to the client it
    became; one ``task_updated`` (``changed: ["client_id"]``) per task. Idempotent: a repeated event is skipped,
    and a late one finds nothing left to move."""
    if not uow.first_delivery(payload["event_id"], "client_merged"):
        return 0
    kept_id, merged_id = payload["client"]["id"], payload["merged_id"]
    session = uow.session
    now = utcnow()
    session.execute(update(Complaint).where(Complaint.client_id == merged_id)
                    .values(client_id=kept_id, updated_at=now, version=Complaint.version + 1)
                    .execution_options(synchronize_session=False))
    session.execute(update(ScheduledTask).where(ScheduledTask.client_id == merged_id).values(client_id=kept_id)
                    .execution_options(synchronize_session=False))
    tasks = repo.tasks_of_client(session, merged_id, for_update=True)
    for task in tasks:
        task.client_id, task.updated_at = kept_id, now
    _flush(session)
    for task in tasks:
        uow.emit("task_updated", _event("task", views.task(task), payload.get("actor_id"), changed=["client_id"]))
    return len(tasks)


# ---- export

def export(session, kind: str, cursor: str | None, limit: int) -> dict:
    if kind not in views.EXPORTS:
        raise BadRequest("unknown kind", fields={"kind": [f"One of {', '.join(views.EXPORTS)}."]})
    return repo.export_page(session, kind, cursor, limit, views.EXPORTS[kind])


def list_tasks(session, caller: Caller, filters: dict) -> dict:
    return repo.list_tasks(session, caller, filters, views.task)
