"""Clients: the client base, interactions, the timeline and touchpoints (served by the clients service)."""

from __future__ import annotations

from crm_common.contracts.clients import (
    ClientCreateSchema,
    ClientQuerySchema,
    ClientSchema,
    ClientUpdateSchema,
    InteractionCreateSchema,
    InteractionSchema,
    MergedRedirectSchema,
    TimelineEntrySchema,
    TimelineQuerySchema,
    TouchpointCreateSchema,
    TouchpointResultSchema,
)
from crm_common.errors import Conflict, NotFound, ValidationError
from crm_common.schemas import page_schema
from gateway import identity
from gateway.apikeys import is_key
from gateway.http import api
from gateway.routes.common import check_named_branch, etag, if_match, owner_directory, query_args
from gateway.routes.merges import redirect_if_merged

ClientPage = page_schema(ClientSchema, "ClientPage")
TimelinePage = page_schema(TimelineEntrySchema, "TimelinePage")


class ClientRoutes:
    @api("POST", "/clients", etag=True, status=201, body=ClientCreateSchema, response=ClientSchema,
         errors=(403, 409, 422), summary="Create a client", tag="clients")
    def create_client(self, request, caller):
        """``{"kind": "person", "name": "Иван Петров", "phones": ["8 916 123-45-67"]}`` → 201 client.

        Phones become E.164, emails lower case; the same phone or email in the branch is
        409 ``duplicate_client`` with ``existing_id``. A manager owns what they create.
        After a 503, repeat the request with ``Idempotency-Key: <your key, or the 503's request_id>``:
        it answers the client that was created, if it was, and never creates a second one.
        """
        body = request.json_body
        check_named_branch(self.db.reader, body)
        client = self.clients_rpc.create_client(caller.dump(), body, owner_directory(self.db.reader, body))
        return 201, client, etag(client)

    @api("GET", "/clients", scopes=("clients:read",), query=ClientQuerySchema, response=ClientPage, errors=(400,),
         summary="List and search clients", tag="clients")
    def list_clients(self, request, caller):
        """``?q=`` matches name, phone (any format) or email; filters tag, source, owner_id, created_from/to.

        Newest first; ``?archived=true`` lists the archive. Page with ``limit`` and ``cursor``.
        """
        return self.clients_rpc.list_clients(caller.dump(), query_args(request))

    @api("GET", "/clients/<client_id>", scopes=("clients:read",), etag=True, response=ClientSchema,
         answers={301: MergedRedirectSchema}, errors=(404,), summary="One client", tag="clients")
    def get_client(self, request, caller, client_id):
        """A client the caller may see; any other is 404. The ETag is the version for If-Match.
        A client merged into another answers 301 with ``Location`` and ``{"merged_into": id}``."""
        try:
            client = self.clients_rpc.get_client(caller.dump(), client_id)
        except Conflict as exc:
            return redirect_if_merged(exc, request, client_id)
        return 200, client, etag(client)

    @api("PATCH", "/clients/<client_id>", etag=True, body=ClientUpdateSchema, response=ClientSchema, if_match=True,
         errors=(403, 404, 409, 422), summary="Change a client", tag="clients")
    def update_client(self, request, caller, client_id):
        """Send only what changes. With ``If-Match: <version>`` a stale version is 409 ``version_conflict``.

        An admin moves a client with ``branch_id`` (naming an ``owner_id`` of the new branch, or leaving it
        unowned for that branch's head to assign); a client with open deals is not moved: 409 ``conflict``
        with ``open_deal_ids``."""
        body = request.json_body
        check_named_branch(self.db.reader, body)
        client = self.clients_rpc.update_client(
            caller.dump(), client_id, body, if_match(request), owner_directory(self.db.reader, body)
        )
        return 200, client, etag(client)

    @api("DELETE", "/clients/<client_id>", response=ClientSchema, errors=(404, 409),
         summary="Archive a client", tag="clients")
    def archive_client(self, request, caller, client_id):
        """Archives the client (nothing is destroyed); the archived client is returned.

        A client with open deals is not archived: 409 ``conflict`` with ``open_deal_ids`` to close first.
        Reopening one of an archived client's deals restores the client."""
        return self.clients_rpc.archive_client(caller.dump(), client_id)

    @api("POST", "/clients/<client_id>/restore", response=ClientSchema, errors=(404,),
         summary="Restore an archived client", tag="clients")
    def restore_client(self, request, caller, client_id):
        """Brings an archived client back into the active base."""
        return self.clients_rpc.restore_client(caller.dump(), client_id)

    @api("POST", "/clients/<client_id>/interactions", status=201, body=InteractionCreateSchema,
         response=InteractionSchema, errors=(404, 422), summary="Log an interaction", tag="clients")
    def log_interaction(self, request, caller, client_id):
        """``{"type": "call", "direction": "in", "duration_s": 180, "text": "Asked for a quote", "script_id": ...}``
        → 201. ``script_id`` cites the sales script used, so its use and results can be reported."""
        body = request.json_body
        self._check_script(caller, body.get("script_id"))
        return 201, self.clients_rpc.log_interaction(caller.dump(), client_id, body)

    def _check_script(self, caller, script_id) -> None:
        """A cited script must be one the caller may read (the deals service keeps the sales book)."""
        if script_id is None or not isinstance(script_id, str) or "deals" not in self.settings.services:
            return
        try:
            self.deals_rpc.get_script(caller.dump(), script_id)
        except NotFound:
            raise ValidationError("unknown script", fields={"script_id": ["No such script in your branch."]}) from None

    @api("GET", "/clients/<client_id>/timeline", scopes=("clients:read",), query=TimelineQuerySchema,
         response=TimelinePage, answers={301: MergedRedirectSchema}, errors=(400, 404),
         summary="A client's timeline", tag="clients")
    def get_timeline(self, request, caller, client_id):
        """Every interaction, touchpoint, change, deal and task event of the client, newest first
        (of a merged client: 301 to the timeline of the client it became)."""
        try:
            return self.clients_rpc.get_timeline(caller.dump(), client_id, query_args(request))
        except Conflict as exc:
            return redirect_if_merged(exc, request, client_id)

    @api("POST", "/touchpoints", status=201, scopes=("touchpoints:write",), body=TouchpointCreateSchema,
         response=TouchpointResultSchema, errors=(403, 422), summary="Record a touchpoint", tag="clients")
    def record_touchpoint(self, request, caller):
        """A contact captured anywhere (web form, call, messenger, walk-in).

        ``{"channel": "web_form", "name": "Ольга", "phone": "+7 916 555-00-11", "utm": {"utm_source": "yandex"}}``
        finds the client by phone or email or creates one, assigned to the branch's managers by round robin
        → 201 ``{client_id, created, touchpoint_id}``. An admin names ``branch_id``.
        """
        body = request.json_body
        check_named_branch(self.db.reader, body)
        branch_id = body.get("branch_id") if caller.is_admin else caller.branch_id
        # an API key (the website's form) owns nothing: with no manager, the new client waits for the head
        directory = {"managers": identity.active_managers(self.db.reader, branch_id or caller.branch_id),
                     "machine": is_key(caller)}
        return 201, self.clients_rpc.record_touchpoint(caller.dump(), body, directory)
