"""The deals RPC contract: what a pipeline, a deal, a stage move and a deal query may look like."""

import uuid
from decimal import Decimal

import pytest

from crm_common.contracts.deals import (
    DealCreateSchema,
    DealQuerySchema,
    DealUpdateSchema,
    PipelineCreateSchema,
    PipelineUpdateSchema,
    StageMoveSchema,
)
from crm_common.errors import BadRequest, ValidationError
from crm_common.schemas import load_or_raise

OPEN = {"name": "Новая", "kind": "open"}
WON = {"name": "Успех", "kind": "won"}
LOST = {"name": "Отказ", "kind": "lost"}


def pipeline_errors(stages, schema=PipelineCreateSchema) -> dict:
    with pytest.raises(ValidationError) as error:
        load_or_raise(schema(), {"name": "Опт", "stages": stages})
    return error.value.fields


def test_a_pipeline_loads_its_stages_in_order_with_their_limits():
    data = load_or_raise(
        PipelineCreateSchema(),
        {"name": " Опт ", "stages": [{**OPEN, "max_days": 0.5}, {"name": "Встреча", "kind": "open", "max_days": 3}, WON, LOST]},
    )

    assert data["name"] == "Опт" and data["branch_id"] is None
    assert [(s["name"], s["kind"], s["max_days"]) for s in data["stages"]] == [
        ("Новая", "open", 0.5), ("Встреча", "open", 3.0), ("Успех", "won", None), ("Отказ", "lost", None),
    ]


@pytest.mark.parametrize(
    ("stages", "field"),
    [
        ([WON, OPEN, LOST], "stages"),
        ([LOST, OPEN, WON], "stages"),
        ([OPEN, LOST], "stages"),
        ([OPEN, WON], "stages"),
        ([OPEN], "stages"),
        ([], "stages"),
        ([OPEN, {"name": "новая", "kind": "open"}, WON, LOST], "stages"),
        ([OPEN, WON, LOST, {"name": "  УСПЕХ ", "kind": "won"}], "stages"),
        ([OPEN, {"name": "Счёт", "kind": "pending"}, WON, LOST], "stages.1.kind"),
        ([OPEN, {"name": " ", "kind": "open"}, WON, LOST], "stages.1.name"),
        ([OPEN, {**WON, "max_days": 2}, LOST], "stages.1.max_days"),
        ([OPEN, WON, {**LOST, "max_days": 1}], "stages.2.max_days"),
        ([{**OPEN, "max_days": 0}, WON, LOST], "stages.0.max_days"),
        ([{**OPEN, "max_days": -1}, WON, LOST], "stages.0.max_days"),
        ([{**OPEN, "max_days": 3651}, WON, LOST], "stages.0.max_days"),
        ([{**OPEN, "max_days": "2"}, WON, LOST], "stages.0.max_days"),
        ([{**OPEN, "max_days": True}, WON, LOST], "stages.0.max_days"),
        ([{**OPEN, "colour": "red"}, WON, LOST], "stages.0.colour"),
        ([{**OPEN, "script_id": "first-call"}, WON, LOST], "stages.0.script_id"),
        ([OPEN, WON, LOST] + [{"name": f"Шаг {n}", "kind": "open"} for n in range(28)], "stages"),
    ],
    ids=[
        "first stage won", "first stage lost", "no won stage", "no lost stage", "only one stage", "no stages",
        "names differ only in case", "names differ in case and spaces", "unknown kind", "blank name",
        "won stage timed", "lost stage timed", "zero days", "negative days", "ten years and a day",
        "days as a string", "days as a boolean", "unknown field", "script id not an id", "31 stages",
    ],
)
def test_a_pipeline_that_breaks_a_rule_is_refused_naming_the_field(stages, field):
    assert field in pipeline_errors(stages)


@pytest.mark.parametrize("max_days", [0.01, 0.5, 1, 3650])
def test_an_open_stage_may_be_timed_in_days_or_fractions_of_a_day(max_days):
    data = load_or_raise(PipelineCreateSchema(), {"name": "Опт", "stages": [{**OPEN, "max_days": max_days}, WON, LOST]})

    assert data["stages"][0]["max_days"] == max_days


def test_a_pipeline_may_have_several_won_and_lost_stages():
    stages = [OPEN, WON, {"name": "Частично", "kind": "won"}, LOST, {"name": "Пропал", "kind": "lost"}]

    assert len(load_or_raise(PipelineCreateSchema(), {"name": "Опт", "stages": stages})["stages"]) == 5


def test_a_pipeline_change_with_nothing_in_it_is_refused():
    with pytest.raises(ValidationError) as error:
        load_or_raise(PipelineUpdateSchema(), {})

    assert list(error.value.fields) == ["body"]


def test_a_pipeline_change_may_only_rename_it():
    assert load_or_raise(PipelineUpdateSchema(), {"name": "Розница"}) == {"name": "Розница"}


def test_a_pipeline_change_follows_the_same_stage_rules():
    assert "stages" in pipeline_errors([WON, OPEN, LOST], PipelineUpdateSchema)


def test_a_pipeline_change_naming_one_stage_twice_is_refused():
    stage_id = str(uuid.uuid4())

    fields = pipeline_errors([{**OPEN, "id": stage_id}, {"name": "Встреча", "kind": "open", "id": stage_id}, WON, LOST],
                             PipelineUpdateSchema)

    assert "stages" in fields


def deal_input(**fields) -> dict:
    return {"client_id": str(uuid.uuid4()), "pipeline_id": str(uuid.uuid4()), "title": "Поставка", "amount": "1250.50",
            "currency": "RUB", **fields}


@pytest.mark.parametrize(
    ("amount", "exact"),
    [
        ("1250.50", "1250.50"),
        ("1250.5", "1250.50"),
        ("7", "7.00"),
        ("0.01", "0.01"),
        ("0", "0.00"),
        ("019.99", "19.99"),
        ("999999999999.99", "999999999999.99"),
    ],
)
def test_an_amount_is_an_exact_decimal_with_two_places(amount, exact):
    loaded = load_or_raise(DealCreateSchema(), deal_input(amount=amount))["amount"]

    assert isinstance(loaded, Decimal) and str(loaded) == exact


@pytest.mark.parametrize(
    "amount",
    [1250.5, 1250, "12.345", "-1.00", "1000000000000.00", "1e3", "NaN", "Infinity", "", "12,50", "1 250.50", None, True],
)
def test_an_amount_that_is_not_an_exact_non_negative_decimal_string_is_refused(amount):
    with pytest.raises(ValidationError) as error:
        load_or_raise(DealCreateSchema(), deal_input(amount=amount))

    assert list(error.value.fields) == ["amount"]


@pytest.mark.parametrize("currency", ["RUB", "USD", "EUR", "KZT", "CNY"])
def test_a_currency_is_an_iso_4217_code(currency):
    assert load_or_raise(DealCreateSchema(), deal_input(currency=currency))["currency"] == currency


@pytest.mark.parametrize("currency", ["rub", "Rub", "RUR1", "RU", "ABC", "QQQ", "₽", 643, ""])
def test_a_currency_that_is_not_an_iso_4217_code_is_refused(currency):
    with pytest.raises(ValidationError) as error:
        load_or_raise(DealCreateSchema(), deal_input(currency=currency))

    assert list(error.value.fields) == ["currency"]


@pytest.mark.parametrize("missing", ["client_id", "pipeline_id", "title", "amount", "currency"])
def test_a_new_deal_needs_its_client_pipeline_title_amount_and_currency(missing):
    raw = deal_input()
    del raw[missing]

    with pytest.raises(ValidationError) as error:
        load_or_raise(DealCreateSchema(), raw)

    assert list(error.value.fields) == [missing]


def test_a_new_deal_has_no_owner_unless_one_is_named():
    assert load_or_raise(DealCreateSchema(), deal_input())["owner_id"] is None


@pytest.mark.parametrize(("raw", "field"), [({}, "body"), ({"stage_id": "x"}, "stage_id"), ({"status": "won"}, "status")])
def test_a_deal_change_must_change_a_known_field(raw, field):
    with pytest.raises(ValidationError) as error:
        load_or_raise(DealUpdateSchema(), raw)

    assert field in error.value.fields


def test_a_stage_move_names_a_stage_and_has_no_reason_by_default():
    stage_id = str(uuid.uuid4())

    assert load_or_raise(StageMoveSchema(), {"stage_id": stage_id}) == {"stage_id": stage_id, "lost_reason": None}


def test_a_lost_reason_is_trimmed():
    data = load_or_raise(StageMoveSchema(), {"stage_id": str(uuid.uuid4()), "lost_reason": "  Дорого "})

    assert data["lost_reason"] == "Дорого"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({}, "stage_id"),
        ({"stage_id": "Отказ"}, "stage_id"),
        ({"stage_id": str(uuid.uuid4()), "lost_reason": "   "}, "lost_reason"),
        ({"stage_id": str(uuid.uuid4()), "lost_reason": "x" * 501}, "lost_reason"),
        ({"stage_id": str(uuid.uuid4()), "reason": "Дорого"}, "reason"),
    ],
)
def test_a_malformed_stage_move_is_refused_naming_the_field(raw, field):
    with pytest.raises(ValidationError) as error:
        load_or_raise(StageMoveSchema(), raw)

    assert list(error.value.fields) == [field]


@pytest.mark.parametrize(("text", "stuck"), [("true", True), ("false", False)])
def test_a_deal_query_reads_stuck_from_the_query_string(text, stuck):
    assert load_or_raise(DealQuerySchema(), {"stuck": text})["stuck"] is stuck


@pytest.mark.parametrize("text", ["1", "0", "yes", "True", ""])
def test_a_query_boolean_is_only_true_or_false_as_the_document_says(text):
    with pytest.raises(BadRequest):
        load_or_raise(DealQuerySchema(), {"stuck": text}, BadRequest)


@pytest.mark.parametrize("amount", [" 19.99 ", "-0", "+5", "1e3", "1_000", "١٢"])
def test_an_amount_outside_the_documents_pattern_is_refused(amount):
    with pytest.raises(ValidationError):
        load_or_raise(DealCreateSchema(), deal_input(amount=amount))


def test_a_deal_query_without_filters_lists_the_newest_first_fifty_at_a_time():
    assert load_or_raise(DealQuerySchema(), {}) == {"limit": 50, "cursor": None, "sort": "-created_at"}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"status": "closed"}, "status"),
        ({"stage_id": "Новая"}, "stage_id"),
        ({"owner_id": "me"}, "owner_id"),
        ({"sort": "amount"}, "sort"),
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"stuck": "maybe"}, "stuck"),
        ({"stage": "Новая"}, "stage"),
    ],
)
def test_a_malformed_deal_query_is_refused_naming_the_parameter(query, field):
    with pytest.raises(ValidationError) as error:
        load_or_raise(DealQuerySchema(), query)

    assert list(error.value.fields) == [field]
