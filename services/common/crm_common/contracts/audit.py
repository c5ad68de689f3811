"""The audit log's HTTP shapes (the gateway owns the log: gateway/audit.py, gateway/auditlog.py)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from crm_common.schemas import AwareDateTime, Id, PageQuerySchema, QueryDateTime

AUDIT_ACTIONS = ("read", "list", "create", "update", "archive", "restore", "merge", "login", "export", "offboard")
FLAW_REASONS = ("sequence_gap", "broken_link", "hash_mismatch", "head_mismatch")


class AuditQuerySchema(PageQuerySchema):
    user_id = Id()
    action = fields.String(validate=validate.OneOf(AUDIT_ACTIONS))
    from_ = QueryDateTime(data_key="from", metadata={"description": "entries at or after this time"})
    to = QueryDateTime(metadata={"description": "entries before this time",
                                 "x-server-rule": "must not be before from, or 400"})


class AuditEntrySchema(Schema):
    id = fields.String(required=True)
    user_id = fields.String(required=True, allow_none=True)
    branch_id = fields.String(required=True, allow_none=True)
    action = fields.String(required=True, metadata={"description": " | ".join(AUDIT_ACTIONS)})
    ref_type = fields.String(required=True, allow_none=True,
                             metadata={"description": "client | timeline | duplicates | user | export ..."})
    ref_id = fields.String(required=True, allow_none=True)
    count = fields.Integer(required=True, metadata={"description": "records concerned: the clients a list revealed"})
    at = AwareDateTime(required=True)
    request_id = fields.String(required=True, allow_none=True)
    address = fields.String(required=True, allow_none=True)


class AuditFlawSchema(Schema):
    id = fields.String(required=True, allow_none=True, metadata={"description": "the first entry found wrong"})
    reason = fields.String(required=True, metadata={"description": " | ".join(FLAW_REASONS)})


class AuditVerifySchema(Schema):
    ok = fields.Boolean(required=True)
    checked = fields.Integer(required=True)
    first_bad = fields.Nested(AuditFlawSchema, required=True, allow_none=True)
