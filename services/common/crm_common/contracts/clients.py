"""The clients service's RPC contract: what goes in and what comes out.

The service validates its inputs with these schemas; the gateway documents its routes with them,
so the HTTP API and the service can never disagree on a field.
"""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from crm_common.schemas import (
    AwareDateTime,
    Id,
    PageQuerySchema,
    QueryBoolean,
    QueryDateTime,
    Scalar,
    StrictInteger,
    StrictSchema,
    Text,
    UpdateSchema,
    limited_list,
)

CLIENT_KINDS = ("person", "company")
INTERACTION_TYPES = ("note", "call", "email", "meeting", "message")
DIRECTIONS = ("in", "out")
CLIENT_SORTS = ("-created_at", "created_at", "name", "-name", "-updated_at")

MAX_PHONES = 10
MAX_EMAILS = 10
MAX_TAGS = 20
MAX_CUSTOM_FIELDS = 50

# rules OpenAPI 3.0 cannot state, said in words in the document (x-server-rule)
PHONE_RULE = "each a real phone number of its region (CRM_DEFAULT_REGION unless it starts with +), or 422"
EMAIL_RULE = "each a valid email address (stored lower-case), or 422"
OWNER_RULE = "an active user of the client's branch; only a head or an admin names someone else (403 for a manager)"
BRANCH_RULE = "an existing branch (422 otherwise); only an admin names another branch than their own (403)"
KEYS_RULE = "keys are 1-64 characters, not blank, trimmed of surrounding whitespace (422 otherwise)"


def _custom_fields():
    return fields.Dict(
        keys=Text(64),
        values=Scalar(allow_none=True),
        validate=validate.Length(max=MAX_CUSTOM_FIELDS, error="At most {max} custom fields."),
        metadata={"x-server-rule": KEYS_RULE},
    )


def _phones(**kwargs):
    return limited_list(Text(40), MAX_PHONES, metadata={"x-server-rule": PHONE_RULE}, **kwargs)


def _emails(**kwargs):
    return limited_list(Text(254, lower=True, metadata={"format": "email"}), MAX_EMAILS,
                        metadata={"x-server-rule": EMAIL_RULE}, **kwargs)


class ClientCreateSchema(StrictSchema):
    kind = fields.String(required=True, validate=validate.OneOf(CLIENT_KINDS))
    name = Text(200, required=True)
    phones = _phones(load_default=list)
    emails = _emails(load_default=list)
    source = Text(64, allow_none=True, load_default=None)
    tags = limited_list(Text(50), MAX_TAGS, load_default=list)
    custom_fields = _custom_fields()
    owner_id = Id(allow_none=True, load_default=None, metadata={"x-server-rule": OWNER_RULE})
    branch_id = Id(allow_none=True, load_default=None, metadata={"x-server-rule": BRANCH_RULE})


class ClientUpdateSchema(UpdateSchema):
    kind = fields.String(validate=validate.OneOf(CLIENT_KINDS))
    name = Text(200)
    phones = _phones()
    emails = _emails()
    source = Text(64, allow_none=True)
    tags = limited_list(Text(50), MAX_TAGS)
    custom_fields = _custom_fields()
    owner_id = Id(metadata={"x-server-rule": OWNER_RULE})
    branch_id = Id(metadata={"x-server-rule": "an existing branch (422); admin only (403); not while the client has open "
                                              "deals (409); owner_id, if given, must be of that branch"})


class ClientQuerySchema(PageQuerySchema):
    q = Text(100)
    tag = Text(50)
    source = Text(64)
    owner_id = Id()
    branch_id = Id()
    created_from = QueryDateTime()
    created_to = QueryDateTime()
    archived = QueryBoolean(load_default=False)
    sort = fields.String(load_default="-created_at", validate=validate.OneOf(CLIENT_SORTS))


class ClientSchema(Schema):
    id = fields.String()
    kind = fields.String()
    name = fields.String()
    phones = fields.List(fields.String())
    emails = fields.List(fields.String())
    source = fields.String(allow_none=True)
    tags = fields.List(fields.String())
    custom_fields = fields.Dict()
    owner_id = fields.String(allow_none=True)
    branch_id = fields.String()
    archived = fields.Boolean()
    archived_at = AwareDateTime(allow_none=True)
    created_at = AwareDateTime()
    updated_at = AwareDateTime()
    version = fields.Integer()


class InteractionCreateSchema(StrictSchema):
    type = fields.String(required=True, validate=validate.OneOf(INTERACTION_TYPES))
    direction = fields.String(allow_none=True, load_default=None, validate=validate.OneOf(DIRECTIONS))
    text = Text(10000, blank=True, allow_none=True, load_default=None)
    occurred_at = AwareDateTime(allow_none=True, load_default=None)
    duration_s = StrictInteger(allow_none=True, load_default=None, validate=validate.Range(min=0, max=7 * 86400))
    script_id = Id(allow_none=True, load_default=None, metadata={"x-server-rule": "a sales script of your branch (422)"})


class InteractionSchema(Schema):
    id = fields.String()
    client_id = fields.String()
    branch_id = fields.String()
    type = fields.String()
    direction = fields.String(allow_none=True)
    text = fields.String(allow_none=True)
    occurred_at = AwareDateTime()
    duration_s = fields.Integer(allow_none=True)
    script_id = fields.String(allow_none=True)
    author_id = fields.String(allow_none=True)
    created_at = AwareDateTime()


class TouchpointCreateSchema(StrictSchema):
    channel = Text(50, required=True)
    name = Text(200, allow_none=True, load_default=None)
    phone = Text(40, allow_none=True, load_default=None, metadata={
        "x-server-rule": "a real phone number (422); a phone or an email is required"})
    email = Text(254, lower=True, allow_none=True, load_default=None, metadata={
        "format": "email", "x-server-rule": "a valid email address (422); a phone or an email is required"})
    message = Text(5000, blank=True, allow_none=True, load_default=None)
    utm = fields.Dict(keys=Text(64), values=Text(500, blank=True), validate=validate.Length(max=20), load_default=dict,
                      metadata={"x-server-rule": KEYS_RULE})
    branch_id = Id(allow_none=True, load_default=None, metadata={"x-server-rule": BRANCH_RULE})

    @validates_schema
    def _needs_a_contact(self, data, **kwargs):
        if not data.get("phone") and not data.get("email"):
            message = "A phone or an email is required."
            raise ValidationError({"phone": [message], "email": [message]})


class TouchpointResultSchema(Schema):
    client_id = fields.String()
    created = fields.Boolean()
    touchpoint_id = fields.String()


class TimelineEntrySchema(Schema):
    id = fields.String()
    client_id = fields.String()
    kind = fields.String(metadata={"description": "interaction | touchpoint | client | deal | task | complaint"})
    type = fields.String(metadata={"description": "the event or interaction type"})
    occurred_at = AwareDateTime()
    ref_id = fields.String(allow_none=True)
    actor_id = fields.String(allow_none=True)
    data = fields.Dict()


class TimelineQuerySchema(PageQuerySchema):
    pass
