"""Client exports as the gateway serves them (API.md, "Protecting the client base"): a CSV file of the clients a
filter matches, made in the background, capped per user and day, marked so that a leaked copy names its export."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates_schema

from crm_common.contracts.clients import CLIENT_SORTS
from crm_common.schemas import (
    AwareDateTime,
    Id,
    PageQuerySchema,
    QueryDateTime,
    StrictBoolean,
    StrictSchema,
    Text,
    limited_list,
)

STATUSES = ("running", "done", "failed", "expired")
# the query parameters of GET /clients that page rather than filter: an export takes every match
PAGING_KEYS = ("cursor", "limit")
MAX_TRACE_VALUES = 1000
MAX_TRACE_TEXT = 900_000  # the body limit is 1 MiB: a pasted file up to about that

CAP_RULE = ("the clients the filter matches now are counted first and reserved against the caller's daily cap "
            "(CRM_EXPORT_DAILY_ROWS per UTC day): past it 429 export_cap with Retry-After until midnight UTC")


class ExportFilterSchema(StrictSchema):
    """The filters of ``GET /clients`` (as JSON values): the export holds every client they match that the caller may
    see (a head: their branch)."""

    q = Text(100, metadata={"description": "name, phone (any format) or email, as ?q= of GET /clients"})
    tag = Text(50)
    source = Text(64)
    owner_id = Id()
    branch_id = Id(metadata={"description": "an administrator's choice of branch; a head sees only their own"})
    created_from = QueryDateTime()
    created_to = QueryDateTime()
    archived = StrictBoolean(load_default=False, metadata={"description": "true: the archive, as ?archived=true"})
    sort = fields.String(load_default="-created_at", validate=validate.OneOf(CLIENT_SORTS))

    @pre_load
    def _no_paging(self, data, **kwargs):
        if isinstance(data, dict):
            paging = [key for key in PAGING_KEYS if key in data]
            if paging:
                raise ValidationError({key: ["An export takes every matching client: no paging."] for key in paging})
        return data


class ExportCreateSchema(StrictSchema):
    filter = fields.Nested(ExportFilterSchema, load_default=dict, metadata={"x-server-rule": CAP_RULE})


class ExportAcceptedSchema(Schema):
    id = fields.String()
    status = fields.String()


class ExportSchema(Schema):
    id = fields.String()
    status = fields.String(metadata={"description": "running | done | failed | expired (the file is deleted)"})
    user_id = fields.String()
    filter = fields.Dict(metadata={"description": "the filter as given, with its defaults"})
    rows = fields.Integer(allow_none=True, metadata={
        "description": "the clients in the file (its marker rows not counted); null while running"})
    created_at = AwareDateTime()
    finished_at = AwareDateTime(allow_none=True)
    expires_at = AwareDateTime(allow_none=True, metadata={"description": "when the file is deleted"})
    error = fields.String(allow_none=True)


class ExportQuerySchema(PageQuerySchema):
    status = fields.String(validate=validate.OneOf(STATUSES))
    user_id = Id(metadata={"description": "an administrator's filter (others see only their own exports)"})


class ExportTraceSchema(StrictSchema):
    """What was found in a leaked file: its phones, emails or client ids, or the file's text as it is."""

    phones = limited_list(Text(40), MAX_TRACE_VALUES)
    emails = limited_list(Text(254), MAX_TRACE_VALUES)
    client_ids = limited_list(Text(64), MAX_TRACE_VALUES)
    text = Text(MAX_TRACE_TEXT, blank=True, metadata={
        "description": "the leaked file (or part of it) as text: every phone, email and id in it is looked up"})

    @validates_schema
    def _something_to_trace(self, data, **kwargs):
        if not any(data.get(name) for name in ("phones", "emails", "client_ids", "text")):
            raise ValidationError("Give phones, emails, client_ids or text.", "body")


class TraceMatchSchema(Schema):
    kind = fields.String(metadata={"description": "phone | email | client_id"})
    value = fields.String()


class TracedExportSchema(Schema):
    export_id = fields.String()
    user_id = fields.String()
    created_at = AwareDateTime()
    markers = fields.Integer(metadata={"description": "how many marker rows the export's file had"})
    matched = fields.List(fields.Nested(TraceMatchSchema))


class ExportTraceResultSchema(Schema):
    items = fields.List(fields.Nested(TracedExportSchema), metadata={
        "description": "the exports whose marker rows the input holds, the most matches first"})
