"""Marshmallow building blocks shared by every contract: strict types, ids, times, pages."""

from __future__ import annotations

import functools
import re
import uuid
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

MONEY = re.compile(r"-?[0-9]{1,15}(\.[0-9]+)?")


class StrictSchema(Schema):
    """Unknown fields are an error, so a typo never silently drops data."""

    class Meta:
        unknown = RAISE
        ordered = True


class UpdateSchema(StrictSchema):
    """A PATCH body: only the fields that change, and at least one of them."""

    @validates_schema(skip_on_field_errors=True)  # {"name": 5} is about name, not an empty body
    def _something_to_change(self, data, **kwargs):
        if not data:
            raise ValidationError("Nothing to change.", "body")


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return False
    return True


def new_id() -> str:
    return str(uuid.uuid4())


class Id(fields.String):
    default_error_messages = {"invalid_id": "Not a valid id."}

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        if not is_uuid(value):
            raise self.make_error("invalid_id")
        return str(uuid.UUID(value))


class Text(fields.String):
    """A string trimmed of surrounding whitespace, with a maximum length and optional non-blank rule.

    ``lower`` lower-cases it first (emails), so the length checked is the length stored: lower-casing can
    lengthen a string ("İ" becomes two code points).
    """

    default_error_messages = {
        "blank": "Must not be blank.",
        "too_long": "Longer than {max} characters.",
        "unstorable": "Contains a NUL character or invalid Unicode.",
    }

    def __init__(self, max_length: int, blank: bool = False, lower: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.max_length = max_length
        self.blank = blank
        self.lower = lower

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs).strip()
        if self.lower:
            value = value.lower()
        if unstorable_text(value):
            raise self.make_error("unstorable")
        if not self.blank and not value:
            raise self.make_error("blank")
        if len(value) > self.max_length:
            raise self.make_error("too_long", max=self.max_length)
        return value


class StrictInteger(fields.Integer):
    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _validated(self, value):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._validated(value)


class StrictBoolean(fields.Boolean):
    """Only JSON true/false in bodies."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class AwareDateTime(fields.DateTime):
    """ISO 8601 with an offset on input; always UTC with ``Z`` on output."""

    default_error_messages = {"naive": "Must include a timezone offset, e.g. 2026-11-26T10:00:00Z."}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE)
        result = super()._deserialize(value, attr, data, **kwargs)
        if result.tzinfo is None:
            raise self.make_error("naive")
        try:
            return result.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+05:00 has no UTC time
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE) from None

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        if isinstance(value, str):
            return value
        return iso(value)


class QueryDateTime(fields.Field):
    """A filter bound in a query string: a date (midnight UTC) or an ISO datetime (naive means UTC)."""

    default_error_messages = {"invalid": "Not a valid date or datetime (YYYY-MM-DD or ISO 8601)."}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise self.make_error("invalid")
        try:
            if len(value) == 10:
                return datetime.combine(date.fromisoformat(value), time.min, tzinfo=UTC)
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise self.make_error("invalid") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise self.make_error("invalid") from None

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else iso(value)


class Money(fields.Field):
    """A decimal amount as a string with at most two places (``"1250.50"``); numbers are refused."""

    default_error_messages = {
        "invalid": 'Must be a decimal string like "1250.50".',
        "places": "At most two decimal places.",
        "negative": "Must not be negative.",
        "too_large": "Too large.",
    }

    def __init__(self, max_value: Decimal = Decimal("999999999999.99"), **kwargs):
        super().__init__(**kwargs)
        self.max_value = max_value

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not MONEY.fullmatch(value.strip()):
            raise self.make_error("invalid")
        try:
            amount = Decimal(value.strip())
        except InvalidOperation:
            raise self.make_error("invalid") from None
        if not amount.is_finite():
            raise self.make_error("invalid")
        if amount.as_tuple().exponent < -2:
            raise self.make_error("places")
        if amount < 0:
            raise self.make_error("negative")
        if amount > self.max_value:
            raise self.make_error("too_large")
        return amount.quantize(Decimal("0.01"))

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        return f"{Decimal(value).quantize(Decimal('0.01'))}"


class Scalar(fields.Field):
    """A custom-field value: a short string, a number, a boolean or null."""

    default_error_messages = {"invalid": "Must be a string (up to 1000 characters), a number, a boolean or null."}

    def _deserialize(self, value, attr, data, **kwargs):
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, str) and len(value) <= 1000:
            return value
        raise self.make_error("invalid")


def unstorable_text(value: str) -> bool:
    """True for text no database keeps: NUL characters or lone UTF-16 surrogates."""
    if "\x00" in value:
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def find_unstorable(data, path: str = "") -> str | None:
    """The path of the first string in a JSON document that no database can store, or None."""
    if isinstance(data, str):
        return (path or "body") if unstorable_text(data) else None
    if isinstance(data, dict):
        for key, value in data.items():
            child = f"{path}.{key}" if path else str(key)
            if unstorable_text(str(key)):
                return child
            found = find_unstorable(value, child)
            if found:
                return found
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found = find_unstorable(value, f"{path}.{index}" if path else str(index))
            if found:
                return found
    return None


def iso(value: datetime) -> str:
    value = value.astimezone(UTC)
    return value.isoformat().replace("+00:00", "Z")


def limited_list(inner: fields.Field, max_items: int, **kwargs) -> fields.List:
    return fields.List(inner, validate=validate.Length(max=max_items), **kwargs)


class PageQuerySchema(StrictSchema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(load_default=None, validate=validate.Length(max=500))


def page_schema(item_schema: type[Schema], name: str) -> type[Schema]:
    return type(
        name,
        (Schema,),
        {"items": fields.List(fields.Nested(item_schema)), "next_cursor": fields.String(allow_none=True)},
    )


@functools.cache
def _shared_instance(schema_cls: type[Schema]) -> Schema:
    return schema_cls()


def load_or_raise(schema: Schema | type[Schema], data, error_cls=None):
    """Load ``data`` with ``schema``; a failure raises the CRM error class with flat field messages.

    Give the schema class: one instance per class is built once and shared (loading keeps no state on
    it), rather than a new one per request.
    """
    from crm_common.errors import ValidationError as CrmValidationError
    from crm_common.errors import flatten_messages

    if isinstance(schema, type):
        schema = _shared_instance(schema)
    error_cls = error_cls or CrmValidationError
    if not isinstance(data, dict):
        raise error_cls("expected a JSON object", fields={"body": ["Must be a JSON object."]})
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise error_cls("invalid input", fields=flatten_messages(exc.messages)) from None
