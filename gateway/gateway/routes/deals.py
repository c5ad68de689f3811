"""Deals and the sales process: pipelines with timed stages, deals and their stage history, sales scripts."""

from __future__ import annotations

from crm_common.contracts.deals import (
    DealCreateSchema,
    DealQuerySchema,
    DealSchema,
    DealUpdateSchema,
    PipelineCreateSchema,
    PipelineQuerySchema,
    PipelineSchema,
    PipelineUpdateSchema,
    ScriptCreateSchema,
    ScriptQuerySchema,
    ScriptSchema,
    ScriptUpdateSchema,
    ScriptVersionSchema,
    StageMoveSchema,
    StageVisitSchema,
)
from crm_common.schemas import PageQuerySchema, page_schema
from gateway.http import api
from gateway.routes.common import check_named_branch, etag, if_match, owner_directory, query_args

PipelinePage = page_schema(PipelineSchema, "PipelinePage")
DealPage = page_schema(DealSchema, "DealPage")
HistoryPage = page_schema(StageVisitSchema, "StageHistoryPage")
ScriptPage = page_schema(ScriptSchema, "ScriptPage")
ScriptVersionPage = page_schema(ScriptVersionSchema, "ScriptVersionPage")


class DealRoutes:
    @api("POST", "/pipelines", etag=True, status=201, roles=("admin", "head"), body=PipelineCreateSchema,
         response=PipelineSchema, errors=(403, 422), summary="Create a pipeline", tag="deals")
    def create_pipeline(self, request, caller):
        """A sales process of the branch (one per business line), its stages in order.

        ``{"name": "Опт", "stages": [{"name": "Новая заявка", "kind": "open", "max_days": 1},
        {"name": "КП отправлено", "kind": "open", "max_days": 3.5, "script_id": "..."},
        {"name": "Оплачено", "kind": "won"}, {"name": "Отказ", "kind": "lost"}]}``. The first stage is open;
        at least one won and one lost stage; ``max_days`` (fractions allowed) only on open stages.
        """
        body = request.json_body
        check_named_branch(self.db.reader, body)
        pipeline = self.deals_rpc.create_pipeline(caller.dump(), body)
        return 201, pipeline, etag(pipeline)

    @api("GET", "/pipelines", scopes=("deals:read",), query=PipelineQuerySchema, response=PipelinePage, errors=(400,),
         summary="List pipelines", tag="deals")
    def list_pipelines(self, request, caller):
        """The pipelines of the caller's branch (every branch for an admin, or ``?branch_id=``)."""
        return self.deals_rpc.list_pipelines(caller.dump(), query_args(request))

    @api("GET", "/pipelines/<pipeline_id>", scopes=("deals:read",),
         etag=True, response=PipelineSchema, errors=(404,), summary="One pipeline",
         tag="deals")
    def get_pipeline(self, request, caller, pipeline_id):
        """A pipeline with its current stages in order."""
        pipeline = self.deals_rpc.get_pipeline(caller.dump(), pipeline_id)
        return 200, pipeline, etag(pipeline)

    @api("PATCH", "/pipelines/<pipeline_id>", etag=True, roles=("admin", "head"), body=PipelineUpdateSchema, if_match=True,
         response=PipelineSchema, errors=(403, 404, 409, 422), summary="Change a pipeline", tag="deals")
    def update_pipeline(self, request, caller, pipeline_id):
        """Rename it, or send the whole new stage list: stages with ``id`` are kept (renamed, re-timed,
        reordered), new ones added, missing ones removed. A stage with deals in it cannot be removed or change
        kind (409). History keeps the names the stages had when deals entered them."""
        pipeline = self.deals_rpc.update_pipeline(caller.dump(), pipeline_id, request.json_body, if_match(request))
        return 200, pipeline, etag(pipeline)

    @api("POST", "/deals", etag=True, status=201, body=DealCreateSchema, response=DealSchema, errors=(403, 422),
         summary="Create a deal", tag="deals")
    def create_deal(self, request, caller):
        """``{"client_id": ..., "pipeline_id": ..., "title": "Поставка оборудования", "amount": "1250.50",
        "currency": "RUB"}`` → 201 deal at the first stage. The client must exist and be visible to you
        (otherwise 422 naming client_id); the owner defaults to the client's owner. After a 503, repeat the
        request with ``Idempotency-Key: <your key, or the 503's request_id>``: one deal, whatever happened."""
        body = request.json_body
        deal = self.deals_rpc.create_deal(caller.dump(), body, owner_directory(self.db.reader, body))
        return 201, deal, etag(deal)

    @api("GET", "/deals", scopes=("deals:read",), query=DealQuerySchema, response=DealPage, errors=(400,), summary="List deals",
         tag="deals")
    def list_deals(self, request, caller):
        """Filters: pipeline_id, stage_id, status, owner_id, client_id, ``stuck=true`` (past the stage's
        max_days). Newest first; ``sort=stage_entered_at`` puts the longest waiting first."""
        return self.deals_rpc.list_deals(caller.dump(), query_args(request))

    @api("GET", "/deals/<deal_id>", scopes=("deals:read",),
         etag=True, response=DealSchema, errors=(404,), summary="One deal", tag="deals")
    def get_deal(self, request, caller, deal_id):
        """The deal with its current stage and that stage's script for the manager."""
        deal = self.deals_rpc.get_deal(caller.dump(), deal_id)
        return 200, deal, etag(deal)

    @api("PATCH", "/deals/<deal_id>", etag=True, body=DealUpdateSchema, response=DealSchema,
         errors=(403, 404, 409, 422), if_match=True,
         summary="Change a deal", tag="deals")
    def update_deal(self, request, caller, deal_id):
        """Title, amount, currency, owner. With ``If-Match`` a stale version is 409 ``version_conflict``."""
        body = request.json_body
        deal = self.deals_rpc.update_deal(
            caller.dump(), deal_id, body, if_match(request), owner_directory(self.db.reader, body)
        )
        return 200, deal, etag(deal)

    @api("POST", "/deals/<deal_id>/stage", etag=True, body=StageMoveSchema, response=DealSchema,
         errors=(404, 409, 422), if_match=True,
         summary="Move a deal to a stage", tag="deals")
    def move_deal(self, request, caller, deal_id):
        """``{"stage_id": ...}``; a lost stage needs ``lost_reason``. Won and lost deals are closed and can be
        reopened by moving them to an open stage. Two moves of one deal at the same moment: one wins, the
        other gets 409 ``version_conflict`` (also with a stale ``If-Match``)."""
        deal = self.deals_rpc.move_deal(caller.dump(), deal_id, request.json_body, if_match(request))
        return 200, deal, etag(deal)

    @api("GET", "/deals/<deal_id>/history", scopes=("deals:read",),
         query=PageQuerySchema, response=HistoryPage, errors=(400, 404),
         summary="A deal's stage history", tag="deals")
    def deal_history(self, request, caller, deal_id):
        """Every stage the deal entered, oldest first: entered_at, exited_at, time_spent_s, who moved it."""
        return self.deals_rpc.get_history(caller.dump(), deal_id, query_args(request))

    @api("POST", "/scripts", etag=True, status=201, roles=("admin", "head"), body=ScriptCreateSchema, response=ScriptSchema,
         errors=(403, 422), summary="Write a sales script", tag="deals")
    def create_script(self, request, caller):
        """``{"title": "Первый звонок", "body": "1. Представьтесь...", "stage_id": ...}`` → 201, version 1.
        A deal at a stage shows the script the pipeline pins to that stage (``script_id`` in the pipeline),
        otherwise the most recently changed script written for the stage."""
        body = request.json_body
        check_named_branch(self.db.reader, body)
        script = self.deals_rpc.create_script(caller.dump(), body)
        return 201, script, etag(script)

    @api("GET", "/scripts", query=ScriptQuerySchema, response=ScriptPage, errors=(400,),
         summary="The sales book", tag="deals")
    def list_scripts(self, request, caller):
        """Scripts of the caller's branch, recently changed first; ``?stage_id=`` for one stage."""
        return self.deals_rpc.list_scripts(caller.dump(), query_args(request))

    @api("GET", "/scripts/<script_id>", etag=True, response=ScriptSchema, errors=(404,), summary="One script", tag="deals")
    def get_script(self, request, caller, script_id):
        """The current version of a script."""
        script = self.deals_rpc.get_script(caller.dump(), script_id)
        return 200, script, etag(script)

    @api("PATCH", "/scripts/<script_id>", etag=True, roles=("admin", "head"), body=ScriptUpdateSchema, response=ScriptSchema,
         if_match=True, errors=(403, 404, 409, 422), summary="Change a script (new version)", tag="deals")
    def update_script(self, request, caller, script_id):
        """Every change makes a new version; interactions keep citing the script by id. With
        ``If-Match: <version>`` an edit made on a stale version is 409 ``version_conflict``."""
        script = self.deals_rpc.update_script(caller.dump(), script_id, request.json_body, if_match(request))
        return 200, script, etag(script)

    @api("GET", "/scripts/<script_id>/versions", query=PageQuerySchema, response=ScriptVersionPage,
         errors=(400, 404), summary="A script's versions", tag="deals")
    def list_script_versions(self, request, caller, script_id):
        """Every version of the script, newest first."""
        return self.deals_rpc.list_script_versions(caller.dump(), script_id, query_args(request))
