"""Segments and campaigns (served by the clients service): saved filters over the client base, and the
marketing planned for each. Everyone in a branch reads its segments and campaigns; heads and admins write."""

from __future__ import annotations

from crm_common.contracts.clients import ClientSchema
from crm_common.contracts.segments import (
    CampaignCreateSchema,
    CampaignQuerySchema,
    CampaignSchema,
    CampaignUpdateSchema,
    SegmentClientsQuerySchema,
    SegmentCreateSchema,
    SegmentQuerySchema,
    SegmentSchema,
    SegmentUpdateSchema,
)
from crm_common.schemas import page_schema
from gateway.http import api
from gateway.routes.common import check_named_branch, etag, if_match, query_args

WRITERS = ("admin", "head")
SegmentPage = page_schema(SegmentSchema, "SegmentPage")
SegmentClientPage = page_schema(ClientSchema, "SegmentClientPage")
CampaignPage = page_schema(CampaignSchema, "CampaignPage")


class SegmentRoutes:
    @api("POST", "/segments", etag=True, status=201, roles=WRITERS, body=SegmentCreateSchema, response=SegmentSchema,
         errors=(403, 422), summary="Save a segment", tag="segments")
    def create_segment(self, request, caller):
        """``{"name": "VIP без сделок", "filter": {"tag": "vip", "has_open_deal": false}}`` → 201 with ``count``.

        Filter keys: ``kind``, ``tag``, ``source``, ``owner_id``, ``created_from``, ``created_to`` (dates or
        date-times; the end excluded), ``has_open_deal``, ``no_interaction_since``, ``custom_fields`` (each
        equal). Any other key is 422 naming it. The segment is the caller's branch's (an admin names ``branch_id``).
        """
        body = request.json_body
        check_named_branch(self.db.reader, body)
        segment = self.clients_rpc.create_segment(caller.dump(), body)
        return 201, segment, etag(segment)

    @api("GET", "/segments", query=SegmentQuerySchema, response=SegmentPage, errors=(400,),
         summary="List segments", tag="segments")
    def list_segments(self, request, caller):
        """The branch's segments, newest first, each with the ``count`` of its members you see now."""
        return self.clients_rpc.list_segments(caller.dump(), query_args(request))

    @api("GET", "/segments/<segment_id>", etag=True, response=SegmentSchema, errors=(404,),
         summary="One segment", tag="segments")
    def get_segment(self, request, caller, segment_id):
        """A segment with a fresh ``count``: the members you can see (a manager: their own clients)."""
        segment = self.clients_rpc.get_segment(caller.dump(), segment_id)
        return 200, segment, etag(segment)

    @api("PATCH", "/segments/<segment_id>", etag=True, roles=WRITERS, body=SegmentUpdateSchema, response=SegmentSchema,
         if_match=True, errors=(403, 404, 409, 422), summary="Change a segment", tag="segments")
    def update_segment(self, request, caller, segment_id):
        """Rename it or replace its whole ``filter``; ``If-Match: <version>`` guards against a concurrent change."""
        segment = self.clients_rpc.update_segment(caller.dump(), segment_id, request.json_body, if_match(request))
        return 200, segment, etag(segment)

    @api("DELETE", "/segments/<segment_id>", roles=WRITERS, response=SegmentSchema, errors=(403, 404),
         summary="Delete a segment", tag="segments")
    def delete_segment(self, request, caller, segment_id):
        """→ 200 the segment as it was; it leaves the lists. Its campaigns stay, with their audience and report."""
        return self.clients_rpc.delete_segment(caller.dump(), segment_id)

    @api("GET", "/segments/<segment_id>/clients", query=SegmentClientsQuerySchema, response=SegmentClientPage,
         errors=(400, 404), summary="A segment's clients", tag="segments")
    def list_segment_clients(self, request, caller, segment_id):
        """A page of the segment's members you can see, as ``GET /clients`` pages them (``sort``, ``cursor``)."""
        return self.clients_rpc.list_segment_clients(caller.dump(), segment_id, query_args(request))

    # ---- campaigns

    @api("POST", "/campaigns", etag=True, status=201, roles=WRITERS, body=CampaignCreateSchema, response=CampaignSchema,
         errors=(403, 422), summary="Plan a campaign", tag="segments")
    def create_campaign(self, request, caller):
        """``{"name": "Декабрьская рассылка", "segment_id": ..., "channel": "email", "starts_on": "2026-12-01",
        "ends_on": "2026-12-31", "budget": {"amount": "50000.00", "currency": "RUB"}, "message": "..."}`` → 201.

        ``audience`` is the segment's size in its branch now. Touchpoints with ``"utm": {"campaign": <id>}``
        (or ``utm_campaign``) count for it in ``GET /reports/campaigns``."""
        campaign = self.clients_rpc.create_campaign(caller.dump(), request.json_body)
        return 201, campaign, etag(campaign)

    @api("GET", "/campaigns", query=CampaignQuerySchema, response=CampaignPage, errors=(400,),
         summary="List campaigns", tag="segments")
    def list_campaigns(self, request, caller):
        """The branch's campaigns, newest first; ``segment_id`` narrows."""
        return self.clients_rpc.list_campaigns(caller.dump(), query_args(request))

    @api("GET", "/campaigns/<campaign_id>", etag=True, response=CampaignSchema, errors=(404,),
         summary="One campaign", tag="segments")
    def get_campaign(self, request, caller, campaign_id):
        """A campaign of your branch."""
        campaign = self.clients_rpc.get_campaign(caller.dump(), campaign_id)
        return 200, campaign, etag(campaign)

    @api("PATCH", "/campaigns/<campaign_id>", etag=True, roles=WRITERS, body=CampaignUpdateSchema,
         response=CampaignSchema, if_match=True, errors=(403, 404, 409, 422), summary="Change a campaign",
         tag="segments")
    def update_campaign(self, request, caller, campaign_id):
        """Name, channel, dates, budget (``null`` removes it), message; its segment and audience stay."""
        campaign = self.clients_rpc.update_campaign(caller.dump(), campaign_id, request.json_body, if_match(request))
        return 200, campaign, etag(campaign)
