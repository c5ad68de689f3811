"""Marshmallow building blocks shared by every contract: strict types, ids, times, pages.

Each field states the rules it enforces as OpenAPI properties in its metadata (``maxLength``,
``pattern``, ``format``, ``enum``...), which apispec copies into the served document: a rule and its
documentation are one piece of code. Where a rule cannot be said in OpenAPI 3.0 (a phone number's
numbering plan, a record that must exist), the field carries ``x-server-rule`` saying it in words.
"""

from __future__ import annotations

import functools
import re
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

# the characters str.strip() removes (str.isspace()), spelled out so that a JSON Schema pattern (ECMA 262,
# whose \s is a different set) means exactly what the server does; tests/unit/common checks the list
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def _escaped(chars: str) -> str:
    """The characters as the inside of a regex class, in ``\\uXXXX`` escapes and ranges."""
    codes, parts, i = sorted(map(ord, chars)), [], 0
    while i < len(codes):
        j = i
        while j + 1 < len(codes) and codes[j + 1] == codes[j] + 1:
            j += 1
        parts.append(f"\\u{codes[i]:04x}" + (f"-\\u{codes[j]:04x}" if j > i else ""))
        i = j + 1
    return "".join(parts)


# no database stores NUL; "not blank" is "something besides whitespace", as Text.strip() decides it
NO_NUL_PATTERN = "^[^\\u0000]*$"
NOT_BLANK_PATTERN = f"^[^\\u0000]*[^\\u0000{_escaped(WHITESPACE)}][^\\u0000]*$"
UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
MONEY_PATTERN = "^[0-9]{1,12}(\\.[0-9]{1,2})?$"
CURSOR_PATTERN = "^[A-Za-z0-9_-]*$"
_UUID = re.compile(UUID_PATTERN)
_MONEY = re.compile(MONEY_PATTERN)
_LOOSE_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")
# RFC 3339 date-time, as OpenAPI's format "date-time" means it (T and Z in either case); [0-9], not \d,
# which in Python matches other scripts' digits too
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_rfc3339(value: str) -> datetime | None:
    """An RFC 3339 date-time (with its offset) as an aware datetime in UTC; None if it is not one."""
    match = _RFC3339.fullmatch(value)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    try:
        offset = timedelta(0) if zulu else timedelta(hours=int(off_h), minutes=int(off_m))
        if offset >= timedelta(hours=24):
            return None
        if sign == "-":
            offset = -offset
        micro = int((fraction or "0")[:6].ljust(6, "0"))
        parsed = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro,
                          tzinfo=timezone(offset))
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # 2026-02-30, hour 24, 0001-01-01T00:00:00+05:00 (before year 1 in UTC)
        return None


def parse_date(value: str) -> date | None:
    """A ``YYYY-MM-DD`` calendar date (OpenAPI's format "date"); None if it is not one."""
    if _DATE.fullmatch(value) is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


class StrictSchema(Schema):
    """Unknown fields are an error, so a typo never silently drops data."""

    class Meta:
        unknown = RAISE
        ordered = True


class UpdateSchema(StrictSchema):
    """A PATCH body: only the fields that change, and at least one of them (``minProperties: 1``)."""

    @validates_schema(skip_on_field_errors=True)  # {"name": 5} is about name, not an empty body
    def _something_to_change(self, data, **kwargs):
        if not data:
            raise ValidationError("Nothing to change.", "body")


def is_uuid(value: str) -> bool:
    """The canonical form only (``8-4-4-4-12`` hex digits, either case), as the document's pattern says."""
    return isinstance(value, str) and _UUID.fullmatch(value) is not None


def new_id() -> str:
    return str(uuid.uuid4())


def _with_properties(kwargs: dict, **properties) -> dict:
    """``kwargs`` with OpenAPI ``properties`` added to the field's metadata (what a caller gave wins)."""
    metadata = dict(kwargs.pop("metadata", None) or {})
    for key, value in properties.items():
        metadata.setdefault(key, value)
    kwargs["metadata"] = metadata
    return kwargs


class Id(fields.String):
    """A record's id: a UUID in its canonical text form, returned lower-case."""

    default_error_messages = {"invalid_id": "Not a valid id."}

    def __init__(self, **kwargs):
        super().__init__(**_with_properties(kwargs, format="uuid", pattern=UUID_PATTERN))

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        if not is_uuid(value):
            raise self.make_error("invalid_id")
        return str(uuid.UUID(value))


class Text(fields.String):
    """A string trimmed of surrounding whitespace, with a maximum length and optional non-blank rule.

    The length is that of the string as sent (``maxLength`` counts it so); trimming only shortens it.
    ``lower`` lower-cases it (emails) without ever lengthening it: the one character whose lower case is
    two ("İ") is kept as it is, so the length stored is never more than the length checked.
    """

    default_error_messages = {
        "blank": "Must not be blank.",
        "too_long": "Longer than {max} characters.",
        "unstorable": "Contains a NUL character or invalid Unicode.",
    }

    def __init__(self, max_length: int, blank: bool = False, lower: bool = False, **kwargs):
        pattern = NO_NUL_PATTERN if blank else NOT_BLANK_PATTERN
        super().__init__(**_with_properties(kwargs, maxLength=max_length, pattern=pattern))
        self.max_length = max_length
        self.blank = blank
        self.lower = lower

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        if unstorable_text(value):
            raise self.make_error("unstorable")
        if len(value) > self.max_length:
            raise self.make_error("too_long", max=self.max_length)
        value = value.strip()
        if self.lower:
            value = "".join(c if len(low := c.lower()) != 1 else low for c in value)
        if not self.blank and not value:
            raise self.make_error("blank")
        return value


class StrictInteger(fields.Integer):
    """A JSON integer. ``3.0`` is one too (JSON Schema's "integer" is any number without a fraction);
    booleans and strings are not."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _validated(self, value):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return super()._validated(value)


class QueryInteger(fields.Integer):
    """An integer in a query string: decimal digits with an optional minus sign, nothing else
    (not ``int()``'s spaces, underscores, ``+`` or other scripts' digits)."""

    _DIGITS = re.compile(r"-?[0-9]{1,18}")

    def _validated(self, value):
        if isinstance(value, int) and not isinstance(value, bool):
            return value  # a service's RPC caller passes the number itself
        if not isinstance(value, str) or not self._DIGITS.fullmatch(value):
            raise self.make_error("invalid")
        return int(value)


class QueryBoolean(fields.Boolean):
    """A boolean in a query string: ``true`` or ``false``, as OpenAPI serialises one."""

    def __init__(self, **kwargs):
        super().__init__(truthy={"true"}, falsy={"false"}, **kwargs)


class StrictBoolean(fields.Boolean):
    """Only JSON true/false in bodies."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class AwareDateTime(fields.DateTime):
    """RFC 3339 (ISO 8601 with seconds and an offset) on input; always UTC with ``Z`` on output."""

    default_error_messages = {
        "naive": "Must include a timezone offset, e.g. 2026-11-26T10:00:00Z.",
        "rfc3339": "Not a valid date-time: use RFC 3339, e.g. 2026-11-26T10:00:00Z.",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE)
        parsed = parse_rfc3339(value)
        if parsed is None:
            loose = parse_rfc3339(value + "Z") if _RFC3339.fullmatch(value + "Z") else None
            raise self.make_error("naive" if loose is not None else "rfc3339")
        return parsed

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        if isinstance(value, str):
            return value
        return iso(value)


class QueryDateTime(fields.Field):
    """A filter bound in a query string: a date (``2026-11-26``, midnight UTC) or an RFC 3339 date-time."""

    default_error_messages = {"invalid": "Not a valid date (YYYY-MM-DD) or date-time (RFC 3339, e.g. 2026-11-26T10:00:00Z)."}

    def __init__(self, **kwargs):
        super().__init__(**_with_properties(kwargs, anyOf=[{"format": "date"}, {"format": "date-time"}]))

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise self.make_error("invalid")
        day = parse_date(value)
        if day is not None:
            return datetime.combine(day, time.min, tzinfo=UTC)
        parsed = parse_rfc3339(value)
        if parsed is None:
            raise self.make_error("invalid")
        return parsed

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else iso(value)


class Money(fields.Field):
    """A decimal amount as a string with at most two places (``"1250.50"``); numbers are refused.

    Exactly ``MONEY_PATTERN``: up to twelve digits, optionally a point and one or two more, so from 0 to
    999,999,999,999.99 and never negative. A refused value gets the message that says why.
    """

    default_error_messages = {
        "invalid": 'Must be a decimal string like "1250.50".',
        "places": "At most two decimal places.",
        "negative": "Must not be negative.",
        "too_large": "Too large.",
    }

    def __init__(self, **kwargs):
        super().__init__(**_with_properties(kwargs, pattern=MONEY_PATTERN, example="1250.50"))

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and _MONEY.fullmatch(value):
            return Decimal(value).quantize(Decimal("0.01"))
        if not isinstance(value, str) or not _LOOSE_DECIMAL.fullmatch(value):
            raise self.make_error("invalid")
        try:
            amount = Decimal(value)
        except InvalidOperation:
            raise self.make_error("invalid") from None
        if amount < 0:
            raise self.make_error("negative")
        if "." in value and len(value.split(".")[1]) > 2:
            raise self.make_error("places")
        raise self.make_error("too_large")

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        return f"{Decimal(value).quantize(Decimal('0.01'))}"


class Scalar(fields.Field):
    """A custom-field value: a short string, a number, a boolean or null."""

    default_error_messages = {"invalid": "Must be a string (up to 1000 characters), a number, a boolean or null."}

    def __init__(self, **kwargs):
        one_of = [{"type": "string", "maxLength": 1000, "pattern": NO_NUL_PATTERN}, {"type": "number"}, {"type": "boolean"}]
        super().__init__(**_with_properties(kwargs, anyOf=one_of))

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
    limit = QueryInteger(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(
        load_default=None,
        validate=[validate.Length(max=500), validate.Regexp(CURSOR_PATTERN, error="Not a cursor returned by this list.")],
        metadata={
            "description": "the next_cursor of the previous page (empty: the first page)",
            "x-server-rule": "must be a next_cursor this list returned, or 400",
        },
    )


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
