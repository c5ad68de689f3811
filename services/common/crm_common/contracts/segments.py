"""Segments and campaigns (the clients service) and the campaign report (the reports service).

A segment is a saved filter over the client base: its ``count`` and members are computed when asked, with
the caller's visibility, so they are always current. A campaign is a marketing activity planned for a
segment; touchpoints whose ``utm.campaign`` (or ``utm.utm_campaign``) is the campaign's id count for it.
"""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from crm_common.contracts.clients import CLIENT_KINDS, CLIENT_SORTS, KEYS_RULE
from crm_common.contracts.deals import CurrencyCode
from crm_common.schemas import (
    AwareDateTime,
    Id,
    Money,
    PageQuerySchema,
    QueryDateTime,
    StrictBoolean,
    StrictSchema,
    Text,
    UpdateSchema,
    parse_date,
)

MAX_FILTER_CUSTOM_FIELDS = 20
FILTER_KEYS = ("kind", "tag", "source", "owner_id", "created_from", "created_to", "has_open_deal",
               "no_interaction_since", "custom_fields")
FILTER_RULE = ("created_to must not be before created_from (422 naming filter.created_to); "
               "custom_fields keys are 1-64 characters, not blank (422)")
SEGMENT_RULE = "a segment of your branch that you can see (422 naming segment_id otherwise)"
BRANCH_RULE = ("required for an admin, who has no branch of their own; an existing branch (422 otherwise); only an admin "
               "names another branch than their own (403)")


class Day(fields.String):
    """A calendar date, ``YYYY-MM-DD`` exactly (OpenAPI's format ``date``)."""

    default_error_messages = {"date": "Not a valid date: use YYYY-MM-DD, e.g. 2026-12-01."}

    def __init__(self, **kwargs):
        metadata = {"format": "date", "example": "2026-12-01", **(kwargs.pop("metadata", None) or {})}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        parsed = parse_date(value) if isinstance(value, str) else None
        if parsed is None:
            raise self.make_error("date")
        return parsed

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else (value if isinstance(value, str) else value.isoformat())


class FilterValue(fields.Field):
    """A custom field's value a segment matches exactly: a string, a number or a boolean."""

    default_error_messages = {"invalid": "Must be a string (up to 1000 characters), a number or a boolean."}

    def __init__(self, **kwargs):
        any_of = [{"type": "string", "maxLength": 1000, "pattern": "^[^\\u0000]*$"}, {"type": "number"},
                  {"type": "boolean"}]
        super().__init__(metadata={"anyOf": any_of}, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, str) and len(value) <= 1000 and "\x00" not in value:
            return value
        raise self.make_error("invalid")


class SegmentFilterSchema(StrictSchema):
    """Every key is optional and they all apply together (AND); an empty filter is the whole client base the
    caller sees. Archived and merged clients are never members."""

    kind = fields.String(validate=validate.OneOf(CLIENT_KINDS))
    tag = Text(50, metadata={"description": "clients carrying this tag (case-insensitive)"})
    source = Text(64)
    owner_id = Id()
    created_from = QueryDateTime(metadata={"description": "created at or after (a date is midnight UTC)"})
    created_to = QueryDateTime(metadata={"description": "created before (a date is midnight UTC)"})
    has_open_deal = StrictBoolean(metadata={"description": "true: with at least one open deal; false: with none"})
    no_interaction_since = QueryDateTime(metadata={
        "description": "no call, meeting, note, email or message at or after this moment (or never)"})
    custom_fields = fields.Dict(
        keys=Text(64), values=FilterValue(),
        validate=validate.Length(max=MAX_FILTER_CUSTOM_FIELDS, error="At most {max} custom fields."),
        metadata={"description": "each field equal to the value given", "x-server-rule": KEYS_RULE},
    )

    @validates_schema(skip_on_field_errors=True)
    def _ordered(self, data, **kwargs):
        start, end = data.get("created_from"), data.get("created_to")
        if start is not None and end is not None and end < start:
            raise ValidationError("Must not be before created_from.", "created_to")


def _filter(description: str, **kwargs):
    return fields.Nested(SegmentFilterSchema, metadata={"description": description, "x-server-rule": FILTER_RULE},
                         **kwargs)


class SegmentCreateSchema(StrictSchema):
    name = Text(200, required=True)
    filter = _filter("the clients it keeps; {} keeps every client", required=True)
    branch_id = Id(allow_none=True, load_default=None, metadata={
        "description": "an admin's choice of branch (a head's segment is their branch's)", "x-server-rule": BRANCH_RULE})


class SegmentUpdateSchema(UpdateSchema):
    name = Text(200)
    filter = _filter("replaces the whole filter")


class SegmentQuerySchema(PageQuerySchema):
    branch_id = Id(metadata={"description": "an admin narrows to one branch"})


class SegmentClientsQuerySchema(PageQuerySchema):
    sort = fields.String(load_default="-created_at", validate=validate.OneOf(CLIENT_SORTS))


class SegmentSchema(Schema):
    id = fields.String()
    name = fields.String()
    branch_id = fields.String()
    filter = fields.Nested(SegmentFilterSchema, metadata={"description": "as stored: times in UTC"})
    count = fields.Integer(metadata={"description": "the members you can see, counted now"})
    created_by = fields.String(allow_none=True)
    created_at = AwareDateTime()
    updated_at = AwareDateTime()
    version = fields.Integer()


# ---- campaigns


class BudgetSchema(StrictSchema):
    amount = Money(required=True)
    currency = CurrencyCode(required=True)


class CampaignCreateSchema(StrictSchema):
    name = Text(200, required=True)
    segment_id = Id(required=True, metadata={"x-server-rule": SEGMENT_RULE})
    channel = Text(50, required=True, metadata={"description": "e.g. email, sms, call, messenger, ads, event"})
    starts_on = Day(required=True)
    ends_on = Day(required=True, metadata={"x-server-rule": "not before starts_on (422 naming ends_on)"})
    budget = fields.Nested(BudgetSchema, allow_none=True, load_default=None)
    message = Text(5000, blank=True, allow_none=True, load_default=None)

    @validates_schema(skip_on_field_errors=True)
    def _ordered(self, data, **kwargs):
        if data["ends_on"] < data["starts_on"]:
            raise ValidationError("Must not be before starts_on.", "ends_on")


class CampaignUpdateSchema(UpdateSchema):
    name = Text(200)
    channel = Text(50)
    starts_on = Day(metadata={"x-server-rule": "not after ends_on, given or kept (422)"})
    ends_on = Day(metadata={"x-server-rule": "not before starts_on, given or kept (422)"})
    budget = fields.Nested(BudgetSchema, allow_none=True, metadata={"description": "null removes the budget"})
    message = Text(5000, blank=True, allow_none=True)


class CampaignQuerySchema(PageQuerySchema):
    segment_id = Id()
    branch_id = Id(metadata={"description": "an admin narrows to one branch"})


class BudgetOutSchema(Schema):
    amount = fields.String()
    currency = fields.String()


class CampaignSchema(Schema):
    id = fields.String()
    name = fields.String()
    branch_id = fields.String()
    segment_id = fields.String()
    channel = fields.String()
    starts_on = fields.String(metadata={"format": "date"})
    ends_on = fields.String(metadata={"format": "date"})
    budget = fields.Nested(BudgetOutSchema, allow_none=True)
    message = fields.String(allow_none=True)
    audience = fields.Integer(metadata={
        "description": "the segment's size in its branch when the campaign was created (whoever asks)"})
    created_by = fields.String(allow_none=True)
    created_at = AwareDateTime()
    updated_at = AwareDateTime()
    version = fields.Integer()


# ---- the campaign report (reports service)


class CampaignLineSchema(Schema):
    campaign_id = fields.String()
    name = fields.String(allow_none=True)
    segment_id = fields.String(allow_none=True)
    channel = fields.String(allow_none=True)
    starts_on = fields.String(allow_none=True)
    ends_on = fields.String(allow_none=True)
    audience = fields.Integer(allow_none=True, metadata={"description": "the segment's size when the campaign was created"})
    touchpoints = fields.Integer(metadata={"description": "touchpoints of the period carrying the campaign's id"})
    new_clients = fields.Integer(metadata={"description": "of those, the ones that created a client"})
    deals_won = fields.Integer(metadata={
        "description": "deals won in the period by clients with a touchpoint of the campaign before the win"})
    currency = fields.String(allow_none=True)
    revenue = fields.String()
    budget = fields.Nested(BudgetOutSchema, allow_none=True)
    roi = fields.Float(allow_none=True, metadata={"description": "(revenue - budget) / budget, same currency"})
    cost_per_client = fields.String(allow_none=True, metadata={"description": "budget / new_clients"})
    other_currencies = fields.List(fields.Dict(), metadata={"description": "[{currency, revenue, deals_won}]"})


class CampaignsReportSchema(Schema):
    branch_id = fields.String(allow_none=True, metadata={"description": "the branch narrowed to; null: every branch"})
    from_ = fields.String(data_key="from")
    to = fields.String()
    campaigns = fields.List(fields.Nested(CampaignLineSchema))
