"""Queries of the tasks service. Every read of tasks, penalties and complaints goes through the caller's
visibility condition, in SQL."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, false, or_, select, true
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from crm_common.caller import Caller
from crm_common.pagination import SortKey, paginate
from crm_common.schemas import is_uuid
from tasks.models import Automation, Complaint, Notification, Penalty, ScheduledTask, Task, Template, TemplateVersion, User

TASK_SORT_KEYS = {
    "-created_at": [SortKey(Task.created_at, True, "datetime"), SortKey(Task.id, True)],
    "due_at": [SortKey(Task.due_at, False, "datetime"), SortKey(Task.id, False)],
}
PENALTY_KEYS = [SortKey(Penalty.created_at, True, "datetime"), SortKey(Penalty.id, True)]
TEMPLATE_KEYS = [SortKey(Template.updated_at, True, "datetime"), SortKey(Template.id, True)]
AUTOMATION_KEYS = [SortKey(Automation.created_at, True, "datetime"), SortKey(Automation.id, True)]
COMPLAINT_KEYS = [SortKey(Complaint.created_at, True, "datetime"), SortKey(Complaint.id, True)]
NOTIFICATION_KEYS = [SortKey(Notification.created_at, True, "datetime"), SortKey(Notification.id, True)]
EXPORT_MODELS = {"tasks": Task, "penalties": Penalty, "complaints": Complaint}


def is_postgresql(session: Session) -> bool:
    return session.bind.dialect.name == "postgresql"


def insert_for(session: Session):
    return postgresql_insert if is_postgresql(session) else sqlite_insert


def _locked(session: Session, query, for_update: bool):
    # SQLite serialises writers anyway; a service on it is one process whose commands do not yield
    return query.with_for_update() if for_update and is_postgresql(session) else query


def branch_condition(caller: Caller, column):
    """Templates and automations belong to a branch: everyone in it reads them, an admin reads all."""
    return true() if caller.is_admin else column == caller.branch_id


def task_visibility(caller: Caller):
    """Admin: all; head: the branch; manager: the branch's tasks they are assigned or assigned to someone."""
    if caller.is_admin:
        return true()
    if not caller.branch_id:
        return false()
    if caller.is_head:
        return Task.branch_id == caller.branch_id
    return and_(Task.branch_id == caller.branch_id, or_(Task.assignee_id == caller.id, Task.author_id == caller.id))


def penalty_visibility(caller: Caller):
    if caller.is_admin:
        return true()
    if caller.is_head:
        return Penalty.branch_id == caller.branch_id
    return and_(Penalty.branch_id == caller.branch_id, Penalty.user_id == caller.id)


def complaint_visibility(caller: Caller):
    if caller.is_admin:
        return true()
    if caller.is_head:
        return Complaint.branch_id == caller.branch_id
    return and_(Complaint.branch_id == caller.branch_id,
                or_(Complaint.owner_id == caller.id, Complaint.author_id == caller.id))


# ---- tasks

def tasks_of_client(session: Session, client_id: str, for_update: bool = False) -> list[Task]:
    """Every task of a client, in id order (the order locks are taken in), whoever may see them."""
    query = select(Task).where(Task.client_id == client_id).order_by(Task.id)
    return list(session.scalars(_locked(session, query, for_update)))


def get_task(session: Session, caller: Caller, task_id: str, for_update: bool = False) -> Task | None:
    if not is_uuid(task_id):
        return None
    query = select(Task).where(Task.id == task_id, task_visibility(caller))
    # concurrent ticks, completions and edits of one task wait for each other instead of losing one
    return session.scalars(_locked(session, query, for_update)).first()


def list_tasks(session: Session, caller: Caller, filters: dict, dump) -> dict:
    query = select(Task).where(task_visibility(caller))
    for name in ("assignee_id", "status", "client_id", "deal_id", "branch_id"):
        if filters.get(name):
            query = query.where(getattr(Task, name) == filters[name])
    if filters.get("overdue") is True:
        query = query.where(Task.overdue_at.is_not(None))
    elif filters.get("overdue") is False:
        query = query.where(Task.overdue_at.is_(None))
    if filters.get("due_before"):
        query = query.where(Task.due_at < filters["due_before"])
    keys = TASK_SORT_KEYS[filters.get("sort", "-created_at")]
    return paginate(session, query, keys, filters.get("cursor"), filters["limit"], dump)


def due_for_overdue(session: Session, now: datetime, batch: int) -> list[Task]:
    """Open tasks past their deadline that no check has found yet, oldest deadline first. On PostgreSQL the
    rows are locked and rows another replica holds are skipped, so two checks never take the same task."""
    query = (
        select(Task)
        .where(Task.status == "open", Task.overdue_at.is_(None), Task.due_at < now)
        .order_by(Task.due_at)
        .limit(batch)
    )
    if is_postgresql(session):
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query).all())


# ---- penalties

def get_penalty(session: Session, caller: Caller, penalty_id: str, for_update: bool = False) -> Penalty | None:
    if not is_uuid(penalty_id):
        return None
    query = select(Penalty).where(Penalty.id == penalty_id, penalty_visibility(caller))
    return session.scalars(_locked(session, query, for_update)).first()


def list_penalties(session: Session, caller: Caller, filters: dict, dump) -> dict:
    query = select(Penalty).where(penalty_visibility(caller))
    for name in ("user_id", "month", "status", "branch_id"):
        if filters.get(name):
            query = query.where(getattr(Penalty, name) == filters[name])
    return paginate(session, query, PENALTY_KEYS, filters.get("cursor"), filters["limit"], dump)


# ---- templates and automations

def get_template(session: Session, caller: Caller, template_id: str, for_update: bool = False) -> Template | None:
    if not is_uuid(template_id):
        return None
    query = select(Template).where(Template.id == template_id, branch_condition(caller, Template.branch_id))
    return session.scalars(_locked(session, query, for_update)).first()


def list_templates(session: Session, caller: Caller, filters: dict, dump) -> dict:
    query = select(Template).where(branch_condition(caller, Template.branch_id))
    for name in ("process", "branch_id"):
        if filters.get(name):
            query = query.where(getattr(Template, name) == filters[name])
    return paginate(session, query, TEMPLATE_KEYS, filters.get("cursor"), filters["limit"], dump)


def template_version(session: Session, template_id: str, version: int) -> TemplateVersion | None:
    return session.get(TemplateVersion, (template_id, version))


def get_automation(session: Session, caller: Caller, automation_id: str) -> Automation | None:
    if not is_uuid(automation_id):
        return None
    query = select(Automation).where(Automation.id == automation_id, branch_condition(caller, Automation.branch_id))
    return session.scalars(query).first()


def list_automations(session: Session, caller: Caller, filters: dict, dump) -> dict:
    query = select(Automation).where(branch_condition(caller, Automation.branch_id))
    for name in ("event", "branch_id"):
        if filters.get(name):
            query = query.where(getattr(Automation, name) == filters[name])
    if "active" in filters:
        query = query.where(Automation.active.is_(filters["active"]))
    return paginate(session, query, AUTOMATION_KEYS, filters.get("cursor"), filters["limit"], dump)


def active_automations(session: Session, event_type: str, branch_ids) -> list[Automation]:
    ids = [b for b in set(branch_ids) if b]
    if not ids:
        return []
    query = select(Automation).where(Automation.event == event_type, Automation.branch_id.in_(ids),
                                     Automation.active.is_(True))
    return list(session.scalars(query).all())


def due_schedules(session: Session, now: datetime, batch: int) -> list[ScheduledTask]:
    query = (
        select(ScheduledTask)
        .where(ScheduledTask.status == "pending", ScheduledTask.run_at <= now)
        .order_by(ScheduledTask.run_at)
        .limit(batch)
    )
    if is_postgresql(session):
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query).all())


# ---- complaints and notifications

def get_complaint(session: Session, caller: Caller, complaint_id: str, for_update: bool = False) -> Complaint | None:
    if not is_uuid(complaint_id):
        return None
    query = select(Complaint).where(Complaint.id == complaint_id, complaint_visibility(caller))
    return session.scalars(_locked(session, query, for_update)).first()


def list_complaints(session: Session, caller: Caller, filters: dict, dump) -> dict:
    query = select(Complaint).where(complaint_visibility(caller))
    for name in ("status", "client_id", "branch_id"):
        if filters.get(name):
            query = query.where(getattr(Complaint, name) == filters[name])
    return paginate(session, query, COMPLAINT_KEYS, filters.get("cursor"), filters["limit"], dump)


def get_notification(session: Session, caller: Caller, notification_id: str) -> Notification | None:
    if not is_uuid(notification_id):
        return None
    query = select(Notification).where(Notification.id == notification_id, Notification.user_id == caller.id)
    return session.scalars(query).first()


def list_notifications(session: Session, caller: Caller, filters: dict, dump) -> dict:
    query = select(Notification).where(Notification.user_id == caller.id)
    if filters.get("unread") is True:
        query = query.where(Notification.read_at.is_(None))
    elif filters.get("unread") is False:
        query = query.where(Notification.read_at.is_not(None))
    return paginate(session, query, NOTIFICATION_KEYS, filters.get("cursor"), filters["limit"], dump)


# ---- users the gateway told us about

def active_users(session: Session, role: str, branch_id: str | None = None) -> list[str]:
    query = select(User.id).where(User.role == role, User.active.is_(True))
    if branch_id is not None:
        query = query.where(User.branch_id == branch_id)
    return list(session.scalars(query.order_by(User.name, User.id)).all())


# ---- export for read models

def export_page(session: Session, kind: str, cursor: str | None, limit: int, dump) -> dict:
    """Every record of a kind, oldest first, whoever may see it: for services that rebuild read models."""
    model = EXPORT_MODELS[kind]
    keys = [SortKey(model.created_at, False, "datetime"), SortKey(model.id, False)]
    return paginate(session, select(model), keys, cursor, limit, dump)
