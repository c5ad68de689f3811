"""Likely duplicates of a client and merging two clients (served by the clients service)."""

from __future__ import annotations

from crm_common.contracts.clients import ClientMergeSchema, ClientSchema, DuplicateListSchema, MergedRedirectSchema
from crm_common.errors import Conflict
from gateway.http import api
from gateway.routes.common import etag


def redirect_if_merged(exc: Conflict, request, client_id: str):
    """A client merged into another answers ``301`` with ``Location`` on the same path of the client it became
    and ``{"merged_into": id}``; any other conflict is raised again."""
    merged_into = exc.details.get("merged_into")
    if not merged_into:
        raise exc
    location = request.path.replace(client_id, merged_into, 1)
    return 301, {"merged_into": merged_into}, {"Location": location}


class MergeRoutes:
    @api("GET", "/clients/<client_id>/duplicates", response=DuplicateListSchema, answers={301: MergedRedirectSchema},
         errors=(404,),
         summary="Likely duplicates of a client", tag="clients")
    def find_duplicates(self, request, caller, client_id):
        """Clients of the same branch that are likely the same, strongest first, at most 100:
        ``{"items": [{"client": {...}, "reasons": [{"reason": "same_phone", "value": "+79161234567"}]}]}``.
        Reasons: ``same_phone``, ``same_email`` (listed by both, claimed or not), ``same_name`` (the same name
        and kind; for persons whose ``company`` custom fields both say something, only the same company)."""
        try:
            return self.clients_rpc.find_duplicates(caller.dump(), client_id)
        except Conflict as exc:
            return redirect_if_merged(exc, request, client_id)

    @api("POST", "/clients/<client_id>/merge", etag=True, roles=("admin", "head"), body=ClientMergeSchema, response=ClientSchema,
         errors=(403, 404, 422), summary="Merge another client into this one", tag="clients")
    def merge_clients(self, request, caller, client_id):
        """``{"other_id": "..."}`` → 200 with this client, which now has every contact, tag, custom field
        (its own values first), interaction, touchpoint and timeline entry of both; deals and tasks follow
        (``client_merged``). The other becomes a redirect: ``GET /clients/{other_id}`` answers 301 to this one,
        writes to it 409 with ``merged_into``. Two branches, the client itself or a merged client: 422."""
        client = self.clients_rpc.merge_clients(caller.dump(), client_id, request.json_body)
        return 200, client, etag(client)
