"""Identity as the gateway publishes it: users and branches (never a password or hash)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from crm_common.caller import ROLES
from crm_common.schemas import (
    NO_NUL_PATTERN,
    AwareDateTime,
    Id,
    PageQuerySchema,
    QueryBoolean,
    StrictBoolean,
    StrictSchema,
    Text,
    UpdateSchema,
)

BRANCH_CODE = r"^[A-Za-z0-9_-]+$"
EMAIL_RULE = "a valid email address, stored lower-case (422); unique among users (409)"
USER_BRANCH_RULE = "an existing branch (422), required for a head or manager; a head names only their own (403)"
# what the telephony routes calls by (gateway/telephony.py): a user's own phone and extension on the exchange
USER_PHONE = r"^\+[1-9][0-9]{6,14}$"
USER_EXTENSION = r"^[0-9]{1,10}$"
CAN_EXPORT = "a head may export clients (POST /exports); administrators always may, managers never"
CAN_EXPORT_RULE = ("an administrator grants or withdraws it (403 for anyone else); only a head can hold it (422 for "
                   "another role); a head who changes role loses it")
ON_SHIFT = ("incoming calls of the user's clients are put through to them only while true (else to the branch's "
            "head); they switch it themselves (a day off, leave), or their head does")


def _password(**kwargs):
    return fields.String(validate=validate.Length(min=8, max=128), metadata={"pattern": NO_NUL_PATTERN}, **kwargs)


class BranchSchema(Schema):
    id = fields.String()
    name = fields.String()
    code = fields.String()
    created_at = AwareDateTime()


class BranchCreateSchema(StrictSchema):
    name = Text(200, required=True)
    # a plain string, not Text: a code is taken exactly as sent (no trimming), which is what the pattern says
    code = fields.String(required=True, validate=[
        validate.Length(min=1, max=32), validate.Regexp(BRANCH_CODE, error="Letters, digits, - and _ only.")],
        metadata={"description": "unique, stored upper-case", "x-server-rule": "unique among branches, ignoring case (409)"})


class UserSchema(Schema):
    id = fields.String()
    email = fields.String()
    name = fields.String()
    role = fields.String()
    branch_id = fields.String(allow_none=True)
    active = fields.Boolean()
    phone = fields.String(allow_none=True)
    extension = fields.String(allow_none=True)
    on_shift = fields.Boolean(metadata={"description": ON_SHIFT})
    can_export = fields.Boolean(metadata={"description": CAN_EXPORT})
    created_at = AwareDateTime()
    updated_at = AwareDateTime()


def _phone(**kwargs):
    return fields.String(validate=validate.Regexp(USER_PHONE, error="An E.164 number: + and 7-15 digits."),
                         metadata={"description": "the user's phone, E.164 (+79161234567)", "maxLength": 16}, **kwargs)


def _extension(**kwargs):
    return fields.String(validate=validate.Regexp(USER_EXTENSION, error="1-10 digits."),
                         metadata={"description": "the user's extension on the telephone exchange", "maxLength": 10},
                         **kwargs)


class UserCreateSchema(StrictSchema):
    email = Text(254, lower=True, required=True, validate=validate.Email(),
                 metadata={"format": "email", "x-server-rule": EMAIL_RULE})
    name = Text(200, required=True)
    password = _password(required=True)
    role = fields.String(required=True, validate=validate.OneOf(ROLES), metadata={
        "x-server-rule": "a head creates managers only (403)"})
    branch_id = Id(allow_none=True, load_default=None, metadata={"x-server-rule": USER_BRANCH_RULE})
    phone = _phone(allow_none=True, load_default=None)
    extension = _extension(allow_none=True, load_default=None)
    on_shift = StrictBoolean(load_default=True, metadata={"description": ON_SHIFT})


class UserUpdateSchema(UpdateSchema):
    name = Text(200)
    role = fields.String(validate=validate.OneOf(ROLES), metadata={
        "x-server-rule": "admins only (a head: managers, 403); the last active admin keeps the role (409)"})
    branch_id = Id(allow_none=True, metadata={"x-server-rule": USER_BRANCH_RULE})
    active = StrictBoolean(metadata={"x-server-rule": "you cannot deactivate yourself, nor the last active admin (409)"})
    password = _password()
    phone = _phone(allow_none=True)
    extension = _extension(allow_none=True)
    on_shift = StrictBoolean(metadata={"description": ON_SHIFT})
    can_export = StrictBoolean(metadata={"description": CAN_EXPORT, "x-server-rule": CAN_EXPORT_RULE})


class UserQuerySchema(PageQuerySchema):
    branch_id = Id()
    role = fields.String(validate=validate.OneOf(ROLES))
    active = QueryBoolean()
    q = Text(100)


class LoginSchema(StrictSchema):
    email = Text(254, lower=True, required=True)
    password = fields.String(required=True, validate=validate.Length(max=128), metadata={"pattern": NO_NUL_PATTERN})


class TokenSchema(Schema):
    access_token = fields.String()
    token_type = fields.String()
    expires_in = fields.Integer()
