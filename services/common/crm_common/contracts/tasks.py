"""The tasks service's contract: what its records look like on the wire and in its events.

The output schemas below are fixed first, because other services (reports, clients' timeline, webhooks)
read them in the events; the tasks service adds its input and query schemas here as well.
"""

from __future__ import annotations

from marshmallow import Schema, fields

from crm_common.schemas import AwareDateTime, Money

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
