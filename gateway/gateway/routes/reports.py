"""Reports (the reports service): JSON, CSV with ``Accept: text/csv``, an SVG chart with ``Accept: image/svg+xml``;
plans, their miss reasons and channel spend; and the head of sales' dashboard page."""

from __future__ import annotations

from importlib import resources

from werkzeug.wrappers import Response

from crm_common.contracts.reports import (
    ChannelsSchema,
    ClientBaseQuerySchema,
    ClientBaseSchema,
    FunnelQuerySchema,
    FunnelSchema,
    ManagersSchema,
    MissReasonSchema,
    MonthQuerySchema,
    PeriodQuerySchema,
    PlanReportSchema,
    PlanSchema,
    PlanSetSchema,
    ScriptsSchema,
    SpendSchema,
    SpendSetSchema,
)
from crm_common.contracts.segments import CampaignsReportSchema
from crm_common.schemas import is_uuid
from gateway import identity
from gateway.http import JSON, api
from gateway.routes.common import check_named_branch, query_args

CSV = "text/csv"
SVG = "image/svg+xml"
FORMATS = (JSON, CSV, SVG)
HEADS = ("admin", "head")
ERRORS = (403, 404, 406, 422)


def _report_options(query, response, summary, roles=HEADS) -> dict:
    return {"query": query, "response": response, "summary": summary, "roles": roles, "formats": FORMATS,
            "errors": ERRORS, "tag": "reports"}


class ReportRoutes:
    def _report(self, request, caller, name: str, method: str | None = None):
        """A report in the format negotiated from Accept. A ``branch_id`` no branch has is 404, as is one
        the caller may not see (the service decides that)."""
        query = query_args(request)
        named = query.get("branch_id")
        if named and is_uuid(named) and not identity.branch_exists(self.db.reader, named):
            raise identity.BranchNotFound()
        if request.media_type == JSON:
            return 200, getattr(self.reports_rpc, method or name)(caller.dump(), query), {"Vary": "Accept"}
        fmt = "csv" if request.media_type == CSV else "svg"
        out = self.reports_rpc.render_report(caller.dump(), name, query, fmt)
        return Response(out["body"], status=200, content_type=f"{out['media_type']}; charset=utf-8", headers={
            "Vary": "Accept", "Content-Disposition": f'inline; filename="{out["filename"]}"',
        })

    @api("GET", "/reports/client-base", **_report_options(ClientBaseQuerySchema, ClientBaseSchema, "Client base audit"))
    def report_client_base(self, request, caller):
        """Per month: ``total`` clients in the base at its end (not archived), ``new``, ``archived``, ``net`` =
        new − archived; new clients per source; clients in the base per tag at the end of the period.

        ``?from=2026-01&to=2026-12`` (``from`` defaults to 11 months before ``to``, ``to`` to this month).
        """
        return self._report(request, caller, "client_base")

    @api("GET", "/reports/funnel", **_report_options(FunnelQuerySchema, FunnelSchema, "Sales funnel"))
    def report_funnel(self, request, caller):
        """``?pipeline_id=...&from=2026-01&to=2026-03[&owner_id=]``: per stage, the deals that entered it in the
        period, how many ``moved_on`` to a later open or won stage, how many were ``lost`` there,
        ``conversion`` = moved_on / entered, and the median and mean days spent in it."""
        return self._report(request, caller, "funnel")

    @api("GET", "/reports/plan", **_report_options(MonthQuerySchema, PlanReportSchema, "Plans and their fulfilment"))
    def report_plan(self, request, caller):
        """``?month=2026-11``: each branch's and manager's plan, the ``fact`` (amounts of deals won that month in
        the plan's currency; other currencies listed apart), ``fulfilment`` = fact / plan and the miss reason."""
        return self._report(request, caller, "plan", "plan_report")

    @api("GET", "/reports/channels", **_report_options(PeriodQuerySchema, ChannelsSchema, "Marketing channels"))
    def report_channels(self, request, caller):
        """``?from=&to=``: per source, touchpoints, new clients, deals won and revenue of those clients, spend,
        ``roi`` = (revenue − spend) / spend and ``cost_per_client`` = spend / new clients."""
        return self._report(request, caller, "channels")

    @api("GET", "/reports/managers", **_report_options(MonthQuerySchema, ManagersSchema, "Manager KPIs",
                                                       roles=None))
    def report_managers(self, request, caller):
        """``?month=``: per manager, calls, meetings, interactions, tasks done on time, tasks overdue, penalties,
        deals moved, deals won and revenue. A manager gets their own line only."""
        return self._report(request, caller, "managers")

    @api("GET", "/reports/scripts", **_report_options(PeriodQuerySchema, ScriptsSchema, "Sales script use"))
    def report_scripts(self, request, caller):
        """``?from=&to=``: per script, uses (interactions citing it), clients it was used with, and the deals
        those clients won after a use."""
        return self._report(request, caller, "scripts")

    @api("GET", "/reports/campaigns", **_report_options(PeriodQuerySchema, CampaignsReportSchema, "Campaigns"))
    def report_campaigns(self, request, caller):
        """``?from=&to=``: per campaign running (or touched) in the period: ``audience`` (its segment's size when it
        was created), touchpoints carrying its id in ``utm.campaign`` and the clients they created, deals won in the
        period by the clients it touched (after the first touch) and their revenue, its budget, ``roi`` =
        (revenue − budget) / budget and ``cost_per_client`` = budget / new clients."""
        return self._report(request, caller, "campaigns")

    @api("PUT", "/plans", roles=HEADS, body=PlanSetSchema, response=PlanSchema, errors=(403, 422),
         summary="Set a sales plan", tag="reports")
    def set_plan(self, request, caller):
        """``{"month": "2026-11", "user_id": ..., "amount": "500000.00", "currency": "RUB"}`` for a manager, or
        ``branch_id`` for a branch (a head's own branch when neither is given). Setting the same month and
        target again replaces the plan. A head plans only for their branch (422 naming the field)."""
        body = request.json_body
        check_named_branch(self.db.reader, body)
        directory = identity.directory(self.db.reader, [body.get("user_id")])
        return self.reports_rpc.set_plan(caller.dump(), body, directory)

    @api("POST", "/plans/<plan_id>/miss-reason", roles=HEADS, body=MissReasonSchema, response=PlanSchema,
         errors=(403, 404, 422), summary="Why a plan was missed", tag="reports")
    def record_miss_reason(self, request, caller, plan_id):
        """``{"reason": "Склад не отгрузил вовремя", "category": "capacity"}``; categories: demand, leads,
        conversion, capacity, other. Recording again replaces it; the plan report shows it."""
        return self.reports_rpc.record_miss_reason(caller.dump(), plan_id, request.json_body)

    @api("POST", "/channels/<source>/spend", roles=HEADS, body=SpendSetSchema, response=SpendSchema,
         errors=(403, 422), summary="Spend on a marketing channel", tag="reports")
    def set_channel_spend(self, request, caller, source):
        """``POST /channels/yandex/spend {"month": "2026-11", "amount": "30000.00", "currency": "RUB"}``: what the
        branch spent on the channel (a client source) that month; posting again replaces it. An admin names
        ``branch_id``."""
        body = request.json_body
        check_named_branch(self.db.reader, body)
        return self.reports_rpc.set_spend(caller.dump(), source, body)

    @api("GET", "/dashboard", prefix="", public=True, raw=True, tag="reports")
    def dashboard(self, request, caller):
        """The head of sales' charts for the current month, after logging in with the API's login."""
        page = resources.files("gateway").joinpath("dashboard.html").read_text(encoding="utf-8")
        return Response(page, status=200, content_type="text/html; charset=utf-8", headers={
            "Content-Security-Policy": "default-src 'self'; img-src 'self' blob:; style-src 'self' 'unsafe-inline'; "
                                       "script-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
        })
