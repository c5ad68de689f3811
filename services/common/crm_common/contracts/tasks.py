"""The tasks service's contract: what its records look like on the wire and in its events.

The output schemas below are fixed first, because other services (reports, clients' timeline, webhooks)
read them in the events; the tasks service adds its input and query schemas here as well.
"""

from __future__ import annotations

from decimal import Decimal

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from crm_common.contracts.deals import CurrencyCode
from crm_common.schemas import (
    AwareDateTime,
    Id,
    Money,
    PageQuerySchema,
    QueryBoolean,
    QueryDateTime,
    StrictBoolean,
    StrictSchema,
    Text,
    UpdateSchema,
)

TASK_STATUSES = ("open", "done", "cancelled")
PENALTY_STATUSES = ("active", "waived")
COMPLAINT_STATUSES = ("open", "in_progress", "resolved")


class AmountSchema(Schema):
    """A sum of money: ``{"amount": "500.00", "currency": "RUB"}``."""

    amount = Money(required=True)
    currency = fields.String(required=True)


class ChecklistItemSchema(Schema):
    text = fields.String()
    done = fields.Boolean()
    done_at = AwareDateTime(allow_none=True)


class TaskSchema(Schema):
    id = fields.String()
    title = fields.String()
    description = fields.String(allow_none=True)
    status = fields.String(metadata={"enum": list(TASK_STATUSES)})
    assignee_id = fields.String()
    author_id = fields.String(allow_none=True, metadata={"description": "null when the system made the task"})
    branch_id = fields.String()
    client_id = fields.String(allow_none=True)
    deal_id = fields.String(allow_none=True)
    template_id = fields.String(allow_none=True)
    template_version = fields.Integer(allow_none=True)
    due_at = AwareDateTime()
    completed_at = AwareDateTime(allow_none=True)
    cancelled_at = AwareDateTime(allow_none=True)
    cancel_reason = fields.String(allow_none=True)
    overdue = fields.Boolean()
    checklist = fields.List(fields.Nested(ChecklistItemSchema))
    penalty = fields.Nested(AmountSchema, allow_none=True)
    created_at = AwareDateTime()
    updated_at = AwareDateTime()
    version = fields.Integer()


class PenaltySchema(Schema):
    id = fields.String()
    user_id = fields.String()
    task_id = fields.String()
    branch_id = fields.String()
    amount = Money()
    currency = fields.String()
    reason = fields.String()
    month = fields.String(metadata={"description": "YYYY-MM: the UTC month of the task's due_at"})
    status = fields.String(metadata={"enum": list(PENALTY_STATUSES)})
    waived_at = AwareDateTime(allow_none=True)
    waive_reason = fields.String(allow_none=True)
    created_at = AwareDateTime()


class ComplaintSchema(Schema):
    id = fields.String()
    status = fields.String(metadata={"enum": list(COMPLAINT_STATUSES)})
    client_id = fields.String()
    deal_id = fields.String(allow_none=True)
    subject = fields.String()
    text = fields.String()
    channel = fields.String(allow_none=True)
    branch_id = fields.String()
    author_id = fields.String(allow_none=True)
    owner_id = fields.String(allow_none=True, metadata={"description": "the client's owner, who handles it"})
    task_id = fields.String(allow_none=True, metadata={"description": "the task opened to handle it"})
    due_at = AwareDateTime()
    resolution = fields.String(allow_none=True)
    resolved_at = AwareDateTime(allow_none=True)
    created_at = AwareDateTime()
    updated_at = AwareDateTime()
    version = fields.Integer()


# ---- inputs and queries (the output schemas above are fixed: other services read them in the events)

MAX_CHECKLIST = 100
MAX_HOURS = 24 * 366
AUTOMATION_EVENTS = (
    "client_created", "deal_created", "deal_stage_changed", "deal_won", "deal_lost", "deal_stuck",
    "complaint_created", "task_overdue",
)
DEAL_EVENTS = tuple(event for event in AUTOMATION_EVENTS if event.startswith("deal_"))
ASSIGN_TO = ("owner", "head")
TASK_SORTS = ("-created_at", "due_at")
EXPORT_KINDS = ("tasks", "penalties", "complaints")


class Hours(fields.Float):
    """Hours as a JSON number; fractions allowed (0.5 = 30 minutes), booleans and strings refused."""

    def _validated(self, value):
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
            raise self.make_error("invalid")
        return super()._validated(value)


class AmountInputSchema(StrictSchema):
    amount = Money(required=True)
    currency = CurrencyCode(required=True)


def _checklist(**kwargs):
    return fields.List(Text(500), validate=validate.Length(max=MAX_CHECKLIST), **kwargs)


# rules OpenAPI 3.0 cannot state, said in words in the document (x-server-rule)
ASSIGNEE_RULE = ("an active user of the task's branch (422); a manager assigns only to themself (403), a head within "
                 "the branch")
CLIENT_RULE = "a client you can see (422)"
DEAL_RULE = "a deal you can see, of the task's client when both are given (422)"
TEMPLATE_RULE = "a process step (task template) of your branch (422)"
FUTURE_RULE = "in the future (422)"
BRANCH_RULE = "an existing branch (422); only an admin names another branch (403)"


class TaskCreateSchema(StrictSchema):
    title = Text(200, metadata={"description": "required unless template_id is given (then the template's name)",
                                "x-server-rule": "required unless template_id is given (422)"})
    description = Text(20000, blank=True, allow_none=True)
    assignee_id = Id(allow_none=True, load_default=None,
                     metadata={"description": "default: the caller", "x-server-rule": ASSIGNEE_RULE})
    due_at = AwareDateTime(metadata={"description": "in the future; required unless template_id is given",
                                     "x-server-rule": FUTURE_RULE + "; required unless template_id is given"})
    checklist = _checklist()
    client_id = Id(allow_none=True, load_default=None, metadata={"x-server-rule": CLIENT_RULE})
    deal_id = Id(allow_none=True, load_default=None, metadata={"x-server-rule": DEAL_RULE})
    template_id = Id(allow_none=True, load_default=None, metadata={"x-server-rule": TEMPLATE_RULE})
    penalty = fields.Nested(AmountInputSchema, allow_none=True)

    @validates_schema(skip_on_field_errors=True)
    def _title_and_due_at_or_a_template(self, data, **kwargs):
        if data.get("template_id"):
            return
        errors = {}
        if not data.get("title"):
            errors["title"] = ["Required (or give template_id)."]
        if not data.get("due_at"):
            errors["due_at"] = ["Required (or give template_id)."]
        if errors:
            raise ValidationError(errors)


class TaskUpdateSchema(UpdateSchema):
    title = Text(200)
    description = Text(20000, blank=True, allow_none=True)
    due_at = AwareDateTime(metadata={"x-server-rule": FUTURE_RULE})
    assignee_id = Id(metadata={"x-server-rule": ASSIGNEE_RULE})


class ChecklistTickSchema(StrictSchema):
    done = StrictBoolean(required=True)


class ReasonSchema(StrictSchema):
    reason = Text(1000, required=True)


class TaskQuerySchema(PageQuerySchema):
    assignee_id = Id()
    status = fields.String(validate=validate.OneOf(TASK_STATUSES))
    overdue = QueryBoolean()
    client_id = Id()
    deal_id = Id()
    due_before = QueryDateTime()
    branch_id = Id()
    sort = fields.String(load_default="-created_at", validate=validate.OneOf(TASK_SORTS))


class PenaltyQuerySchema(PageQuerySchema):
    user_id = Id()
    month = fields.String(validate=validate.Regexp(r"^[0-9]{4}-(0[1-9]|1[0-2])$", error="Must be YYYY-MM."))
    status = fields.String(validate=validate.OneOf(PENALTY_STATUSES))
    branch_id = Id()


class TemplateCreateSchema(StrictSchema):
    name = Text(200, required=True)
    process = Text(200, required=True, metadata={"description": "the business process this step belongs to"})
    instruction = Text(50000, required=True, metadata={"description": "how to do this step"})
    checklist = _checklist(required=True)
    due_in_hours = Hours(required=True, validate=validate.Range(min=0, max=MAX_HOURS, min_inclusive=False))
    penalty = fields.Nested(AmountInputSchema, allow_none=True, load_default=None)
    branch_id = Id(allow_none=True, load_default=None,
                   metadata={"description": "an administrator names the branch", "x-server-rule": BRANCH_RULE})


class TemplateUpdateSchema(UpdateSchema):
    name = Text(200)
    process = Text(200)
    instruction = Text(50000)
    checklist = _checklist()
    due_in_hours = Hours(validate=validate.Range(min=0, max=MAX_HOURS, min_inclusive=False))
    penalty = fields.Nested(AmountInputSchema, allow_none=True)


class TemplateSchema(Schema):
    id = fields.String()
    branch_id = fields.String()
    name = fields.String()
    process = fields.String()
    instruction = fields.String()
    checklist = fields.List(fields.String())
    due_in_hours = fields.Float()
    penalty = fields.Nested(AmountSchema, allow_none=True)
    version = fields.Integer()
    created_at = AwareDateTime()
    updated_at = AwareDateTime()


class TemplateQuerySchema(PageQuerySchema):
    process = Text(200)
    branch_id = Id()


class AutomationCreateSchema(StrictSchema):
    event = fields.String(required=True, validate=validate.OneOf(AUTOMATION_EVENTS))
    template_id = Id(required=True, metadata={"x-server-rule": TEMPLATE_RULE})
    assign_to = fields.String(required=True, validate=validate.OneOf(ASSIGN_TO))
    pipeline_id = Id(allow_none=True, load_default=None, metadata={
        "description": "deal events only", "x-server-rule": "deal events only; a pipeline of your branch (422)"})
    stage_id = Id(allow_none=True, load_default=None, metadata={
        "description": "deal events only, with pipeline_id: the stage the deal is in after the event (for "
                       "deal_stage_changed: the stage entered)",
        "x-server-rule": "deal events only, with pipeline_id; a stage of that pipeline (422)"})
    delay_hours = Hours(load_default=0.0, validate=validate.Range(min=0, max=MAX_HOURS))

    @validates_schema(skip_on_field_errors=True)
    def _deal_filters(self, data, **kwargs):
        if data["event"] not in DEAL_EVENTS:
            for name in ("pipeline_id", "stage_id"):
                if data.get(name):
                    raise ValidationError("Only for deal events.", name)
        if data.get("stage_id") and not data.get("pipeline_id"):
            raise ValidationError("Name the stage's pipeline_id too.", "pipeline_id")


class AutomationSchema(Schema):
    id = fields.String()
    branch_id = fields.String()
    event = fields.String(metadata={"enum": list(AUTOMATION_EVENTS)})
    template_id = fields.String()
    assign_to = fields.String(metadata={"enum": list(ASSIGN_TO)})
    pipeline_id = fields.String(allow_none=True)
    stage_id = fields.String(allow_none=True)
    delay_hours = fields.Float()
    active = fields.Boolean()
    created_by = fields.String(allow_none=True)
    created_at = AwareDateTime()
    disabled_at = AwareDateTime(allow_none=True)


class AutomationQuerySchema(PageQuerySchema):
    event = fields.String(validate=validate.OneOf(AUTOMATION_EVENTS))
    active = QueryBoolean()
    branch_id = Id()


class ComplaintCreateSchema(StrictSchema):
    client_id = Id(required=True, metadata={"x-server-rule": CLIENT_RULE})
    deal_id = Id(allow_none=True, load_default=None, metadata={"x-server-rule": "a deal of that client you can see (422)"})
    subject = Text(200, required=True)
    text = Text(20000, required=True)
    channel = Text(50, allow_none=True, load_default=None)


class ComplaintUpdateSchema(StrictSchema):
    status = fields.String(required=True, validate=validate.OneOf(COMPLAINT_STATUSES[1:]))
    resolution = Text(20000, allow_none=True, load_default=None,
                      metadata={"x-server-rule": "required when status is resolved (422)"})

    @validates_schema(skip_on_field_errors=True)
    def _resolved_needs_a_resolution(self, data, **kwargs):
        if data["status"] == "resolved" and not data.get("resolution"):
            raise ValidationError("Required to resolve a complaint.", "resolution")


class ComplaintQuerySchema(PageQuerySchema):
    status = fields.String(validate=validate.OneOf(COMPLAINT_STATUSES))
    client_id = Id()
    branch_id = Id()


class NotificationSchema(Schema):
    id = fields.String()
    user_id = fields.String()
    kind = fields.String(metadata={"description": "deal_stuck | task_overdue | complaint | penalty | bulk_read | "
                                                  "backup_failed | webhook_failed"})
    text = fields.String()
    ref_type = fields.String(allow_none=True)
    ref_id = fields.String(allow_none=True)
    created_at = AwareDateTime()
    read_at = AwareDateTime(allow_none=True)


class NotificationQuerySchema(PageQuerySchema):
    unread = fields.Boolean()


class ExportQuerySchema(StrictSchema):
    kind = fields.String(required=True, validate=validate.OneOf(EXPORT_KINDS))
    cursor = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))
    limit = fields.Integer(load_default=500, validate=validate.Range(min=1, max=5000))
