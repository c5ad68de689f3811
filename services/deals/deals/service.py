"""The deals nameko service: RPC entrypoints and the stuck-deal timer; rules live in commands and domain."""

from __future__ import annotations

import logging
import time

from crm_common.caller import Caller
from crm_common.config import SettingsProvider
from crm_common.db import Database
from crm_common.errors import BadRequest, NotFound
from crm_common.handlers import event_handler
from crm_common.rpc import RpcProxy, rpc
from crm_common.schemas import PageQuerySchema, is_uuid, load_or_raise
from crm_common.timer import settings_timer
from deals import commands, exports, offboarding, views
from deals import repository as repo
from deals.models import Base, Deal
from deals.schemas import DealQuerySchema, PipelineQuerySchema, ScriptQuerySchema, script_out, script_version_out

log = logging.getLogger(__name__)


class DealsService:
    name = "deals"

    db = Database(Base)
    settings = SettingsProvider()
    clients_rpc = RpcProxy("clients")

    # ---- pipelines

    @rpc
    def create_pipeline(self, caller, data):
        """``create_pipeline(caller, {"name": "Опт", "stages": [{"name": "Новая", "kind": "open", "max_days": 2},
        {"name": "Успех", "kind": "won"}, {"name": "Отказ", "kind": "lost"}]})`` → pipeline with stage ids."""
        return self.db.write(lambda: commands.create_pipeline(self.db, Caller.load(caller), data))

    @rpc
    def update_pipeline(self, caller, pipeline_id, changes, expected_version=None):
        """Rename or change stages (the whole list): ``update_pipeline(caller, id, {"stages": [...]})``."""
        caller = Caller.load(caller)
        return self.db.write(lambda: commands.update_pipeline(self.db, caller, pipeline_id, changes, expected_version))

    @rpc
    def get_pipeline(self, caller, pipeline_id):
        """A pipeline of the caller's branch with its current stages in order."""
        pipeline = commands.require_pipeline(self.db.reader, Caller.load(caller), pipeline_id)
        return views.dump_pipeline(self.db.reader, pipeline)

    @rpc
    def list_pipelines(self, caller, query=None):
        """``list_pipelines(caller, {"branch_id": ...})`` → ``{items, next_cursor}``."""
        filters = load_or_raise(PipelineQuerySchema, query or {}, BadRequest)
        return views.list_pipelines(self.db.reader, Caller.load(caller), filters)

    # ---- deals

    @rpc
    def create_deal(self, caller, data, directory=None):
        """``create_deal(caller, {"client_id": ..., "pipeline_id": ..., "title": "Поставка", "amount": "1250.50",
        "currency": "RUB"})`` → the deal at the pipeline's first stage."""
        caller = Caller.load(caller)
        data = commands.load_new_deal(data)
        client = self._visible_client(caller, data["client_id"])
        return self.db.write(lambda: commands.create_deal(self.db, caller, data, client, directory))

    def _visible_client(self, caller: Caller, client_id: str):
        try:
            return self.clients_rpc.get_client(caller.dump(), client_id)
        except NotFound:
            return None

    @rpc
    def get_deal(self, caller, deal_id):
        """One deal the caller may see, with its stage and the stage's current script."""
        return views.dump_deal(self.db.reader, commands.require_deal(self.db.reader, Caller.load(caller), deal_id))

    @rpc
    def list_deals(self, caller, query=None):
        """``list_deals(caller, {"stage_id": ..., "owner_id": ..., "stuck": "true"})`` → ``{items, next_cursor}``."""
        filters = load_or_raise(DealQuerySchema, query or {}, BadRequest)
        return views.list_deals(self.db.reader, Caller.load(caller), filters)

    @rpc
    def update_deal(self, caller, deal_id, changes, expected_version=None, directory=None):
        """``update_deal(caller, id, {"amount": "990.00"}, expected_version=2)``"""
        caller = Caller.load(caller)
        return self.db.write(lambda: commands.update_deal(self.db, caller, deal_id, changes, expected_version, directory))

    @rpc
    def move_deal(self, caller, deal_id, data, expected_version=None):
        """``move_deal(caller, id, {"stage_id": ..., "lost_reason": "Дорого"})``; stale versions are refused.

        Reopening a closed deal first asks the clients service where its client is now: a client moved to
        another branch since keeps its old deals closed."""
        caller = Caller.load(caller)
        client_branch_id = None
        deal = commands.require_deal(self.db.reader, caller, deal_id)
        if deal.status != "open" and "clients" in self.settings.services:
            client_branch_id = self.clients_rpc.branch_of_client(deal.client_id) or ""
        return self.db.write(lambda: commands.move_deal(
            self.db, caller, deal_id, data, expected_version, client_branch_id
        ))

    @rpc
    def get_history(self, caller, deal_id, query=None):
        """Every stage the deal entered, oldest first, with entry and exit times: ``{items, next_cursor}``."""
        page = load_or_raise(PageQuerySchema, query or {}, BadRequest)
        return commands.deal_history(self.db.reader, Caller.load(caller), deal_id, page)

    @rpc
    def deal_is_open(self, deal_id):
        """For the clients service: whether a deal is open now (False if unknown)."""
        deal = self.db.reader.get(Deal, deal_id) if is_uuid(deal_id) else None
        return deal is not None and deal.status == "open"

    @rpc
    def transfer_deals(self, transfer, limit=1000):
        """An offboarding's deals step, one batch per call (crm_common/transfers.py): ``transfer_deals({"id":
        offboarding id, "from_user_id", "to_user_id", "actor_id"}, 1000)`` → ``{"moved": total, "done": bool}``.
        Open deals only: won and lost deals keep their owner."""
        return self.db.write(lambda: offboarding.transfer_deals(self.db, transfer, limit))

    @rpc
    def open_deals_of_client(self, client_id):
        """For the clients service: ``[{id, title}]`` of the client's open deals, whoever owns them."""
        return commands.open_deals_of_client(self.db.reader, client_id)

    @settings_timer("stuck_check_interval_s")
    def raise_stuck_deals(self):
        """Raise deal_stuck for deals past their stage's max_days (once per stage entry)."""
        return self.check_stuck_deals()["raised"]

    @rpc
    def check_stuck_deals(self):
        """Run the stuck check now (as the timer does): ``{"raised": 2000, "took_s": 0.9}``. Safe at any time and
        on any replica: a deal is raised once per stage entry."""
        started = time.perf_counter()
        try:
            raised = commands.raise_stuck_deals(self.db)
        except BaseException:
            self.db.rollback()
            raise
        if raised:
            log.info("raised %d stuck deal(s)", raised)
        return {"raised": raised, "took_s": round(time.perf_counter() - started, 3)}

    # ---- the sales book

    @rpc
    def create_script(self, caller, data):
        """``create_script(caller, {"title": "Первый звонок", "body": "...", "stage_id": ...})`` → version 1."""
        return self.db.write(lambda: commands.create_script(self.db, Caller.load(caller), data))

    @rpc
    def update_script(self, caller, script_id, changes, expected_version=None):
        """Any change makes a new version: ``update_script(caller, id, {"body": "..."}, expected_version=2)``."""
        return self.db.write(lambda: commands.update_script(
            self.db, Caller.load(caller), script_id, changes, expected_version
        ))

    @rpc
    def get_script(self, caller, script_id):
        """A script of the caller's branch, at its current version."""
        return script_out.dump(commands.require_script(self.db.reader, Caller.load(caller), script_id))

    @rpc
    def list_scripts(self, caller, query=None):
        """``list_scripts(caller, {"stage_id": ...})`` → ``{items, next_cursor}``, recently changed first."""
        filters = load_or_raise(ScriptQuerySchema, query or {}, BadRequest)
        return repo.list_scripts(self.db.reader, Caller.load(caller), filters, script_out.dump)

    @rpc
    def list_script_versions(self, caller, script_id, query=None):
        """Every version of a script, newest first."""
        page = load_or_raise(PageQuerySchema, query or {}, BadRequest)
        script = commands.require_script(self.db.reader, Caller.load(caller), script_id)
        return repo.script_versions(self.db.reader, script.id, page["cursor"], page["limit"],
                                    script_version_out.dump)

    # ---- events of other services

    @event_handler("clients", "client_merged")
    def handle_client_merged(self, payload):
        """A client was merged into another: its deals follow it (``deal_updated`` for each)."""
        with self.db.transaction():
            moved = commands.repoint_merged_client(self.db, payload)
        if moved:
            log.info("moved %d deal(s) of merged client %s to %s", moved, payload["merged_id"], payload["client"]["id"])
        return moved

    @rpc
    def export(self, kind, cursor=None, limit=500):
        """Paged export for rebuilding read models: ``export("deals")`` → ``{items, next_cursor, total}``; kinds:
        deals (each with its stage history), pipelines, scripts (``crm_common.exports``)."""
        return exports.export(self.db.reader, kind, cursor, limit)

    @rpc
    def health(self):
        """``health()`` → ``{"service": "deals", "database": "ok"}``; raises if the database is down."""
        self.db.ping()
        return {"service": self.name, "database": "ok"}
