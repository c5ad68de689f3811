"""Identity as the gateway publishes it: users and branches (never a password or hash)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from crm_common.caller import ROLES
from crm_common.schemas import AwareDateTime, Id, PageQuerySchema, StrictBoolean, StrictSchema, Text, UpdateSchema


class BranchSchema(Schema):
    id = fields.String()
    name = fields.String()
    code = fields.String()
    created_at = AwareDateTime()


class BranchCreateSchema(StrictSchema):
    name = Text(200, required=True)
    code = Text(32, required=True, validate=validate.Regexp(r"^[A-Za-z0-9_-]+$", error="Letters, digits, - and _ only."))


class UserSchema(Schema):
    id = fields.String()
    email = fields.String()
    name = fields.String()
    role = fields.String()
    branch_id = fields.String(allow_none=True)
    active = fields.Boolean()
    created_at = AwareDateTime()
    updated_at = AwareDateTime()


class UserCreateSchema(StrictSchema):
    email = Text(254, lower=True, required=True, validate=validate.Email())
    name = Text(200, required=True)
    password = fields.String(required=True, validate=validate.Length(min=8, max=128))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    branch_id = Id(allow_none=True, load_default=None)


class UserUpdateSchema(UpdateSchema):
    name = Text(200)
    role = fields.String(validate=validate.OneOf(ROLES))
    branch_id = Id(allow_none=True)
    active = StrictBoolean()
    password = fields.String(validate=validate.Length(min=8, max=128))


class UserQuerySchema(PageQuerySchema):
    branch_id = Id()
    role = fields.String(validate=validate.OneOf(ROLES))
    active = fields.Boolean()
    q = Text(100)


class LoginSchema(StrictSchema):
    email = Text(254, lower=True, required=True)
    password = fields.String(required=True, validate=validate.Length(max=128))


class TokenSchema(Schema):
    access_token = fields.String()
    token_type = fields.String()
    expires_in = fields.Integer()
