"""The backup service's RPC outputs as the gateway serves them (API.md, "Backups")."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from crm_common.schemas import AwareDateTime, PageQuerySchema

STATUSES = ("running", "done", "failed")


class TablesPartSchema(Schema):
    size_bytes = fields.Integer()
    sha256 = fields.String()
    tables = fields.Dict(keys=fields.String(), values=fields.Integer())


class CopySchema(Schema):
    target = fields.String()
    status = fields.String()  # running | done | failed
    error = fields.String(allow_none=True)
    copied_at = AwareDateTime(allow_none=True)


class BackupSchema(Schema):
    id = fields.String()
    status = fields.String()
    trigger = fields.String()
    started_at = AwareDateTime()
    finished_at = AwareDateTime(allow_none=True)
    size_bytes = fields.Integer(allow_none=True)
    sha256 = fields.String(allow_none=True)
    services = fields.Dict(keys=fields.String(), values=fields.Nested(TablesPartSchema))
    copies = fields.List(fields.Nested(CopySchema))
    verified = fields.Boolean(allow_none=True)
    verified_at = AwareDateTime(allow_none=True)
    verifying = fields.Boolean()
    error = fields.String(allow_none=True)


class BackupAcceptedSchema(Schema):
    id = fields.String()
    status = fields.String()


class VerificationAcceptedSchema(BackupAcceptedSchema):
    verifying = fields.Boolean()


class BackupQuerySchema(PageQuerySchema):
    status = fields.String(validate=validate.OneOf(STATUSES))
