"""Offboarding: a leaving user's clients, open deals and open tasks handed to another user (decisions.md 64-66).

``OffboardSchema`` is the body of ``POST /users/{id}/offboard``, ``OffboardingSchema`` the saga as
``GET /offboardings/{id}`` shows it. ``TransferSchema`` / ``TransferStateSchema`` are the RPC input and output of
each owning service's step (``crm_common/transfers.py``).
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from crm_common.schemas import AwareDateTime, Id, PageQuerySchema, StrictSchema

STATUSES = ("running", "done", "failed")
STEPS = ("clients", "deals", "tasks")
TO_USER_RULE = ("an active user of the same branch as the user offboarded, not that user (422); a user with an "
                "offboarding running, or offboarded and still inactive, is 409")


class OffboardSchema(StrictSchema):
    to_user_id = Id(required=True, metadata={
        "description": "who gets the user's clients, open deals and open tasks", "x-server-rule": TO_USER_RULE})


class OffboardingSchema(Schema):
    id = fields.String()
    user_id = fields.String()
    to_user_id = fields.String()
    branch_id = fields.String(allow_none=True)
    requested_by = fields.String(allow_none=True)
    status = fields.String(validate=validate.OneOf(STATUSES), metadata={"enum": list(STATUSES)})
    step = fields.String(allow_none=True, metadata={
        "description": "the step running, waiting or failed (clients, deals, tasks); null once done"})
    clients = fields.Integer(metadata={"description": "clients handed over so far"})
    deals = fields.Integer(metadata={"description": "open deals handed over so far"})
    tasks = fields.Integer(metadata={"description": "open tasks handed over so far"})
    started_at = AwareDateTime()
    finished_at = AwareDateTime(allow_none=True)
    error = fields.String(allow_none=True, metadata={
        "description": "why the last attempt of a step failed (a running saga tries again) or why it failed"})


class OffboardingQuerySchema(PageQuerySchema):
    user_id = Id(load_default=None, metadata={"description": "the offboarded user"})
    status = fields.String(load_default=None, validate=validate.OneOf(STATUSES))


class TransferSchema(StrictSchema):
    id = Id(required=True)
    from_user_id = Id(required=True)
    to_user_id = Id(required=True)
    actor_id = Id(load_default=None, allow_none=True)


class TransferStateSchema(Schema):
    moved = fields.Integer()
    done = fields.Boolean()
