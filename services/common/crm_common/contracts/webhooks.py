"""The webhooks service's contract: outgoing webhooks, their deliveries and the events one may subscribe to.

``WEBHOOK_EVENTS`` is the list of events delivered to webhooks: one line each. The webhooks service handles
every event listed here (``handle_<event>``), and the API accepts exactly these names in ``events``.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from crm_common.schemas import AwareDateTime, Id, PageQuerySchema, StrictBoolean, StrictSchema, Text, UpdateSchema

WEBHOOK_EVENTS = (
    "client_created",
    "client_updated",
    "client_archived",
    "client_restored",
    "interaction_logged",
    "touchpoint_recorded",
    "deal_created",
    "deal_updated",
    "deal_stage_changed",
    "deal_won",
    "deal_lost",
    "deal_reopened",
    "deal_stuck",
    "task_created",
    "task_updated",
    "task_completed",
    "task_cancelled",
    "task_overdue",
    "complaint_created",
    "complaint_resolved",
)
WEBHOOK_STATUSES = ("active", "paused", "failing")
DELIVERY_STATUSES = ("pending", "delivered", "failed")
MIN_SECRET, MAX_SECRET = 16, 200
MAX_URL = 2000
SECRET_PATTERN = "^[\\x21-\\x7e]+$"  # visible ASCII: the receiver must type the same bytes into its HMAC
URL_PATTERN = "^[Hh][Tt][Tt][Pp][Ss]?://[^\\u0000]+$"
URL_RULE = ("an http or https URL with a host name or address, no user name or password; the host must resolve, and "
            "only to public addresses: private, loopback, link-local and other special addresses are refused unless "
            "the server allows them (CRM_WEBHOOK_ALLOW_PRIVATE) (422)")
BRANCH_RULE = "an existing branch (422); only an administrator may name another branch or none (every branch)"


def _url(**kwargs):
    return Text(MAX_URL, metadata={"format": "uri", "pattern": URL_PATTERN, "x-server-rule": URL_RULE,
                                   "example": "https://erp.example.com/crm-hooks"}, **kwargs)


def _events(**kwargs):
    return fields.List(
        fields.String(validate=validate.OneOf(WEBHOOK_EVENTS, error="Unknown event {input!r}.")),
        validate=validate.Length(min=1, max=len(WEBHOOK_EVENTS)),
        metadata={"description": "the events to deliver (repeated names count once)"},
        **kwargs,
    )


def _secret(**kwargs):
    return fields.String(
        validate=[validate.Length(min=MIN_SECRET, max=MAX_SECRET),
                  validate.Regexp(SECRET_PATTERN, error="Visible ASCII characters only (no spaces).")],
        metadata={"description": "signs every delivery (HMAC-SHA256); never shown again", "pattern": SECRET_PATTERN,
                  "writeOnly": True},
        **kwargs,
    )


class WebhookCreateSchema(StrictSchema):
    url = _url(required=True)
    events = _events(required=True)
    secret = _secret(required=True)
    branch_id = Id(allow_none=True, load_default=None, metadata={
        "description": "only this branch's events; an administrator may leave it out for every branch's",
        "x-server-rule": BRANCH_RULE})


class WebhookUpdateSchema(UpdateSchema):
    url = _url()
    events = _events()
    secret = _secret()
    active = StrictBoolean(metadata={
        "description": "false pauses deliveries (events meanwhile are not delivered); true resumes them, also for a "
                       "failing webhook, whose held deliveries are then sent"})


class WebhookSchema(Schema):
    id = fields.String()
    url = fields.String()
    events = fields.List(fields.String())
    branch_id = fields.String(allow_none=True, metadata={"description": "null: every branch"})
    active = fields.Boolean()
    status = fields.String(metadata={
        "enum": list(WEBHOOK_STATUSES),
        "description": "active; paused (active: false); failing: a delivery failed for the whole retry period, "
                       "deliveries are held until the webhook is re-activated (PATCH active: true)"})
    failing_since = AwareDateTime(allow_none=True)
    failure_reason = fields.String(allow_none=True)
    created_by = fields.String(allow_none=True)
    created_at = AwareDateTime()
    updated_at = AwareDateTime()


class WebhookQuerySchema(PageQuerySchema):
    status = fields.String(validate=validate.OneOf(WEBHOOK_STATUSES))
    event = fields.String(validate=validate.OneOf(WEBHOOK_EVENTS))
    branch_id = Id()


class AttemptSchema(Schema):
    number = fields.Integer()
    at = AwareDateTime()
    duration_ms = fields.Float()
    status_code = fields.Integer(allow_none=True, metadata={"description": "the receiver's HTTP status, if it answered"})
    error = fields.String(allow_none=True, metadata={"description": "why the attempt failed; null when it succeeded"})


class DeliverySchema(Schema):
    id = fields.String(metadata={"description": "also the X-CRM-Delivery header and the body's id; the same on "
                                                "every attempt: receivers use it to ignore a repeated delivery"})
    webhook_id = fields.String()
    event = fields.String()
    event_id = fields.String()
    occurred_at = AwareDateTime()
    status = fields.String(metadata={"enum": list(DELIVERY_STATUSES)})
    attempt_count = fields.Integer()
    next_attempt_at = AwareDateTime(allow_none=True, metadata={
        "description": "when it is tried next (pending); null once delivered or failed"})
    delivered_at = AwareDateTime(allow_none=True)
    created_at = AwareDateTime()
    attempts = fields.List(fields.Nested(AttemptSchema), metadata={"description": "oldest first"})


class DeliveryQuerySchema(PageQuerySchema):
    status = fields.String(validate=validate.OneOf(DELIVERY_STATUSES))
    event = fields.String(validate=validate.OneOf(WEBHOOK_EVENTS))


class WebhookRefSchema(Schema):
    """A webhook as its events carry it."""

    id = fields.String(required=True)
    url = fields.String(required=True)
    events = fields.List(fields.String(), required=True)
    branch_id = fields.String(required=True, allow_none=True)
