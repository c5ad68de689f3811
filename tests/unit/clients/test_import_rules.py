"""The import's row rules: the checks of POST /clients applied to a mapped row, and what a duplicate becomes."""

import pytest

from clients.commands import create_client
from clients.import_rules import Match, RowFields, check_row, decide, find_match, merge_row
from crm_common.caller import Caller
from crm_common.contracts.clients import ClientCreateSchema
from crm_common.errors import ValidationError
from crm_common.schemas import load_or_raise


def row(**data):
    return {"name": "Иван Петров", **data}


def errors_of(data):
    check = check_row(data, "RU")
    assert check.fields is None
    return {e["field"]: e["message"] for e in check.errors}


def test_a_valid_row_becomes_a_client_with_normalised_contacts_and_tags():
    check = check_row(row(phones=[[0, "8 916 123-45-67"], [1, "+7 (916) 123 45 67"]], emails=[[0, " Ivan@Mail.RU "]],
                          tags=[[0, "VIP"], [0, "опт "]], source=" выставка ", custom_fields={"inn": "7701234567", "x": " "},
                          kind="Company", owner_id="u-1", owner_email="olga@firm.ru"), "RU")

    assert check.errors == []
    assert check.fields == RowFields(
        kind="company", name="Иван Петров", phones=["+79161234567"], emails=["ivan@mail.ru"], source="выставка",
        tags=["vip", "опт"], custom_fields={"inn": "7701234567"}, owner_id="u-1",
    )
    assert check.fields.contacts == [("phone", "+79161234567"), ("email", "ivan@mail.ru")]


def test_a_row_without_a_kind_column_is_a_person():
    assert check_row(row(), "RU").fields.kind == "person"


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        ({"name": "   "}, "name", "Missing"),
        ({"name": None}, "name", "Missing"),
        (row(name="Я" * 201), "name", "Longer than 200"),
        (row(kind="robot"), "kind", "person, company"),
        (row(phones=[[0, "+7 916 000-00-00"], [1, "12345"]]), "phones.1", "«12345»"),
        (row(phones=[[0, "8" * 41]]), "phones.0", "Longer than 40"),
        (row(emails=[[0, "ivan@"]]), "emails.0", "«ivan@»"),
        (row(source="s" * 65), "source", "Longer than 64"),
        (row(tags=[[1, "t" * 51]]), "tags.1", "Longer than 50"),
        (row(custom_fields={"inn": "9" * 1001}), "custom_fields.inn", "Longer than 1000"),
        (row(owner_email="nobody@firm.ru", owner_id=None), "owner_email", "nobody@firm.ru"),
        (row(errors=[{"field": "row", "message": "The row has 5 cells; the header has 3."}]), "row", "5 cells"),
    ],
)
def test_a_row_breaking_a_rule_is_refused_naming_the_field_and_the_value(data, field, fragment):
    errors = errors_of(data)

    assert field in errors and fragment in errors[field]


def test_every_problem_of_a_row_is_reported_not_just_the_first():
    errors = errors_of({"name": "", "phones": [[0, "abc"]], "emails": [[0, "x@"]]})

    assert set(errors) == {"name", "phones.0", "emails.0"}


def test_more_phones_than_a_client_may_have_are_refused():
    phones = [[i, f"+7 916 000-00-{i:02d}"] for i in range(11)]

    assert "phones" in errors_of(row(phones=phones))


@pytest.mark.parametrize(
    ("name", "value", "limit"),
    [("name", "Я", 200), ("source", "s", 64)],
)
def test_the_length_limits_are_those_of_post_clients(name, value, limit):
    schema = ClientCreateSchema()
    for length, accepted in ((limit, True), (limit + 1, False)):
        body = {"kind": "person", "name": "Иван", name: value * length}
        try:
            load_or_raise(schema, body)
            by_schema = True
        except ValidationError:
            by_schema = False
        by_import = check_row(body, "RU").fields is not None
        assert by_schema == by_import == accepted


@pytest.mark.parametrize(
    ("name", "value"),
    [("phones", "+7 916 123-45-67" + " " * 30), ("emails", "a" * 250 + "@x.ru"), ("emails", "ivan@"), ("phones", "12345")],
)
def test_a_contact_post_clients_refuses_is_refused_by_the_import_too(name, value):
    with pytest.raises(ValidationError):  # refused before the database is asked anything
        create_client(None, Caller("u", "head", "b"), {"kind": "person", "name": "Иван", name: [value + "x"]}, None, "RU")
    assert f"{name}.0" in errors_of(row(**{name: [[0, value + "x"]]}))


def test_a_contact_of_the_base_wins_over_an_earlier_row_of_the_file():
    contacts = [("phone", "+79161234567"), ("email", "a@b.ru")]

    assert find_match(contacts, {("email", "a@b.ru"): "c-1"}, {("phone", "+79161234567"): (5, "c-2")}) == Match(
        "c-1", None, "email", "a@b.ru")
    assert find_match(contacts, {}, {("phone", "+79161234567"): (5, None)}).describe() == (
        "duplicate of row 5 (same phone +79161234567)")
    assert find_match(contacts, {}, {}) is None


@pytest.mark.parametrize(
    ("on_duplicate", "outcome"), [("skip", "skipped"), ("merge", "merged"), ("create_anyway", "created")]
)
def test_a_duplicate_row_becomes_what_on_duplicate_says(on_duplicate, outcome):
    assert decide(on_duplicate, Match("c-1", None, "phone", "+79161234567")) == outcome
    assert decide(on_duplicate, None) == "created"


def test_merging_a_row_adds_its_new_contacts_and_tags_and_fills_what_the_client_lacks():
    current = {"phones": ["+79161234567"], "emails": [], "tags": ["vip"], "source": "сайт",
               "custom_fields": {"inn": "1"}}
    fields = RowFields("person", "Иван", ["+79161234567", "+74950000000"], ["a@b.ru"], "выставка", ["vip", "опт"],
                       {"inn": "2", "city": "Тверь"}, None)

    changed = merge_row(current, fields)

    assert changed == ["phones", "emails", "tags", "custom_fields"]
    assert current == {"phones": ["+79161234567", "+74950000000"], "emails": ["a@b.ru"], "tags": ["vip", "опт"],
                       "source": "сайт", "custom_fields": {"inn": "1", "city": "Тверь"}}


@pytest.mark.parametrize(("cell", "kind"), [("Компания", "company"), ("физлицо", "person"), ("COMPANY", "company")])
def test_a_kind_column_may_say_it_in_russian(cell, kind):
    assert check_row(row(kind=cell), "RU").fields.kind == kind


def test_malformed_cells_in_a_row_are_left_out_rather_than_failing_the_batch():
    check = check_row(row(phones=[[0, "+7 916 123-45-67"], "oops", [1]], tags="vip", custom_fields=["x"]), "RU")

    assert check.fields.phones == ["+79161234567"] and check.fields.tags == [] and check.fields.custom_fields == {}
