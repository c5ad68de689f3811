"""The deals service's export for rebuilding read models: deals as their events carry them, with their history."""

import pytest

from crm_common.errors import ValidationError
from deals import exports, views


def test_an_exported_deal_is_its_event_snapshot_with_its_whole_stage_history(sales):
    pipeline = sales.pipeline()
    deals = [sales.deal(pipeline, amount=amount) for amount in ("10.50", "0", "999.99")]
    sales.move(deals[0], sales.stage(pipeline, "Переговоры"))
    moved = sales.move(deals[0], sales.stage(pipeline, "Успех"))

    page = sales.uow.read(exports.export, "deals", None, 500)

    by_id = {item["id"]: item for item in page["items"]}
    assert page["total"] == 3 and page["next_cursor"] is None
    item = by_id[moved["id"]]
    assert {k: v for k, v in item.items() if k != "history"} == views.snapshot(moved)
    history = sales.history(moved)
    assert [(h["seq"], h["stage_id"], h["stage_kind"]) for h in item["history"]] == [
        (1, history[0]["stage_id"], "open"), (2, history[1]["stage_id"], "open"), (3, history[2]["stage_id"], "won")]
    positions = [sales.stage(pipeline, name)["position"] for name in ("Новая", "Переговоры", "Успех")]
    assert [h["position"] for h in item["history"]] == positions
    assert item["history"][0]["time_spent_s"] == history[0]["time_spent_s"]
    assert by_id[deals[1]["id"]]["amount"] == "0.00"


def test_an_export_is_read_a_page_at_a_time_in_id_order(sales):
    pipeline = sales.pipeline()
    created = sorted(sales.deal(pipeline)["id"] for _ in range(5))

    first = sales.uow.read(exports.export, "deals", None, 2)
    second = sales.uow.read(exports.export, "deals", first["next_cursor"], 2)
    third = sales.uow.read(exports.export, "deals", second["next_cursor"], 2)

    assert [i["id"] for i in first["items"] + second["items"] + third["items"]] == created
    assert third["next_cursor"] is None and "total" not in second


@pytest.mark.parametrize(("kind", "limit", "field"), [("stages", 10, "kind"), ("deals", 0, "limit"), ("deals", 10**6, "limit")])
def test_an_unknown_kind_or_a_limit_out_of_range_is_refused(sales, kind, limit, field):
    with pytest.raises(ValidationError) as error:
        sales.uow.read(exports.export, kind, None, limit)

    assert field in error.value.fields
