"""The reports nameko service: event handlers that keep the read model, report RPCs, plans and spend.

It never calls another service to answer a report: every answer comes from its own counters.
"""

from __future__ import annotations

import logging

from crm_common.batching import GroupCommit
from crm_common.caller import Caller
from crm_common.db import Database
from crm_common.errors import ValidationError
from crm_common.handlers import event_handler
from crm_common.rpc import rpc
from reports import commands, projection, render
from reports.models import Base

log = logging.getLogger(__name__)


class ReportsService:
    name = "reports"

    db = Database(Base)

    # ---- keeping the read model: each handler hands its event to the group commit and returns once it is applied

    events = GroupCommit(projection.commit_events, projection.commit_event)

    @event_handler("gateway", "user_created")
    def handle_user_created(self, payload):
        self.events.apply("user_created", payload)

    @event_handler("gateway", "user_updated")
    def handle_user_updated(self, payload):
        self.events.apply("user_updated", payload)

    @event_handler("gateway", "branch_created")
    def handle_branch_created(self, payload):
        self.events.apply("branch_created", payload)

    @event_handler("clients", "client_created")
    def handle_client_created(self, payload):
        self.events.apply("client_created", payload)

    @event_handler("clients", "client_updated")
    def handle_client_updated(self, payload):
        self.events.apply("client_updated", payload)

    @event_handler("clients", "client_archived")
    def handle_client_archived(self, payload):
        self.events.apply("client_archived", payload)

    @event_handler("clients", "client_restored")
    def handle_client_restored(self, payload):
        self.events.apply("client_restored", payload)

    @event_handler("clients", "client_merged")
    def handle_client_merged(self, payload):
        self.events.apply("client_merged", payload)

    @event_handler("clients", "interaction_logged")
    def handle_interaction_logged(self, payload):
        self.events.apply("interaction_logged", payload)

    @event_handler("clients", "touchpoint_recorded")
    def handle_touchpoint_recorded(self, payload):
        self.events.apply("touchpoint_recorded", payload)

    @event_handler("clients", "campaign_created")
    def handle_campaign_created(self, payload):
        self.events.apply("campaign_created", payload)

    @event_handler("clients", "campaign_updated")
    def handle_campaign_updated(self, payload):
        self.events.apply("campaign_updated", payload)

    @event_handler("deals", "pipeline_created")
    def handle_pipeline_created(self, payload):
        self.events.apply("pipeline_created", payload)

    @event_handler("deals", "pipeline_updated")
    def handle_pipeline_updated(self, payload):
        self.events.apply("pipeline_updated", payload)

    @event_handler("deals", "script_created")
    def handle_script_created(self, payload):
        self.events.apply("script_created", payload)

    @event_handler("deals", "script_updated")
    def handle_script_updated(self, payload):
        self.events.apply("script_updated", payload)

    @event_handler("deals", "deal_created")
    def handle_deal_created(self, payload):
        self.events.apply("deal_created", payload)

    @event_handler("deals", "deal_updated")
    def handle_deal_updated(self, payload):
        self.events.apply("deal_updated", payload)

    @event_handler("deals", "deal_stage_changed")
    def handle_deal_stage_changed(self, payload):
        self.events.apply("deal_stage_changed", payload)

    @event_handler("deals", "deal_won")
    def handle_deal_won(self, payload):
        self.events.apply("deal_won", payload)

    @event_handler("deals", "deal_lost")
    def handle_deal_lost(self, payload):
        self.events.apply("deal_lost", payload)

    @event_handler("deals", "deal_reopened")
    def handle_deal_reopened(self, payload):
        self.events.apply("deal_reopened", payload)

    @event_handler("tasks", "task_created")
    def handle_task_created(self, payload):
        self.events.apply("task_created", payload)

    @event_handler("tasks", "task_updated")
    def handle_task_updated(self, payload):
        self.events.apply("task_updated", payload)

    @event_handler("tasks", "task_completed")
    def handle_task_completed(self, payload):
        self.events.apply("task_completed", payload)

    @event_handler("tasks", "task_cancelled")
    def handle_task_cancelled(self, payload):
        self.events.apply("task_cancelled", payload)

    @event_handler("tasks", "task_overdue")
    def handle_task_overdue(self, payload):
        self.events.apply("task_overdue", payload)

    @event_handler("tasks", "penalty_recorded")
    def handle_penalty_recorded(self, payload):
        self.events.apply("penalty_recorded", payload)

    @event_handler("tasks", "penalty_waived")
    def handle_penalty_waived(self, payload):
        self.events.apply("penalty_waived", payload)

    # ---- reports

    @rpc
    def client_base(self, caller, query=None):
        """``client_base(caller, {"from": "2026-01", "to": "2026-06"})`` → ``{months: [{month, total, new,
        archived, net}], by_source, by_tag}``."""
        return commands.client_base(self.db.reader, Caller.load(caller), query or {})

    @rpc
    def funnel(self, caller, query=None):
        """``funnel(caller, {"pipeline_id": ..., "from": "2026-01", "to": "2026-03"})`` → ``{stages: [{stage_id,
        name, entered, moved_on, lost, conversion, median_days, mean_days}]}``."""
        return commands.funnel(self.db.reader, Caller.load(caller), query or {})

    @rpc
    def plan_report(self, caller, query=None):
        """``plan_report(caller, {"month": "2026-11"})`` → ``{branches: [...], managers: [{user_id, plan, fact,
        deals_won, fulfilment, miss_reason}]}``."""
        return commands.plan_report(self.db.reader, Caller.load(caller), query or {})

    @rpc
    def channels(self, caller, query=None):
        """``channels(caller, {"from": "2026-01", "to": "2026-03"})`` → ``{channels: [{source, touchpoints,
        new_clients, deals_won, revenue, spend, roi, cost_per_client}]}``."""
        return commands.channels(self.db.reader, Caller.load(caller), query or {})

    @rpc
    def managers(self, caller, query=None):
        """``managers(caller, {"month": "2026-11"})`` → ``{managers: [{user_id, calls, meetings, ...}]}``; a
        manager gets their own line only."""
        return commands.managers(self.db.reader, Caller.load(caller), query or {})

    @rpc
    def scripts(self, caller, query=None):
        """``scripts(caller, {"from": "2026-11", "to": "2026-11"})`` → ``{scripts: [{script_id, title, uses,
        clients, deals_won}]}``."""
        return commands.scripts(self.db.reader, Caller.load(caller), query or {})

    @rpc
    def campaigns(self, caller, query=None):
        """``campaigns(caller, {"from": "2026-12", "to": "2026-12"})`` → ``{campaigns: [{campaign_id, name, audience,
        touchpoints, new_clients, deals_won, currency, revenue, budget, roi, cost_per_client}]}``."""
        return commands.campaigns(self.db.reader, Caller.load(caller), query or {})

    @rpc
    def render_report(self, caller, report, query=None, fmt="csv"):
        """A report as CSV or as an SVG chart: ``render_report(caller, "funnel", {...}, "svg")`` →
        ``{"media_type": "image/svg+xml", "body": "<svg ...", "filename": "funnel-2026-11-2026-11.svg"}``."""
        if report not in commands.REPORTS:
            raise ValidationError("unknown report", fields={"report": [f"One of: {', '.join(commands.REPORTS)}."]})
        if fmt not in render.FORMATS:
            raise ValidationError("unknown format", fields={"fmt": [f"One of: {', '.join(render.FORMATS)}."]})
        answer = commands.REPORTS[report](self.db.reader, Caller.load(caller), query or {})
        return render.render(report, answer, fmt)

    # ---- own records

    @rpc
    def set_plan(self, caller, data, directory=None):
        """``set_plan(caller, {"month": "2026-11", "user_id": ..., "amount": "500000.00", "currency": "RUB"},
        directory)`` → the plan; setting it again replaces it."""
        return self.db.write(lambda: commands.set_plan(self.db, Caller.load(caller), data, directory))

    @rpc
    def record_miss_reason(self, caller, plan_id, data):
        """``record_miss_reason(caller, plan_id, {"reason": "Склад не отгрузил", "category": "capacity"})`` → the plan."""
        return self.db.write(lambda: commands.record_miss_reason(self.db, Caller.load(caller), plan_id, data))

    @rpc
    def set_spend(self, caller, source, data):
        """``set_spend(caller, "yandex", {"month": "2026-11", "amount": "30000.00", "currency": "RUB"})`` → the
        month's spend on that channel; setting it again replaces it."""
        return self.db.write(lambda: commands.set_spend(self.db, Caller.load(caller), source, data))

    @rpc
    def health(self):
        """``health()`` → ``{"service": "reports", "database": "ok"}``; raises if the database is down."""
        self.db.ping()
        return {"service": self.name, "database": "ok"}
