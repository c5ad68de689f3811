"""Pipelines: who may build them, how they change, and that changing them never rewrites a deal's history."""

import uuid
from datetime import timedelta

import pytest

from crm_common.errors import Conflict, Forbidden, ValidationError, VersionConflict
from crm_common.events import EVENTS
from deals import commands, views
from deals.exceptions import PipelineNotFound
from tests.unit.deals.conftest import STAGES


def as_wanted(stage: dict, **changes) -> dict:
    """A stage of a read pipeline as it goes back in a change: the id and the fields a head edits."""
    return {"id": stage["id"], "name": stage["name"], "kind": stage["kind"], "max_days": stage["max_days"],
            "script_id": stage["script_id"], **changes}


def change(sales, pipeline, changes, caller=None, expected_version=None):
    return sales.uow.call(commands.update_pipeline, caller or sales.head, pipeline["id"], changes, expected_version)


def read_pipeline(sales, pipeline, caller=None):
    return sales.uow.read(
        lambda s: views.dump_pipeline(s, commands.require_pipeline(s, caller or sales.head, pipeline["id"]))
    )


def script(sales, caller=None, **fields):
    return sales.uow.call(commands.create_script, caller or sales.head, {"title": "Первый звонок", "body": "Здравствуйте!",
                                                                          **fields})


def test_a_head_creates_a_pipeline_of_their_branch_with_ordered_stages(sales):
    pipeline = sales.pipeline()

    assert uuid.UUID(pipeline["id"])
    assert (pipeline["name"], pipeline["branch_id"], pipeline["version"]) == ("Опт", sales.north, 1)
    assert [(s["name"], s["kind"], s["position"], s["max_days"]) for s in pipeline["stages"]] == [
        ("Новая", "open", 0, 2.0), ("Переговоры", "open", 1, None), ("Договор", "open", 2, 0.5),
        ("Успех", "won", 3, None), ("Отказ", "lost", 4, None),
    ]
    assert all(uuid.UUID(s["id"]) and s["script_id"] is None for s in pipeline["stages"])


def test_creating_a_pipeline_emits_pipeline_created_with_its_stages_in_order(sales):
    pipeline = sales.uow.call(commands.create_pipeline, sales.head, {"name": "Опт", "stages": [dict(s) for s in STAGES]})

    [(event_type, payload)] = sales.uow.events
    assert event_type == "pipeline_created"
    assert EVENTS["pipeline_created"]().validate(payload) == {}
    assert payload["pipeline"] == pipeline
    assert [s["position"] for s in payload["pipeline"]["stages"]] == list(range(len(STAGES)))


def test_a_manager_may_not_create_a_pipeline(sales):
    with pytest.raises(Forbidden):
        sales.pipeline(caller=sales.manager)

    assert sales.uow.read(views.list_pipelines, sales.admin, {"limit": 50})["items"] == []


def test_an_admin_creates_a_pipeline_in_the_branch_they_name(sales):
    assert sales.pipeline(caller=sales.admin, branch_id=sales.south)["branch_id"] == sales.south


def test_an_admin_must_name_the_branch_of_a_pipeline(sales):
    with pytest.raises(ValidationError) as error:
        sales.pipeline(caller=sales.admin)

    assert list(error.value.fields) == ["branch_id"]


def test_a_head_may_not_create_a_pipeline_in_another_branch(sales):
    with pytest.raises(Forbidden):
        sales.pipeline(branch_id=sales.south)


def test_a_stage_may_start_with_a_script_of_the_branch(sales):
    first_call = script(sales)

    pipeline = sales.pipeline(stages=[{"name": "Новая", "kind": "open", "script_id": first_call["id"]},
                                      {"name": "Успех", "kind": "won"}, {"name": "Отказ", "kind": "lost"}])

    assert pipeline["stages"][0]["script_id"] == first_call["id"]


@pytest.mark.parametrize("whose", ["another branch", "nobody"])
def test_a_stage_may_not_name_a_script_the_branch_does_not_have(sales, whose):
    script_id = script(sales, caller=sales.south_head)["id"] if whose == "another branch" else str(uuid.uuid4())
    stages = [{"name": "Новая", "kind": "open"}, {"name": "Счёт", "kind": "open", "script_id": script_id},
              {"name": "Успех", "kind": "won"}, {"name": "Отказ", "kind": "lost"}]

    with pytest.raises(ValidationError) as error:
        sales.pipeline(stages=stages)

    assert list(error.value.fields) == ["stages.1.script_id"]


def test_a_pipeline_is_seen_by_its_branch_and_by_an_admin_only(sales):
    pipeline = sales.pipeline()

    for caller in (sales.head, sales.manager, sales.admin):
        assert sales.uow.read(commands.require_pipeline, caller, pipeline["id"]).id == pipeline["id"]
    for caller in (sales.south_head, sales.south_manager):
        with pytest.raises(PipelineNotFound):
            sales.uow.read(commands.require_pipeline, caller, pipeline["id"])


def test_listing_pipelines_shows_the_branchs_own_with_their_stages(sales):
    north = sales.pipeline()
    south = sales.pipeline(caller=sales.south_head, name="Юг")

    listed = sales.uow.read(views.list_pipelines, sales.manager, {"limit": 50})["items"]
    everything = sales.uow.read(views.list_pipelines, sales.admin, {"limit": 50})["items"]

    assert listed == [north]
    assert {p["id"] for p in everything} == {north["id"], south["id"]}


def test_renaming_a_pipeline_and_a_stage_keeps_the_names_deals_saw_in_their_history(sales):
    pipeline = sales.pipeline()
    deal = sales.deal(pipeline)
    stages = [as_wanted(s) for s in pipeline["stages"]]
    stages[0]["name"] = "Входящая"

    changed = change(sales, pipeline, {"name": "Опт и розница", "stages": stages})

    assert changed["name"] == "Опт и розница"
    assert changed["stages"][0]["name"] == "Входящая" and changed["stages"][0]["id"] == pipeline["stages"][0]["id"]
    assert sales.get(deal)["stage"]["name"] == "Входящая"
    assert [visit["stage_name"] for visit in sales.history(deal)] == ["Новая"]


@pytest.mark.parametrize("what", ["name", "stages", "name and stages"])
def test_one_change_of_a_pipeline_moves_its_version_on_by_one(sales, what):
    pipeline = sales.pipeline()
    changes = {}
    if "name" in what:
        changes["name"] = "Опт и розница"
    if "stages" in what:
        changes["stages"] = [as_wanted(s, max_days=1) if s["kind"] == "open" else as_wanted(s) for s in pipeline["stages"]]

    changed = change(sales, pipeline, changes, expected_version=1)

    assert changed["version"] == 2
    assert read_pipeline(sales, pipeline)["version"] == 2


def test_a_pipeline_change_with_a_stale_version_is_refused(sales):
    pipeline = sales.pipeline()
    change(sales, pipeline, {"name": "Розница"})

    with pytest.raises(VersionConflict) as error:
        change(sales, pipeline, {"name": "Опт"}, expected_version=1)

    assert error.value.details == {"current_version": 2}
    assert sales.uow.read(commands.require_pipeline, sales.head, pipeline["id"]).name == "Розница"


def test_a_manager_may_not_change_a_pipeline(sales):
    pipeline = sales.pipeline()

    with pytest.raises(Forbidden):
        change(sales, pipeline, {"name": "Моя воронка"}, caller=sales.manager)


def test_another_branchs_head_cannot_find_the_pipeline_to_change(sales):
    pipeline = sales.pipeline()

    with pytest.raises(PipelineNotFound):
        change(sales, pipeline, {"name": "Чужая"}, caller=sales.south_head)


def test_retiming_a_stage_gives_its_open_deals_a_due_time_counted_from_when_they_entered(sales):
    pipeline = sales.pipeline()
    early, late = sales.deal(pipeline), sales.deal(pipeline)
    sales.backdate(early, 3)
    entered = {d["id"]: sales.stored(d).stage_entered_at for d in (early, late)}
    stages = [as_wanted(s) for s in pipeline["stages"]]
    stages[0]["max_days"] = 0.25

    change(sales, pipeline, {"stages": stages})

    for deal in (early, late):
        assert sales.stored(deal).stage_due_at == entered[deal["id"]] + timedelta(hours=6)
    assert sales.get(early)["stuck"] is True and sales.get(late)["stuck"] is False


def test_removing_the_time_limit_of_a_stage_unsticks_its_deals(sales):
    pipeline = sales.pipeline()
    deal = sales.deal(pipeline)
    sales.backdate(deal, 3)
    stages = [as_wanted(s) for s in pipeline["stages"]]
    stages[0]["max_days"] = None

    change(sales, pipeline, {"stages": stages})

    assert sales.stored(deal).stage_due_at is None
    assert sales.get(deal)["stuck"] is False


def test_timing_an_untimed_stage_makes_its_deals_due(sales):
    pipeline = sales.pipeline()
    deal = sales.move(sales.deal(pipeline), sales.stage(pipeline, "Переговоры"))
    entered = sales.stored(deal).stage_entered_at
    stages = [as_wanted(s) for s in pipeline["stages"]]
    stages[1]["max_days"] = 1.5

    change(sales, pipeline, {"stages": stages})

    assert sales.stored(deal).stage_due_at == entered + timedelta(hours=36)


def test_reordering_and_adding_stages_makes_new_deals_start_at_the_new_first_stage(sales):
    pipeline = sales.pipeline()
    old = {s["name"]: as_wanted(s) for s in pipeline["stages"]}
    stages = [{"name": "Заявка", "kind": "open", "max_days": 1}, old["Переговоры"], old["Новая"], old["Договор"],
              old["Успех"], old["Отказ"]]

    changed = change(sales, pipeline, {"stages": stages})

    assert [(s["name"], s["position"]) for s in changed["stages"]] == [
        ("Заявка", 0), ("Переговоры", 1), ("Новая", 2), ("Договор", 3), ("Успех", 4), ("Отказ", 5),
    ]
    deal = sales.deal(pipeline)
    assert deal["stage_id"] == changed["stages"][0]["id"] and deal["stage"]["name"] == "Заявка"


def test_a_stage_with_deals_cannot_be_removed_and_the_pipeline_stays_as_it_was(sales):
    pipeline = sales.pipeline()
    deal = sales.deal(pipeline)
    stages = [as_wanted(s) for s in pipeline["stages"][1:]]

    with pytest.raises(Conflict) as error:
        change(sales, pipeline, {"name": "Без новых", "stages": stages})

    assert error.value.details == {"stage_id": deal["stage_id"], "deals": 1}
    assert read_pipeline(sales, pipeline) == pipeline


def test_a_stage_holding_only_closed_deals_cannot_be_removed_either(sales):
    pipeline = sales.pipeline()
    sales.move(sales.deal(pipeline), sales.stage(pipeline, "Успех"))
    stages = [as_wanted(s) for s in pipeline["stages"]]
    stages.insert(4, {"name": "Оплачено", "kind": "won"})
    del stages[3]

    with pytest.raises(Conflict):
        change(sales, pipeline, {"stages": stages})


def test_the_kind_of_a_stage_with_deals_cannot_change(sales):
    pipeline = sales.pipeline()
    sales.deal(pipeline)
    stages = [as_wanted(s) for s in pipeline["stages"]]
    stages.insert(0, {"name": "Заявка", "kind": "open"})
    stages[1] = as_wanted(pipeline["stages"][0], kind="lost", max_days=None)

    with pytest.raises(Conflict) as error:
        change(sales, pipeline, {"stages": stages})

    assert list(error.value.fields) == ["stages.1.kind"]


def test_a_removed_stage_stays_in_the_history_of_deals_that_passed_through_it(sales):
    pipeline = sales.pipeline()
    talks = sales.stage(pipeline, "Переговоры")
    deal = sales.deal(pipeline)
    sales.move(deal, talks)
    deal = sales.move(deal, sales.stage(pipeline, "Договор"))
    stages = [as_wanted(s) for s in pipeline["stages"] if s["name"] != "Переговоры"]

    changed = change(sales, pipeline, {"stages": stages})

    assert "Переговоры" not in [s["name"] for s in changed["stages"]]
    assert [s["position"] for s in changed["stages"]] == [0, 1, 2, 3]
    assert sales.stored_stage(talks["id"]).removed_at is not None
    assert [(v["stage_id"], v["stage_name"]) for v in sales.history(deal)][1] == (talks["id"], "Переговоры")
    with pytest.raises(ValidationError) as error:
        sales.move(deal, talks)
    assert list(error.value.fields) == ["stage_id"]


def test_a_removed_stage_cannot_be_named_again_in_a_later_change(sales):
    pipeline = sales.pipeline()
    talks = sales.stage(pipeline, "Переговоры")
    change(sales, pipeline, {"stages": [as_wanted(s) for s in pipeline["stages"] if s["id"] != talks["id"]]})

    with pytest.raises(ValidationError) as error:
        change(sales, pipeline, {"stages": [as_wanted(s) for s in pipeline["stages"]]})

    assert list(error.value.fields) == ["stages.1.id"]


def test_a_changed_stage_may_point_at_a_script_of_the_branch_only(sales):
    pipeline = sales.pipeline()
    foreign = script(sales, caller=sales.south_head)
    stages = [as_wanted(s) for s in pipeline["stages"]]
    stages[2]["script_id"] = foreign["id"]

    with pytest.raises(ValidationError) as error:
        change(sales, pipeline, {"stages": stages})

    assert list(error.value.fields) == ["stages.2.script_id"]
