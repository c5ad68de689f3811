"""Integrations: API keys for machines, telephony events and calls, call recordings.

The gateway owns API keys and recordings; the clients service keeps calls as interactions on the client's
timeline. Both load their input with these schemas and the gateway documents its routes with them.
"""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates

from crm_common.schemas import (
    AwareDateTime,
    Id,
    PageQuerySchema,
    QueryBoolean,
    StrictInteger,
    StrictSchema,
    Text,
)

# what an API key may be allowed to do; a route names the scopes it accepts (gateway/http.py, ``scopes=``)
SCOPES = ("touchpoints:write", "telephony:write", "clients:read", "deals:read", "webhooks:manage")
KEY_PREFIX = "crm_"

CALL_EVENTS = ("ringing", "answered", "missed", "ended")
CALL_DIRECTIONS = ("in", "out")
CALL_STATUSES = ("ringing", "answered", "missed", "ended")
# the exchange's own id of a call: printable ASCII, as exchanges write them (Asterisk "1700000000.42", UUIDs...)
CALL_ID_PATTERN = r"^[\x21-\x7e]{1,100}$"
NUMBER_RULE = ("a phone number (E.164, or national in CRM_DEFAULT_REGION) or a user's extension; the client is "
               "found by the incoming call's `from` (the outgoing call's `to`)")
CALL_BRANCH_RULE = ("an existing branch (422); only an administrator or a key of no branch names one (403 otherwise); "
                    "needed when the branch cannot be told from the key, the caller or a user's number (422)")
CALL_USER_RULE = "an active user of the call's branch (422)"
UNKNOWN_CALL_RULE = "an event other than ringing must name a call_id whose ringing was sent before (422)"


class ApiKeyCreateSchema(StrictSchema):
    name = Text(200, required=True)
    branch_id = Id(allow_none=True, load_default=None, metadata={
        "x-server-rule": "an existing branch (422); no branch: the key acts in every branch"})
    scopes = fields.List(
        fields.String(validate=validate.OneOf(SCOPES)), required=True,
        validate=validate.Length(min=1, max=len(SCOPES)),
        metadata={"uniqueItems": True, "description": "what the key may do: " + ", ".join(SCOPES)},
    )

    @validates("scopes")
    def _no_repeats(self, value, **kwargs):
        if len(set(value)) != len(value):
            raise ValidationError("A scope is named twice.")


class ApiKeySchema(Schema):
    id = fields.String()
    name = fields.String()
    prefix = fields.String(metadata={"description": "the key's first characters, to tell keys apart"})
    branch_id = fields.String(allow_none=True)
    scopes = fields.List(fields.String())
    created_by = fields.String(allow_none=True)
    created_at = AwareDateTime()
    last_used_at = AwareDateTime(allow_none=True, metadata={"description": "within a minute"})
    revoked_at = AwareDateTime(allow_none=True)


class ApiKeyCreatedSchema(ApiKeySchema):
    key = fields.String(metadata={"description": "the key itself: shown once, only its hash is kept"})


class ApiKeyQuerySchema(PageQuerySchema):
    revoked = QueryBoolean()


class TelephonyEventSchema(StrictSchema):
    call_id = fields.String(required=True, validate=validate.Regexp(CALL_ID_PATTERN, error="1-100 visible ASCII characters."),
                            metadata={"description": "the exchange's id of the call", "maxLength": 100,
                                      "x-server-rule": UNKNOWN_CALL_RULE})
    event = fields.String(required=True, validate=validate.OneOf(CALL_EVENTS))
    direction = fields.String(required=True, validate=validate.OneOf(CALL_DIRECTIONS))
    from_ = Text(40, required=True, data_key="from", metadata={"x-server-rule": NUMBER_RULE})
    to = Text(40, required=True, metadata={"x-server-rule": NUMBER_RULE})
    at = AwareDateTime(required=True, metadata={"description": "when it happened, at the exchange"})
    duration_s = StrictInteger(allow_none=True, load_default=None, validate=validate.Range(min=0, max=7 * 86400),
                               metadata={"description": "with ended: the talk time; else computed from answered"})
    user_id = Id(allow_none=True, load_default=None, metadata={
        "description": "who answered (answered) or who calls (an outgoing call)", "x-server-rule": CALL_USER_RULE})
    branch_id = Id(allow_none=True, load_default=None, metadata={"x-server-rule": CALL_BRANCH_RULE})


class RouteSchema(Schema):
    user_id = fields.String()
    phone = fields.String(allow_none=True, metadata={"description": "the user's phone (E.164)"})
    extension = fields.String(allow_none=True, metadata={"description": "the user's extension on the exchange"})


class RecordingSchema(Schema):
    call_id = fields.String(metadata={"description": "the call's id in the CRM"})
    content_type = fields.String(metadata={"enum": ["audio/mpeg", "audio/wav", "audio/ogg"]})
    size_bytes = fields.Integer()
    sha256 = fields.String()
    duration_s = fields.Float(allow_none=True)
    created_at = AwareDateTime()


class CallSchema(Schema):
    id = fields.String(metadata={"description": "the call's id in the CRM: PUT /calls/{id}/recording"})
    call_id = fields.String(metadata={"description": "the exchange's id"})
    branch_id = fields.String()
    client_id = fields.String()
    client_created = fields.Boolean(metadata={"description": "the number was unknown: a new client was made"})
    direction = fields.String(metadata={"enum": list(CALL_DIRECTIONS)})
    from_ = fields.String(data_key="from")
    to = fields.String()
    status = fields.String(metadata={"enum": list(CALL_STATUSES)})
    started_at = AwareDateTime()
    answered_at = AwareDateTime(allow_none=True)
    ended_at = AwareDateTime(allow_none=True)
    duration_s = fields.Integer(allow_none=True)
    user_id = fields.String(allow_none=True, metadata={"description": "who answered, or who called out"})
    route_to = fields.Nested(RouteSchema, allow_none=True, metadata={
        "description": "an incoming call: whom to put it through to (null: nobody is available; use the queue)"})
    recording = fields.Nested(RecordingSchema, allow_none=True)
