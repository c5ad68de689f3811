"""The strict marshmallow building blocks every contract is made of."""

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from marshmallow import Schema
from marshmallow import ValidationError as MarshmallowError

from crm_common.contracts.clients import ClientCreateSchema
from crm_common.errors import BadRequest
from crm_common.errors import ValidationError as CrmValidationError
from crm_common.schemas import (
    AwareDateTime,
    Id,
    Money,
    PageQuerySchema,
    QueryDateTime,
    StrictBoolean,
    StrictInteger,
    StrictSchema,
    Text,
    UpdateSchema,
    is_uuid,
    iso,
    load_or_raise,
)


class NoteSchema(StrictSchema):
    title = Text(10, required=True)
    comment = Text(10, blank=True)


@pytest.mark.parametrize(("raw", "loaded"), [("  Иван  ", "Иван"), ("a", "a"), ("\tten char\n", "ten char")])
def test_text_is_trimmed_of_surrounding_whitespace(raw, loaded):
    assert NoteSchema().load({"title": raw})["title"] == loaded


@pytest.mark.parametrize("raw", ["", "   ", "\n\t"])
def test_blank_text_is_refused_unless_blank_is_allowed(raw):
    with pytest.raises(MarshmallowError) as error:
        NoteSchema().load({"title": raw})

    assert error.value.messages == {"title": ["Must not be blank."]}
    assert NoteSchema().load({"title": "x", "comment": raw})["comment"] == ""


@pytest.mark.parametrize("raw", ["0123456789X", "  0123456789  "])
def test_text_longer_than_its_maximum_as_sent_is_refused_as_the_documents_max_length_says(raw):
    assert NoteSchema().load({"title": " 01234567 "})["title"] == "01234567"
    with pytest.raises(MarshmallowError) as error:
        NoteSchema().load({"title": raw})

    assert error.value.messages == {"title": ["Longer than 10 characters."]}


class LoginNameSchema(Schema):
    email = Text(10, lower=True)


def test_lower_text_is_never_longer_than_what_was_sent():
    assert LoginNameSchema().load({"email": " A@B.RU "})["email"] == "a@b.ru"
    assert len("İİİİİ@b.ru") == 10 and len("İİİİİ@b.ru".lower()) == 15  # lower-casing İ adds a combining dot

    assert LoginNameSchema().load({"email": "İİİİİ@B.RU"})["email"] == "İİİİİ@b.ru"


def test_the_whitespace_in_the_documents_patterns_is_what_python_strips():
    import sys

    from crm_common.schemas import WHITESPACE

    assert WHITESPACE == "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())


@pytest.mark.parametrize(
    ("raw", "valid"),
    [("a", True), (" a ", True), ("\u3000x", True), ("", False), (" \t\n", False), ("\u2005\x1c", False),
     ("a\x00", False), ("\ufeff", True)],
)
def test_the_not_blank_pattern_accepts_exactly_what_text_accepts(raw, valid):
    import re

    from crm_common.schemas import NOT_BLANK_PATTERN

    loads = True
    try:
        NoteSchema().load({"title": raw})
    except MarshmallowError:
        loads = False
    assert (re.search(NOT_BLANK_PATTERN, raw) is not None) == loads == valid


@pytest.mark.parametrize("raw", [7, ["a"], {"a": 1}, True])
def test_text_refuses_values_that_are_not_strings(raw):
    with pytest.raises(MarshmallowError):
        NoteSchema().load({"title": raw})


def test_a_strict_schema_refuses_unknown_fields():
    with pytest.raises(MarshmallowError) as error:
        NoteSchema().load({"title": "x", "titel": "y"})

    assert "titel" in error.value.messages


class CountSchema(Schema):
    count = StrictInteger()
    flag = StrictBoolean()


@pytest.mark.parametrize("raw", [True, False, "5", 5.5, None, [5]])
def test_a_strict_integer_refuses_booleans_strings_and_fractions(raw):
    with pytest.raises(MarshmallowError) as error:
        CountSchema().load({"count": raw})

    assert "count" in error.value.messages


@pytest.mark.parametrize("raw", [0, 5, -3, 10**12])
def test_a_strict_integer_accepts_json_integers(raw):
    assert CountSchema().load({"count": raw})["count"] == raw


@pytest.mark.parametrize("raw", ["true", "false", 1, 0, "yes", None])
def test_a_strict_boolean_refuses_anything_but_true_and_false(raw):
    with pytest.raises(MarshmallowError):
        CountSchema().load({"flag": raw})


@pytest.mark.parametrize("raw", [True, False])
def test_a_strict_boolean_accepts_true_and_false(raw):
    assert CountSchema().load({"flag": raw})["flag"] is raw


class MeetingSchema(Schema):
    at = AwareDateTime()
    since = QueryDateTime()


@pytest.mark.parametrize(
    ("raw", "loaded"),
    [
        ("2026-11-26T10:00:00Z", datetime(2026, 11, 26, 10, 0, tzinfo=UTC)),
        ("2026-11-26T13:00:00+03:00", datetime(2026, 11, 26, 10, 0, tzinfo=UTC)),
        ("2026-11-26T10:00:00.250000+00:00", datetime(2026, 11, 26, 10, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_an_aware_datetime_is_loaded_as_utc(raw, loaded):
    value = MeetingSchema().load({"at": raw})["at"]

    assert value == loaded
    assert value.utcoffset() == timedelta(0)


def test_an_aware_datetime_refuses_a_time_without_an_offset():
    with pytest.raises(MarshmallowError) as error:
        MeetingSchema().load({"at": "2026-11-26T10:00:00"})

    assert error.value.messages == {"at": ["Must include a timezone offset, e.g. 2026-11-26T10:00:00Z."]}


@pytest.mark.parametrize("raw", ["2026-11-26 10:00", "2026-11-26T10:00Z", "2026-1-26T10:00:00Z", "2026-11-26T10:00:00+0300",
                                 "２０２６-11-26T10:00:00Z"])
def test_an_aware_datetime_is_rfc_3339_as_the_documents_date_time_format_says(raw):
    with pytest.raises(MarshmallowError):
        MeetingSchema().load({"at": raw})
    assert MeetingSchema().load({"at": "2026-11-26t10:00:00.123456789z"})["at"] == datetime(
        2026, 11, 26, 10, 0, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    "raw",
    [1764151200, "tomorrow", "", None, ["2026-11-26T10:00:00Z"],
     "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"],  # no UTC time for these two
)
def test_an_aware_datetime_refuses_what_is_not_an_iso_string_or_has_no_utc_time(raw):
    with pytest.raises(MarshmallowError):
        MeetingSchema().load({"at": raw})


def test_an_aware_datetime_is_written_in_utc_with_z():
    moscow = timezone(timedelta(hours=3))

    assert MeetingSchema().dump({"at": datetime(2026, 11, 26, 13, 0, tzinfo=moscow)}) == {"at": "2026-11-26T10:00:00Z"}


@pytest.mark.parametrize(
    ("raw", "loaded"),
    [
        ("2026-11-26", datetime(2026, 11, 26, tzinfo=UTC)),
        ("2026-11-26T10:30:00Z", datetime(2026, 11, 26, 10, 30, tzinfo=UTC)),
        ("2026-11-26T13:30:00+03:00", datetime(2026, 11, 26, 10, 30, tzinfo=UTC)),
    ],
)
def test_a_query_datetime_accepts_a_date_or_a_datetime(raw, loaded):
    assert MeetingSchema().load({"since": raw})["since"] == loaded


@pytest.mark.parametrize(
    "raw", ["2026-13-01", "yesterday", "26.11.2026", "", 20261126, "0001-01-01T00:00:00+05:00", "2026-11-26T10:30:00"]
)
def test_a_query_datetime_refuses_what_is_neither_a_date_nor_a_datetime(raw):
    with pytest.raises(MarshmallowError) as error:
        MeetingSchema().load({"since": raw})

    assert "since" in error.value.messages


class PriceSchema(Schema):
    amount = Money()


@pytest.mark.parametrize(
    ("raw", "loaded"),
    [
        ("1250.50", Decimal("1250.50")),
        ("1250.5", Decimal("1250.50")),
        ("1250", Decimal("1250.00")),
        ("0", Decimal("0.00")),
        ("0099.99", Decimal("99.99")),
        ("999999999999.99", Decimal("999999999999.99")),
    ],
)
def test_money_accepts_decimal_strings_with_at_most_two_places(raw, loaded):
    value = PriceSchema().load({"amount": raw})["amount"]

    assert value == loaded
    assert value.as_tuple().exponent == -2


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (1250.5, 'Must be a decimal string like "1250.50".'),
        (1250, 'Must be a decimal string like "1250.50".'),
        (True, 'Must be a decimal string like "1250.50".'),
        (None, "Field may not be null."),
        ("abc", 'Must be a decimal string like "1250.50".'),
        ("", 'Must be a decimal string like "1250.50".'),
        ("NaN", 'Must be a decimal string like "1250.50".'),
        ("Infinity", 'Must be a decimal string like "1250.50".'),
        ("-Infinity", 'Must be a decimal string like "1250.50".'),
        ("1e3", 'Must be a decimal string like "1250.50".'),
        ("1_000.00", 'Must be a decimal string like "1250.50".'),
        ("1.005", "At most two decimal places."),
        ("0.001", "At most two decimal places."),
        ("-1", "Must not be negative."),
        ("-0.01", "Must not be negative."),
        ("1000000000000.00", "Too large."),
    ],
)
def test_money_refuses_numbers_garbage_negative_amounts_and_extra_places(raw, message):
    with pytest.raises(MarshmallowError) as error:
        PriceSchema().load({"amount": raw})

    assert error.value.messages == {"amount": [message]}


@pytest.mark.parametrize(("value", "written"), [(Decimal("1250.5"), "1250.50"), (Decimal("7"), "7.00"), ("3.1", "3.10")])
def test_money_is_written_as_a_string_with_two_places(value, written):
    assert PriceSchema().dump({"amount": value}) == {"amount": written}


def test_an_id_is_a_canonical_uuid():
    class RefSchema(Schema):
        ref = Id()

    assert RefSchema().load({"ref": "6F1C2B4E-0D1A-4C3B-9E6F-1A2B3C4D5E6F"})["ref"] == ("6f1c2b4e-0d1a-4c3b-9e6f-1a2b3c4d5e6f")
    with pytest.raises(MarshmallowError):
        RefSchema().load({"ref": "not-a-uuid"})
    assert is_uuid("6f1c2b4e-0d1a-4c3b-9e6f-1a2b3c4d5e6f")
    assert not is_uuid(None)


def test_iso_writes_any_aware_datetime_in_utc_with_z():
    assert iso(datetime(2026, 1, 1, 3, 0, tzinfo=timezone(timedelta(hours=3)))) == "2026-01-01T00:00:00Z"


@pytest.mark.parametrize(("raw", "limit"), [({}, 50), ({"limit": "200"}, 200), ({"limit": "1"}, 1)])
def test_a_page_query_defaults_to_fifty_and_allows_up_to_two_hundred(raw, limit):
    assert PageQuerySchema().load(raw)["limit"] == limit


@pytest.mark.parametrize("limit", ["0", "201", "-1", "many"])
def test_a_page_query_refuses_a_limit_out_of_range(limit):
    with pytest.raises(MarshmallowError):
        PageQuerySchema().load({"limit": limit})


def test_load_or_raise_returns_the_loaded_data():
    assert load_or_raise(NoteSchema(), {"title": " hi "}) == {"title": "hi"}


def test_load_or_raise_raises_the_crm_validation_error_with_flat_fields():
    with pytest.raises(CrmValidationError) as error:
        load_or_raise(ClientCreateSchema(), {"kind": "alien", "name": "X", "phones": ["ok", 5]})

    assert error.value.status == 422
    assert set(error.value.fields) == {"kind", "phones.1"}
    assert all(isinstance(messages, list) for messages in error.value.fields.values())


@pytest.mark.parametrize("body", [None, [], ["a"], "text", 5])
def test_load_or_raise_refuses_a_body_that_is_not_an_object(body):
    with pytest.raises(CrmValidationError) as error:
        load_or_raise(NoteSchema(), body)

    assert error.value.fields == {"body": ["Must be a JSON object."]}


def test_load_or_raise_can_raise_another_crm_error_class():
    with pytest.raises(BadRequest) as error:
        load_or_raise(PageQuerySchema(), {"limit": "0"}, BadRequest)

    assert "limit" in error.value.fields


class RenameSchema(UpdateSchema):
    name = Text(10)


def test_an_update_needs_something_to_change_and_names_the_field_that_is_wrong():
    with pytest.raises(MarshmallowError) as empty:
        RenameSchema().load({})
    with pytest.raises(MarshmallowError) as wrong:
        RenameSchema().load({"name": 5})

    assert empty.value.messages == {"body": ["Nothing to change."]}
    assert list(wrong.value.messages) == ["name"]
    assert RenameSchema().load({"name": "Новое"}) == {"name": "Новое"}


@pytest.mark.parametrize("raw, loaded", [("0", 0), ("17", 17), ("5000", 5000), (0, 0), (5000, 5000)])
def test_a_query_integer_takes_decimal_digits_from_a_url_and_the_number_from_a_service(raw, loaded):
    from crm_common.contracts.imports import ImportErrorsQuerySchema

    assert ImportErrorsQuerySchema().load({"after": raw})["after"] == loaded


@pytest.mark.parametrize("raw", [" 1", "+1", "1_0", "١", True, 1.5, None])
def test_a_query_integer_refuses_anything_else(raw):
    from crm_common.contracts.imports import ImportErrorsQuerySchema

    with pytest.raises(MarshmallowError):
        ImportErrorsQuerySchema().load({"after": raw})
