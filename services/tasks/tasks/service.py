"""The tasks nameko service: RPC entrypoints, event handlers and the deadline timer; rules live in commands
and domain."""

from __future__ import annotations

import logging
import time

from crm_common.caller import Caller
from crm_common.config import SettingsProvider
from crm_common.db import Database
from crm_common.errors import BadRequest, NotFound
from crm_common.events import EVENT_SOURCES
from crm_common.handlers import event_handler
from crm_common.rpc import RpcProxy, rpc
from crm_common.schemas import load_or_raise
from crm_common.timer import settings_timer
from tasks import commands, notices, views
from tasks import repository as repo
from tasks.models import Base
from tasks.schemas import (
    AutomationQuerySchema,
    ComplaintQuerySchema,
    ExportQuerySchema,
    NotificationQuerySchema,
    PenaltyQuerySchema,
    TaskQuerySchema,
    TemplateQuerySchema,
)

log = logging.getLogger(__name__)


class TasksService:
    name = "tasks"

    db = Database(Base)
    settings = SettingsProvider()
    clients_rpc = RpcProxy("clients")
    deals_rpc = RpcProxy("deals")

    @property
    def policy(self) -> commands.Policy:
        return commands.Policy.from_settings(self.settings)

    # ---- tasks

    @rpc
    def create_task(self, caller, data, directory=None):
        """``create_task(caller, {"title": "Перезвонить", "due_at": "2026-12-01T10:00:00Z", "checklist": ["Позвонить",
        "Записать итог"], "client_id": ...}, {"users": {...}})`` → the task. ``directory``: the users the gateway
        vouches for (the assignee named in the request)."""
        caller = Caller.load(caller)
        data = commands.load_new_task(data)
        client = self._visible("clients", caller, data.get("client_id"))
        deal = self._visible("deals", caller, data.get("deal_id"))
        return self.db.write(lambda: commands.create_task(self.db, caller, data, client, deal, directory))

    def _visible(self, service: str, caller: Caller, record_id: str | None):
        """A client or deal as its service shows the caller, asked before the transaction; None if there is no
        such record, the caller may not see it, or the service is not part of this deployment."""
        if not record_id or service not in self.settings.services:
            return None
        try:
            if service == "clients":
                return self.clients_rpc.get_client(caller.dump(), record_id)
            return self.deals_rpc.get_deal(caller.dump(), record_id)
        except NotFound:
            return None

    @rpc
    def get_task(self, caller, task_id):
        """One task the caller may see (assigned to them or set by them; a head: the branch's)."""
        return views.task(commands.require_task(self.db.reader, Caller.load(caller), task_id))

    @rpc
    def list_tasks(self, caller, query=None):
        """``list_tasks(caller, {"assignee_id": ..., "status": "open", "overdue": "true", "due_before": "2026-12-01"})``
        → ``{items, next_cursor}``, newest first (``sort=due_at``: the nearest deadline first)."""
        filters = load_or_raise(TaskQuerySchema, query or {}, BadRequest)
        return commands.list_tasks(self.db.reader, Caller.load(caller), filters)

    @rpc
    def update_task(self, caller, task_id, changes, expected_version=None, directory=None):
        """``update_task(caller, id, {"due_at": "2026-12-02T10:00:00Z"}, expected_version=3)``"""
        caller = Caller.load(caller)
        return self.db.write(lambda: commands.update_task(self.db, caller, task_id, changes, expected_version, directory))

    @rpc
    def tick_checklist(self, caller, task_id, index, data):
        """``tick_checklist(caller, id, 0, {"done": true})`` → the task; an index out of range is 404."""
        return self.db.write(lambda: commands.tick(self.db, Caller.load(caller), task_id, index, data))

    @rpc
    def complete_task(self, caller, task_id):
        """``complete_task(caller, id)`` → the done task; 409 ``checklist_incomplete`` while a step is not done.
        Completing it again returns it unchanged."""
        return self.db.write(lambda: commands.complete_task(self.db, Caller.load(caller), task_id, self.policy))

    @rpc
    def cancel_task(self, caller, task_id, data):
        """``cancel_task(caller, id, {"reason": "Клиент отказался"})`` (who set it, a head, an admin)."""
        return self.db.write(lambda: commands.cancel_task(self.db, Caller.load(caller), task_id, data))

    # ---- deadlines and penalties

    @settings_timer("task_check_interval_s")
    def check_deadlines(self):
        """Tasks past their deadline become overdue (one penalty each); automations' delayed tasks are made."""
        self.check_overdue_tasks()
        made = commands.Automations(self.db, notices.People(self.db.session)).run_due()
        if made:
            log.info("made %d task(s) scheduled by automations", made)

    @rpc
    def check_overdue_tasks(self):
        """Run the overdue check now (as the timer does): ``{"overdue": 2000, "took_s": 0.8}``. Safe at any
        time and on any replica: a task becomes overdue and gets its penalty once."""
        started = time.perf_counter()
        try:
            found = commands.Deadlines(self.db, self.policy).check()
        except BaseException:
            self.db.rollback()
            raise
        if found:
            log.info("%d task(s) became overdue", found)
        return {"overdue": found, "took_s": round(time.perf_counter() - started, 3)}

    @rpc
    def list_penalties(self, caller, query=None):
        """``list_penalties(caller, {"user_id": ..., "month": "2026-11", "status": "active"})`` → ``{items, next_cursor}``."""
        filters = load_or_raise(PenaltyQuerySchema, query or {}, BadRequest)
        return repo.list_penalties(self.db.reader, Caller.load(caller), filters, views.penalty)

    @rpc
    def waive_penalty(self, caller, penalty_id, data):
        """``waive_penalty(caller, id, {"reason": "Клиент перенёс встречу"})`` (head, admin)."""
        return self.db.write(lambda: commands.waive_penalty(self.db, Caller.load(caller), penalty_id, data))

    # ---- templates and automations

    @rpc
    def create_template(self, caller, data):
        """``create_template(caller, {"name": "Первый звонок", "process": "Продажа", "instruction": "...",
        "checklist": ["Представиться", "Выявить потребность"], "due_in_hours": 24})`` → version 1."""
        return self.db.write(lambda: commands.create_template(self.db, Caller.load(caller), data))

    @rpc
    def update_template(self, caller, template_id, changes, expected_version=None):
        """Any change makes a new version: ``update_template(caller, id, {"due_in_hours": 48})``."""
        caller = Caller.load(caller)
        return self.db.write(lambda: commands.update_template(self.db, caller, template_id, changes, expected_version))

    @rpc
    def get_template(self, caller, template_id):
        """A template of the caller's branch, at its current version."""
        return views.template(commands.require_template(self.db.reader, Caller.load(caller), template_id))

    @rpc
    def list_templates(self, caller, query=None):
        """``list_templates(caller, {"process": "Продажа"})`` → ``{items, next_cursor}``, recently changed first."""
        filters = load_or_raise(TemplateQuerySchema, query or {}, BadRequest)
        return repo.list_templates(self.db.reader, Caller.load(caller), filters, views.template)

    @rpc
    def create_automation(self, caller, data):
        """``create_automation(caller, {"event": "deal_won", "template_id": ..., "assign_to": "owner",
        "delay_hours": 168})`` → the automation. A ``pipeline_id`` is checked with the deals service first."""
        caller = Caller.load(caller)
        pipeline = None
        if isinstance(data, dict) and isinstance(data.get("pipeline_id"), str) and "deals" in self.settings.services:
            try:
                pipeline = self.deals_rpc.get_pipeline(caller.dump(), data["pipeline_id"])
            except (NotFound, BadRequest):
                pipeline = None
        return self.db.write(lambda: commands.create_automation(self.db, caller, data, pipeline))

    @rpc
    def list_automations(self, caller, query=None):
        """``list_automations(caller, {"event": "deal_won", "active": "true"})`` → ``{items, next_cursor}``."""
        filters = load_or_raise(AutomationQuerySchema, query or {}, BadRequest)
        return repo.list_automations(self.db.reader, Caller.load(caller), filters, views.automation)

    @rpc
    def disable_automation(self, caller, automation_id):
        """``disable_automation(caller, id)`` → the automation, ``active: false``."""
        return self.db.write(lambda: commands.disable_automation(self.db, Caller.load(caller), automation_id))

    # ---- complaints

    @rpc
    def create_complaint(self, caller, data):
        """``create_complaint(caller, {"client_id": ..., "subject": "Доставка опоздала", "text": "..."})`` → the
        complaint with its task (for the client's owner, due within the SLA) and ``due_at``."""
        caller = Caller.load(caller)
        data = commands.load_new_complaint(data)
        client = self._visible("clients", caller, data["client_id"])
        deal = self._visible("deals", caller, data["deal_id"])
        return self.db.write(lambda: commands.create_complaint(self.db, caller, data, client, deal, self.policy))

    @rpc
    def update_complaint(self, caller, complaint_id, changes, expected_version=None):
        """``update_complaint(caller, id, {"status": "resolved", "resolution": "Вернули деньги"})``"""
        caller = Caller.load(caller)
        return self.db.write(lambda: commands.update_complaint(self.db, caller, complaint_id, changes, expected_version))

    @rpc
    def get_complaint(self, caller, complaint_id):
        """One complaint the caller may see."""
        return views.complaint(commands.require_complaint(self.db.reader, Caller.load(caller), complaint_id))

    @rpc
    def list_complaints(self, caller, query=None):
        """``list_complaints(caller, {"status": "open", "client_id": ...})`` → ``{items, next_cursor}``."""
        filters = load_or_raise(ComplaintQuerySchema, query or {}, BadRequest)
        return repo.list_complaints(self.db.reader, Caller.load(caller), filters, views.complaint)

    # ---- notifications

    @rpc
    def list_notifications(self, caller, query=None):
        """The caller's own notices, newest first: ``list_notifications(caller, {"unread": "true"})``."""
        filters = load_or_raise(NotificationQuerySchema, query or {}, BadRequest)
        return repo.list_notifications(self.db.reader, Caller.load(caller), filters, views.notification)

    @rpc
    def read_notification(self, caller, notification_id):
        """Mark one of the caller's notices read; reading it again keeps the first ``read_at``."""
        return self.db.write(lambda: commands.read_notification(self.db, Caller.load(caller), notification_id))

    # ---- for other services

    @rpc
    def export(self, kind, cursor=None, limit=500):
        """Every task, penalty or complaint, oldest first, in the shape the events carry them, for services that
        rebuild read models: ``export("tasks", cursor=None, limit=500)`` → ``{"items": [...], "next_cursor": ...}``."""
        page = load_or_raise(ExportQuerySchema, {"kind": kind, "cursor": cursor, "limit": limit}, BadRequest)
        return commands.export(self.db.reader, page["kind"], page["cursor"], page["limit"])

    @rpc
    def health(self):
        """``health()`` → ``{"service": "tasks", "database": "ok"}``; raises if the database is down."""
        self.db.ping()
        return {"service": self.name, "database": "ok"}

    # ---- events

    @event_handler("gateway", "user_created")
    def handle_user_created(self, payload):
        with self.db.transaction():
            commands.remember_user(self.db, "user_created", payload)

    @event_handler("gateway", "user_updated")
    def handle_user_updated(self, payload):
        with self.db.transaction():
            commands.remember_user(self.db, "user_updated", payload)

    @event_handler("clients", "client_created")
    def handle_client_created(self, payload):
        self._follow("client_created", payload)

    @event_handler("deals", "deal_created")
    def handle_deal_created(self, payload):
        self._follow("deal_created", payload)

    @event_handler("deals", "deal_stage_changed")
    def handle_deal_stage_changed(self, payload):
        self._follow("deal_stage_changed", payload)

    @event_handler("deals", "deal_won")
    def handle_deal_won(self, payload):
        self._follow("deal_won", payload)

    @event_handler("deals", "deal_lost")
    def handle_deal_lost(self, payload):
        self._follow("deal_lost", payload)

    @event_handler("clients", "client_merged")
    def handle_client_merged(self, payload):
        """A client was merged into another: its tasks, complaints and scheduled tasks follow it."""
        with self.db.transaction():
            return commands.repoint_merged_client(self.db, payload)

    @event_handler("deals", "deal_stuck")
    def handle_deal_stuck(self, payload):
        with self.db.transaction():
            commands.deal_stuck(self.db, payload, self.policy)

    @event_handler("clients", "call_missed")
    def handle_call_missed(self, payload):
        with self.db.transaction():
            commands.call_missed(self.db, payload, self.policy)

    def _follow(self, event_type, payload):
        with self.db.transaction():
            commands.follow_event(self.db, event_type, payload)


def _notice_handler(event_type: str):
    """``handle_<event>`` for an event of ``notices.ON_EVENTS``: it only tells people."""

    def handle(self, payload):
        with self.db.transaction():
            commands.notify_from_event(self.db, event_type, payload)

    handle.__name__ = handle.__qualname__ = f"handle_{event_type}"
    return event_handler(EVENT_SOURCES[event_type], event_type)(handle)


for _event_type in notices.ON_EVENTS:
    setattr(TasksService, f"handle_{_event_type}", _notice_handler(_event_type))
