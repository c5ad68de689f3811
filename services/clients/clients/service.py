"""The clients nameko service: RPC entrypoints only; rules live in commands and domain."""

from __future__ import annotations

from clients import calls, commands, exports, imports, merging, offboarding, segments
from clients import repository as repo
from clients.domain import search_term
from clients.models import Base, Client
from clients.schemas import client_out, client_query, import_errors_query, import_query, timeline_out, timeline_query
from crm_common.caller import Caller
from crm_common.config import SettingsProvider
from crm_common.db import Database
from crm_common.errors import BadRequest
from crm_common.handlers import event_handler
from crm_common.rpc import RpcProxy, rpc
from crm_common.schemas import is_uuid, load_or_raise
from crm_common.timer import ReplicaName, Wake, wakeable_timer


class ClientsService:
    name = "clients"

    db = Database(Base)
    settings = SettingsProvider()
    deals_rpc = RpcProxy("deals")
    replica = ReplicaName()
    wake_imports = Wake("process_imports")

    @property
    def region(self) -> str:
        return self.settings.default_region

    @rpc
    def create_client(self, caller, data, directory=None):
        """Create a client. ``create_client(caller, {"kind": "person", "name": "Иван", "phones": ["8 916 123-45-67"]})``"""
        return self.db.write(lambda: commands.create_client(self.db, Caller.load(caller), data, directory, self.region))

    @rpc
    def get_client(self, caller, client_id):
        """One client the caller may see. ``get_client(caller, "6f1c...")`` → client dict."""
        return client_out.dump(commands.require_visible(self.db.reader, Caller.load(caller), client_id))

    @rpc
    def branch_of_client(self, client_id):
        """For the deals service: the branch a client is in now, whoever may see it; None if unknown."""
        client = self.db.reader.get(Client, client_id) if is_uuid(client_id) else None
        return client.branch_id if client is not None else None

    @rpc
    def list_clients(self, caller, query=None):
        """A page of clients. ``list_clients(caller, {"q": "иван", "limit": "20"})`` → ``{items, next_cursor}``."""
        caller = Caller.load(caller)
        filters = load_or_raise(client_query, query or {}, BadRequest)
        term = search_term(filters["q"], self.region) if filters.get("q") else None
        return repo.list_clients(self.db.reader, caller, filters, term, client_out.dump)

    @rpc
    def count_clients(self, caller, query=None):
        """How many clients ``list_clients`` would list with these filters (paging ignored), for the gateway's
        exports. ``count_clients(caller, {"tag": "vip"})`` → ``{"count": 42}``."""
        caller = Caller.load(caller)
        filters = load_or_raise(client_query, query or {}, BadRequest)
        term = search_term(filters["q"], self.region) if filters.get("q") else None
        return {"count": repo.count_clients(self.db.reader, caller, filters, term)}

    @rpc
    def update_client(self, caller, client_id, changes, expected_version=None, directory=None):
        """Change some fields. ``update_client(caller, id, {"tags": ["vip"]}, expected_version=3)``

        A client with open deals stays in its branch (the deals and their pipeline belong to it)."""
        caller = Caller.load(caller)
        deals = None  # not asked: refused if the client turns out to be moving after all
        if isinstance(changes, dict) and changes.get("branch_id"):
            client = commands.require_visible(self.db.reader, caller, client_id)
            if changes["branch_id"] != client.branch_id:
                deals = self._deal_check(client.id)
        return self.db.write(lambda: commands.update_client(
            self.db, caller, client_id, changes, expected_version, directory, self.region, deals
        ))

    @rpc
    def archive_client(self, caller, client_id):
        """Archive (never delete) a client without open deals. ``archive_client(caller, id)`` → the client."""
        caller = Caller.load(caller)
        client = commands.require_visible(self.db.reader, caller, client_id)
        deals = self._deal_check(client.id)
        return self.db.write(lambda: commands.set_archived(self.db, caller, client_id, True, deals))

    def _deal_check(self, client_id: str) -> commands.DealCheck:
        """The client's open deals, asked before the transaction (see ``commands.DealCheck``)."""
        if "deals" not in self.settings.services:
            return commands.NO_DEALS
        openings = repo.deal_openings(self.db.reader, client_id)  # before asking: a later opening shows
        return commands.DealCheck(self.deals_rpc.open_deals_of_client(client_id), openings)

    @rpc
    def restore_client(self, caller, client_id):
        """Bring an archived client back. ``restore_client(caller, id)``"""
        return self.db.write(lambda: commands.set_archived(self.db, Caller.load(caller), client_id, False))

    @rpc
    def transfer_clients(self, transfer, limit=1000):
        """An offboarding's clients step, one batch per call (crm_common/transfers.py): ``transfer_clients({"id":
        offboarding id, "from_user_id", "to_user_id", "actor_id"}, 1000)`` → ``{"moved": total, "done": bool}``."""
        return self.db.write(lambda: offboarding.transfer_clients(self.db, transfer, limit))

    @rpc
    def log_interaction(self, caller, client_id, data):
        """Record a call, meeting, note... ``log_interaction(caller, id, {"type": "call", "direction": "in"})``"""
        return self.db.write(lambda: commands.log_interaction(self.db, Caller.load(caller), client_id, data))

    @rpc
    def get_timeline(self, caller, client_id, query=None):
        """Everything that happened with a client, newest first: ``{items, next_cursor}``."""
        caller = Caller.load(caller)
        page = load_or_raise(timeline_query, query or {}, BadRequest)
        client = commands.require_visible(self.db.reader, caller, client_id)
        return repo.timeline(self.db.reader, client.id, page["cursor"], page["limit"], timeline_out.dump)

    @rpc
    def record_touchpoint(self, caller, data, directory=None):
        """Find or create the client behind a contact and record the touchpoint.

        ``record_touchpoint(caller, {"channel": "web_form", "phone": "+7 916 000-00-00"},
        {"managers": [...]})`` → ``{client_id, created, touchpoint_id}``
        """
        return self.db.write(lambda: commands.record_touchpoint(self.db, Caller.load(caller), data, directory, self.region))

    # ---- duplicates and merging

    @rpc
    def find_duplicates(self, caller, client_id):
        """Likely duplicates of a client, strongest first: ``{"items": [{"client": {...}, "reasons":
        [{"reason": "same_phone", "value": "+79161234567"}]}]}``."""
        return merging.find_duplicates(self.db.reader, Caller.load(caller), client_id)

    @rpc
    def merge_clients(self, caller, client_id, data):
        """Merge another client into this one: ``merge_clients(caller, kept_id, {"other_id": ...})`` → the kept
        client; the other answers as a redirect from now on, and ``client_merged`` tells the other services."""
        return self.db.write(lambda: merging.merge_clients(self.db, Caller.load(caller), client_id, data))

    # ---- imports (the gateway reads the file and hands the rows over; the timer below processes them)

    @rpc
    def create_import(self, caller, data, directory=None):
        """``create_import(caller, {"file_name": "base.csv", "on_duplicate": "merge", "dry_run": false,
        "mapping": {...}, "total": 1000}, {"managers": [...]})`` → the import, ``uploading``."""
        return self.db.write(lambda: imports.create_import(self.db, Caller.load(caller), data, directory))

    @rpc
    def add_import_rows(self, caller, import_id, rows):
        """Stage a chunk of mapped rows: ``add_import_rows(caller, id, [{"row": 2, "data": {...}}])`` →
        ``{"received": n}``. Each chunk is its own write (the command log keys a call by its arguments too)."""
        return self.db.write(lambda: imports.add_rows(self.db, Caller.load(caller), import_id, rows))

    @rpc
    def start_import(self, caller, import_id):
        """Every row is here: ``start_import(caller, id)`` queues the import and wakes this replica's timer."""
        result = self.db.write(lambda: imports.start_import(self.db, Caller.load(caller), import_id))
        self.wake_imports()
        return result

    @rpc
    def fail_upload(self, caller, import_id, reason):
        """The gateway gave up handing the file over: ``fail_upload(caller, id, "...")`` marks the import failed."""
        return self.db.write(lambda: imports.fail_upload(self.db, Caller.load(caller), import_id, reason))

    @rpc
    def get_import(self, caller, import_id):
        """An import with its progress, counts and first 100 errors."""
        return imports.get_import(self.db.reader, Caller.load(caller), import_id)

    @rpc
    def list_imports(self, caller, query=None):
        """``list_imports(caller, {"status": "done"})`` → ``{items, next_cursor}``, newest first."""
        caller = Caller.load(caller)
        filters = load_or_raise(import_query, query or {}, BadRequest)
        return repo.list_imports(self.db.reader, caller, filters, lambda imp: imports.dump(self.db.reader, imp))

    @rpc
    def list_import_errors(self, caller, import_id, query=None):
        """Errors after a row: ``list_import_errors(caller, id, {"after": 0, "limit": 1000})`` →
        ``{"items": [{row, field, column, message}], "next_after": 1234 | None}``."""
        page = load_or_raise(import_errors_query, query or {}, BadRequest)
        return imports.import_errors(self.db.reader, Caller.load(caller), import_id, page["after"], page["limit"])

    @wakeable_timer("import_poll_s")
    def process_imports(self):
        """Process started imports in batches (one replica per import at a time); True while work remains."""
        return imports.work(self.db, self.replica, self.settings.import_lease_s, self.region)
    @rpc
    def record_call_event(self, caller, data, directory=None):
        """One event of the telephone exchange on its call (an interaction on the client's timeline), once per
        call and event. ``record_call_event(caller, {"call_id": "1700000000.42", "event": "ringing",
        "direction": "in", "from": "+79161234567", "to": "101", "at": "2026-11-30T10:00:00Z"},
        {"branch_id": ..., "users": {...}, "managers": [...]})`` → the call, with ``route_to`` for an incoming one."""
        return self.db.write(lambda: calls.record_event(self.db, Caller.load(caller), data, directory, self.region))

    @rpc
    def get_call(self, caller, call_id):
        """A call whose client the caller may see. ``get_call(caller, "6f1c...")`` → the call."""
        return calls.get_call(self.db.reader, Caller.load(caller), call_id)

    @event_handler("gateway", "call_recorded")
    def handle_call_recorded(self, payload):
        with self.db.transaction():
            return calls.add_recording(self.db, payload)

    @event_handler("deals", "deal_created")
    def handle_deal_created(self, payload):
        self._deal_on_timeline("deal_created", payload)

    @event_handler("deals", "deal_updated")
    def handle_deal_updated(self, payload):
        self._deal_on_timeline("deal_updated", payload)

    @event_handler("deals", "deal_stage_changed")
    def handle_deal_stage_changed(self, payload):
        self._deal_on_timeline("deal_stage_changed", payload)

    @event_handler("deals", "deal_won")
    def handle_deal_won(self, payload):
        self._deal_on_timeline("deal_won", payload)

    @event_handler("deals", "deal_lost")
    def handle_deal_lost(self, payload):
        self._deal_on_timeline("deal_lost", payload)

    @event_handler("deals", "deal_reopened")
    def handle_deal_reopened(self, payload):
        self._deal_on_timeline("deal_reopened", payload)

    @event_handler("deals", "deal_stuck")
    def handle_deal_stuck(self, payload):
        self._deal_on_timeline("deal_stuck", payload)

    @event_handler("tasks", "task_created")
    def handle_task_created(self, payload):
        self._task_on_timeline("task_created", payload)

    @event_handler("tasks", "task_completed")
    def handle_task_completed(self, payload):
        self._task_on_timeline("task_completed", payload)

    @event_handler("tasks", "task_cancelled")
    def handle_task_cancelled(self, payload):
        self._task_on_timeline("task_cancelled", payload)

    @event_handler("tasks", "task_overdue")
    def handle_task_overdue(self, payload):
        self._task_on_timeline("task_overdue", payload)

    @event_handler("tasks", "complaint_created")
    def handle_complaint_created(self, payload):
        self._task_on_timeline("complaint_created", payload)

    @event_handler("tasks", "complaint_resolved")
    def handle_complaint_resolved(self, payload):
        self._task_on_timeline("complaint_resolved", payload)

    def _task_on_timeline(self, event_type, payload):
        with self.db.transaction():
            return commands.add_task_event(self.db, event_type, payload)

    def _deal_on_timeline(self, event_type, payload):
        answer = None
        if event_type in repo.DEAL_OPENING_EVENTS:
            client = self.db.reader.get(Client, payload["deal"]["client_id"])
            if client is not None and client.archived:
                # events come late and out of order: ask whether the deal is open now
                still_open = "deals" in self.settings.services and self.deals_rpc.deal_is_open(payload["deal"]["id"])
                answer = commands.DealOpenAnswer(client.archived_at, bool(still_open))
        with self.db.transaction():
            segments.record_deal_state(self.db, payload)  # has_open_deal: kept even for an event seen before
            return commands.add_deal_event(self.db, event_type, payload, answer)

    # ---- segments and campaigns

    @rpc
    def create_segment(self, caller, data):
        """``create_segment(caller, {"name": "VIP", "filter": {"tag": "vip", "has_open_deal": false}})`` → the
        segment with its ``count`` now."""
        return self.db.write(lambda: segments.create_segment(self.db, Caller.load(caller), data))

    @rpc
    def update_segment(self, caller, segment_id, changes, expected_version=None):
        """``update_segment(caller, id, {"filter": {...}}, expected_version=2)``: rename, or replace the filter."""
        return self.db.write(lambda: segments.update_segment(self.db, Caller.load(caller), segment_id, changes,
                                                             expected_version))

    @rpc
    def delete_segment(self, caller, segment_id):
        """``delete_segment(caller, id)`` → the segment as it was; it leaves every list."""
        return self.db.write(lambda: segments.delete_segment(self.db, Caller.load(caller), segment_id))

    @rpc
    def get_segment(self, caller, segment_id):
        """``get_segment(caller, id)`` → the segment with the ``count`` of its members the caller sees, now."""
        return segments.get_segment(self.db.reader, Caller.load(caller), segment_id)

    @rpc
    def list_segments(self, caller, query=None):
        """``list_segments(caller, {"limit": "20"})`` → ``{items, next_cursor}``, newest first, each with its count."""
        return segments.list_segments(self.db.reader, Caller.load(caller), query)

    @rpc
    def list_segment_clients(self, caller, segment_id, query=None):
        """``list_segment_clients(caller, id, {"limit": "50"})`` → a page of members, as ``list_clients`` answers."""
        return segments.segment_clients(self.db.reader, Caller.load(caller), segment_id, query)

    @rpc
    def create_campaign(self, caller, data):
        """``create_campaign(caller, {"name": ..., "segment_id": ..., "channel": "email", "starts_on": "2026-12-01",
        "ends_on": "2026-12-31"})`` → the campaign with its ``audience``; emits ``campaign_created``."""
        return self.db.write(lambda: segments.create_campaign(self.db, Caller.load(caller), data))

    @rpc
    def update_campaign(self, caller, campaign_id, changes, expected_version=None):
        """``update_campaign(caller, id, {"ends_on": "2027-01-15"})`` → the campaign; emits ``campaign_updated``."""
        return self.db.write(lambda: segments.update_campaign(self.db, Caller.load(caller), campaign_id, changes,
                                                              expected_version))

    @rpc
    def get_campaign(self, caller, campaign_id):
        """``get_campaign(caller, id)`` → a campaign of the caller's branch (any, for an admin)."""
        return segments.get_campaign(self.db.reader, Caller.load(caller), campaign_id)

    @rpc
    def list_campaigns(self, caller, query=None):
        """``list_campaigns(caller, {"segment_id": ...})`` → ``{items, next_cursor}``, newest first."""
        return segments.list_campaigns(self.db.reader, Caller.load(caller), query)

    @rpc
    def export(self, kind, cursor=None, limit=500):
        """Paged export for rebuilding read models: ``export("clients")`` → ``{items, next_cursor, total}``, then
        ``export("clients", next_cursor)``; kinds: clients, interactions, touchpoints, campaigns (``crm_common.exports``)."""
        return exports.export(self.db.reader, kind, cursor, limit)

    @rpc
    def health(self):
        """``health()`` → ``{"service": "clients", "database": "ok"}``; raises if the database is down."""
        self.db.ping()
        return {"service": self.name, "database": "ok"}
