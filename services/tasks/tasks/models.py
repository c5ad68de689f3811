"""The tasks service's tables: tasks with their checklists, penalties, templates, automations and their
schedule, complaints, notifications, and the users it has heard of from the gateway."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy import text as sql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crm_common.bookkeeping import bookkeeping_models
from crm_common.clock import utcnow
from crm_common.columns import UtcDateTime, json_type
from crm_common.schemas import new_id
from crm_common.transfers import owner_transfer_model
from tasks.domain import ComplaintRules, PenaltyRules, TaskRules, TemplateRules


class Base(DeclarativeBase):
    pass


def _open_and_not_overdue():
    return sql("status = 'open' AND overdue_at IS NULL")


class User(Base):
    """A user as the gateway's user_created / user_updated events describe them (heads and admins are the
    people notified; the gateway's directory, not this copy, vouches for assignees named in requests)."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    branch_id: Mapped[str | None] = mapped_column(String(36))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean)
    name: Mapped[str] = mapped_column(String(200))
    # the gateway's updated_at of the version kept: an older event arriving late changes nothing
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_users_branch_role", "branch_id", "role"),)


class Template(TemplateRules, Base):
    """One step of a process with its written instruction; every change makes a new version."""

    __tablename__ = "task_templates"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    branch_id: Mapped[str] = mapped_column(String(36))
    name: Mapped[str] = mapped_column(String(200))
    process: Mapped[str] = mapped_column(String(200))
    instruction: Mapped[str] = mapped_column(Text)
    checklist: Mapped[list] = mapped_column(json_type())
    due_in_hours: Mapped[float] = mapped_column(Float)
    penalty_minor: Mapped[int | None] = mapped_column(BigInteger)
    penalty_currency: Mapped[str | None] = mapped_column(String(3))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    __table_args__ = (Index("ix_task_templates_branch", "branch_id", "updated_at", "id"),)


class TemplateVersion(Base):
    __tablename__ = "task_template_versions"

    template_id: Mapped[str] = mapped_column(ForeignKey("task_templates.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    process: Mapped[str] = mapped_column(String(200))
    instruction: Mapped[str] = mapped_column(Text)
    checklist: Mapped[list] = mapped_column(json_type())
    due_in_hours: Mapped[float] = mapped_column(Float)
    penalty_minor: Mapped[int | None] = mapped_column(BigInteger)
    penalty_currency: Mapped[str | None] = mapped_column(String(3))
    author_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Task(TaskRules, Base):
    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    branch_id: Mapped[str] = mapped_column(String(36))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default="open")
    assignee_id: Mapped[str] = mapped_column(String(36))
    author_id: Mapped[str | None] = mapped_column(String(36))  # null: made by the system
    client_id: Mapped[str | None] = mapped_column(String(36))
    deal_id: Mapped[str | None] = mapped_column(String(36))
    template_id: Mapped[str | None] = mapped_column(String(36))
    template_version: Mapped[int | None] = mapped_column(Integer)
    # [{"text", "done", "done_at"}]: a task's steps are read and written with the task, under its version
    checklist: Mapped[list] = mapped_column(json_type(), default=list)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # set once, when the task is found open past due_at; its penalty is recorded in the same transaction
    overdue_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    cancel_reason: Mapped[str | None] = mapped_column(String(1000))
    penalty_minor: Mapped[int | None] = mapped_column(BigInteger)
    penalty_currency: Mapped[str | None] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        Index("ix_tasks_branch_created", "branch_id", "created_at", "id"),
        Index("ix_tasks_assignee_created", "assignee_id", "created_at", "id"),
        Index("ix_tasks_author_created", "author_id", "created_at", "id"),
        Index("ix_tasks_assignee_due", "assignee_id", "status", "due_at"),
        Index("ix_tasks_client", "client_id", "created_at"),
        Index("ix_tasks_deal", "deal_id", "created_at"),
        # the overdue check reads only the open tasks not yet found overdue, in due order
        Index("ix_tasks_due", "due_at", postgresql_where=_open_and_not_overdue(), sqlite_where=_open_and_not_overdue()),
    )


class Penalty(PenaltyRules, Base):
    """A bonus deduction for a missed deadline: one per task, whatever runs the check how often."""

    __tablename__ = "penalties"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"))
    user_id: Mapped[str] = mapped_column(String(36))
    branch_id: Mapped[str] = mapped_column(String(36))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(String(1000))
    month: Mapped[str] = mapped_column(String(7))
    status: Mapped[str] = mapped_column(String(8), default="active")
    waived_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    waived_by: Mapped[str | None] = mapped_column(String(36))
    waive_reason: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("task_id", name="uq_penalties_task"),
        Index("ix_penalties_branch_created", "branch_id", "created_at", "id"),
        Index("ix_penalties_user_month", "user_id", "month"),
    )


class Automation(Base):
    """When ``event`` happens in the branch (and the deal is in ``pipeline_id`` / ``stage_id``), a task from
    ``template_id`` for the record's owner or the branch's head, ``delay_hours`` later."""

    __tablename__ = "automations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    branch_id: Mapped[str] = mapped_column(String(36))
    event: Mapped[str] = mapped_column(String(64))
    template_id: Mapped[str] = mapped_column(ForeignKey("task_templates.id"))
    assign_to: Mapped[str] = mapped_column(String(8))
    pipeline_id: Mapped[str | None] = mapped_column(String(36))
    stage_id: Mapped[str | None] = mapped_column(String(36))
    delay_hours: Mapped[float] = mapped_column(Float, default=0.0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (
        Index("ix_automations_event_branch", "event", "branch_id"),
        Index("ix_automations_branch_created", "branch_id", "created_at", "id"),
    )


class ScheduledTask(Base):
    """A task an automation is to make at ``run_at``: written when the event is handled, so a delay of a
    week survives restarts, and unique per (automation, event), so a redelivered event schedules nothing."""

    __tablename__ = "scheduled_tasks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    automation_id: Mapped[str] = mapped_column(ForeignKey("automations.id"))
    source_event_id: Mapped[str] = mapped_column(String(36))
    event_type: Mapped[str] = mapped_column(String(64))
    branch_id: Mapped[str] = mapped_column(String(36))
    owner_id: Mapped[str | None] = mapped_column(String(36))
    client_id: Mapped[str | None] = mapped_column(String(36))
    deal_id: Mapped[str | None] = mapped_column(String(36))
    run_at: Mapped[datetime] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(8), default="pending")  # pending | done | skipped
    task_id: Mapped[str | None] = mapped_column(String(36))
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (
        UniqueConstraint("automation_id", "source_event_id", name="uq_scheduled_tasks_automation_event"),
        Index("ix_scheduled_tasks_due", "run_at", postgresql_where=sql("status = 'pending'"),
              sqlite_where=sql("status = 'pending'")),
    )


class Complaint(ComplaintRules, Base):
    __tablename__ = "complaints"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    branch_id: Mapped[str] = mapped_column(String(36))
    client_id: Mapped[str] = mapped_column(String(36))
    deal_id: Mapped[str | None] = mapped_column(String(36))
    subject: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    channel: Mapped[str | None] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(12), default="open")
    author_id: Mapped[str | None] = mapped_column(String(36))
    owner_id: Mapped[str | None] = mapped_column(String(36))
    task_id: Mapped[str | None] = mapped_column(String(36))
    due_at: Mapped[datetime] = mapped_column(UtcDateTime())
    resolution: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        Index("ix_complaints_branch_created", "branch_id", "created_at", "id"),
        Index("ix_complaints_owner_created", "owner_id", "created_at", "id"),
        Index("ix_complaints_client", "client_id", "created_at"),
    )


class Notification(Base):
    """A notice for one user; ``source_key`` (the event that caused it) keeps a redelivery from repeating it."""

    __tablename__ = "notifications"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(36))
    branch_id: Mapped[str | None] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(String(1000))
    ref_type: Mapped[str | None] = mapped_column(String(32))
    ref_id: Mapped[str | None] = mapped_column(String(36))
    source_key: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (
        UniqueConstraint("source_key", "user_id", name="uq_notifications_source_user"),
        Index("ix_notifications_user_created", "user_id", "created_at", "id"),
        Index("ix_notifications_unread", "user_id", "created_at", "id", postgresql_where=sql("read_at IS NULL"),
              sqlite_where=sql("read_at IS NULL")),
    )


OutboxMessage, ProcessedEvent, CommandLog = bookkeeping_models(Base)
OwnerTransfer = owner_transfer_model(Base)  # the tasks step of each offboarding (crm_common/transfers.py)
