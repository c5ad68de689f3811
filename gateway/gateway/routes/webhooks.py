"""Outgoing webhooks: integrators' URLs that get the CRM's events, signed (served by the webhooks service).

docs/integrations.md explains the deliveries (body, headers, signature, retries) with a worked example.
"""

from __future__ import annotations

from crm_common.contracts.webhooks import (
    DeliveryQuerySchema,
    DeliverySchema,
    WebhookCreateSchema,
    WebhookQuerySchema,
    WebhookSchema,
    WebhookUpdateSchema,
)
from crm_common.schemas import page_schema
from gateway.http import api
from gateway.routes.common import check_named_branch, query_args

WebhookPage = page_schema(WebhookSchema, "WebhookPage")
DeliveryPage = page_schema(DeliverySchema, "WebhookDeliveryPage")
# who may manage webhooks: administrators, and API keys with the scope webhooks:manage (a key of a branch only
# that branch's webhooks: the webhooks service applies the caller's branch)
MANAGE = {"roles": ("admin",), "scopes": ("webhooks:manage",)}


class WebhookRoutes:
    @api("POST", "/webhooks", status=201, body=WebhookCreateSchema, response=WebhookSchema, errors=(422,),
         summary="Add a webhook", tag="webhooks", **MANAGE)
    def create_webhook(self, request, caller):
        """``{"url": "https://erp.example.com/crm-hooks", "events": ["client_created", "deal_won"], "secret":
        "whsec_4f9a0c2b7d1e8f63", "branch_id": ...}`` → 201 webhook. Every such event (of the branch, or of every
        branch without ``branch_id``) is POSTed to the URL, signed with the secret (HMAC-SHA256, header
        ``X-CRM-Signature``), and retried with growing pauses for 24 hours if it fails. The secret (16-200 visible
        ASCII characters) is never shown again. A URL that is not http(s), or whose host resolves to a private,
        loopback or link-local address, is 422, as are unknown events."""
        body = request.json_body
        check_named_branch(self.db.reader, body)
        return 201, self.webhooks_rpc.create_webhook(caller.dump(), body)

    @api("GET", "/webhooks", query=WebhookQuerySchema, response=WebhookPage, errors=(400,), summary="List webhooks",
         tag="webhooks", **MANAGE)
    def list_webhooks(self, request, caller):
        """Newest first; ``?status=active|paused|failing&event=deal_won&branch_id=``."""
        return self.webhooks_rpc.list_webhooks(caller.dump(), query_args(request))

    @api("GET", "/webhooks/<webhook_id>", response=WebhookSchema, errors=(404,), summary="One webhook",
         tag="webhooks", **MANAGE)
    def get_webhook(self, request, caller, webhook_id):
        """The webhook with its ``status``: active, paused, or failing (since ``failing_since``, with the
        ``failure_reason``) after a delivery failed for the whole retry period."""
        return self.webhooks_rpc.get_webhook(caller.dump(), webhook_id)

    @api("PATCH", "/webhooks/<webhook_id>", body=WebhookUpdateSchema, response=WebhookSchema, errors=(404, 422),
         summary="Change, pause or re-activate a webhook", tag="webhooks", **MANAGE)
    def update_webhook(self, request, caller, webhook_id):
        """``{"url"?, "events"?, "secret"?, "active"?}``. ``"active": false`` pauses it (events meanwhile are not
        delivered); ``"active": true`` resumes it, and re-activates a failing webhook: the deliveries it held are
        sent in order, each retried for another 24 hours if need be."""
        return self.webhooks_rpc.update_webhook(caller.dump(), webhook_id, request.json_body)

    @api("DELETE", "/webhooks/<webhook_id>", response=WebhookSchema, errors=(404,), summary="Delete a webhook",
         tag="webhooks", **MANAGE)
    def delete_webhook(self, request, caller, webhook_id):
        """→ 200 the webhook as it was; it and its deliveries are gone, nothing more is sent."""
        return self.webhooks_rpc.delete_webhook(caller.dump(), webhook_id)

    @api("GET", "/webhooks/<webhook_id>/deliveries", query=DeliveryQuerySchema, response=DeliveryPage,
         errors=(400, 404), summary="A webhook's deliveries and their attempts", tag="webhooks", **MANAGE)
    def list_deliveries(self, request, caller, webhook_id):
        """Newest first, ``?status=pending|delivered|failed&event=``: each delivery with ``attempts`` (when, how
        long, the receiver's status code, the error) and ``next_attempt_at`` while it is pending."""
        return self.webhooks_rpc.list_deliveries(caller.dump(), webhook_id, query_args(request))
