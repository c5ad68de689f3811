"""The sales book: versioned scripts tied to stages, and the script a deal shows at its stage."""

import uuid

import pytest
from sqlalchemy import select

from crm_common.errors import Forbidden, ValidationError, VersionConflict
from deals import commands
from deals import repository as repo
from deals.exceptions import ScriptNotFound
from deals.models import ScriptVersion
from deals.schemas import script_version_out


def write(sales, caller=None, **fields) -> dict:
    raw = {"title": "Первый звонок", "body": "Здравствуйте! Меня зовут…", **fields}
    return sales.uow.call(commands.create_script, caller or sales.head, raw)


def rewrite(sales, script: dict, changes: dict, caller=None) -> dict:
    return sales.uow.call(commands.update_script, caller or sales.head, script["id"], changes)


def versions(sales, script: dict) -> list[ScriptVersion]:
    return sales.uow.read(
        lambda s: s.scalars(select(ScriptVersion).where(ScriptVersion.script_id == script["id"])
                            .order_by(ScriptVersion.version)).all()
    )


def test_a_new_script_is_version_one_of_the_callers_branch(sales):
    script = write(sales)

    assert uuid.UUID(script["id"])
    assert (script["branch_id"], script["title"], script["version"], script["stage_id"]) == (
        sales.north, "Первый звонок", 1, None)
    [first] = versions(sales, script)
    assert (first.version, first.title, first.body, first.author_id) == (1, script["title"], script["body"], sales.head.id)


def test_a_script_written_for_a_stage_is_what_deals_at_that_stage_show(sales):
    pipeline = sales.pipeline()
    stage = sales.stage(pipeline, "Новая")

    script = write(sales, stage_id=stage["id"])

    assert script["stage_id"] == stage["id"]
    assert sales.deal(pipeline)["stage"]["script"]["id"] == script["id"]
    assert sales.stored_stage(stage["id"]).script_id is None, "only the pipeline pins a script to a stage"


def test_a_newer_script_for_a_stage_replaces_the_older_one_unless_the_pipeline_pins_one(sales):
    pipeline = sales.pipeline()
    stage = sales.stage(pipeline, "Новая")
    write(sales, stage_id=stage["id"])

    second = write(sales, title="Повторный звонок", stage_id=stage["id"])

    assert sales.deal(pipeline)["stage"]["script"]["id"] == second["id"]


@pytest.mark.parametrize("caller", ["manager", "south_manager"])
def test_a_manager_may_not_write_or_change_scripts(sales, caller):
    script = write(sales)

    with pytest.raises(Forbidden):
        write(sales, caller=getattr(sales, caller))
    with pytest.raises(Forbidden):
        rewrite(sales, script, {"body": "Моя версия"}, caller=getattr(sales, caller))


def test_an_admin_writes_a_script_for_the_branch_they_name(sales):
    assert write(sales, caller=sales.admin, branch_id=sales.south)["branch_id"] == sales.south


def test_a_script_cannot_be_written_for_another_branchs_stage(sales):
    south = sales.pipeline(caller=sales.south_head)

    with pytest.raises(ValidationError) as error:
        write(sales, stage_id=south["stages"][0]["id"])

    assert list(error.value.fields) == ["stage_id"]


def test_a_script_cannot_be_written_for_a_removed_or_unknown_stage(sales):
    pipeline = sales.pipeline()
    talks = sales.stage(pipeline, "Переговоры")
    stages = [{k: s[k] for k in ("id", "name", "kind", "max_days")} for s in pipeline["stages"] if s["id"] != talks["id"]]
    sales.uow.call(commands.update_pipeline, sales.head, pipeline["id"], {"stages": stages})

    for stage_id in (talks["id"], str(uuid.uuid4())):
        with pytest.raises(ValidationError) as error:
            write(sales, stage_id=stage_id)
        assert list(error.value.fields) == ["stage_id"]


def test_a_script_cannot_be_moved_to_another_branchs_stage(sales):
    script = write(sales)
    south = sales.pipeline(caller=sales.south_head)

    with pytest.raises(ValidationError) as error:
        rewrite(sales, script, {"stage_id": south["stages"][0]["id"]})

    assert list(error.value.fields) == ["stage_id"]
    assert len(versions(sales, script)) == 1


def test_an_edit_made_on_a_stale_version_of_a_script_is_refused(sales):
    script = write(sales)
    rewrite(sales, script, {"body": "Правка коллеги"})

    with pytest.raises(VersionConflict) as error:
        sales.uow.call(commands.update_script, sales.head, script["id"], {"body": "Моя правка"}, 1)

    assert error.value.details == {"current_version": 2}
    assert [v.body for v in versions(sales, script)] == [script["body"], "Правка коллеги"]
    assert sales.uow.call(commands.update_script, sales.head, script["id"], {"body": "Моя правка"}, 2)["version"] == 3


def test_changing_a_script_makes_version_two_and_keeps_version_one(sales):
    script = write(sales)

    changed = rewrite(sales, script, {"body": "Добрый день! Удобно говорить?"})

    assert (changed["version"], changed["body"], changed["title"]) == (2, "Добрый день! Удобно говорить?", "Первый звонок")
    assert [(v.version, v.body) for v in versions(sales, script)] == [
        (1, "Здравствуйте! Меня зовут…"), (2, "Добрый день! Удобно говорить?"),
    ]
    listed = sales.uow.read(repo.script_versions, script["id"], None, 50, script_version_out.dump)
    assert [v["version"] for v in listed["items"]] == [2, 1]


@pytest.mark.parametrize("changes", [{"title": "Первый звонок"}, {"body": "Здравствуйте! Меня зовут…"}, {"stage_id": None}])
def test_a_script_change_that_changes_nothing_makes_no_version(sales, changes):
    script = write(sales)

    assert rewrite(sales, script, changes)["version"] == 1
    assert len(versions(sales, script)) == 1


def test_another_branch_cannot_find_a_script_to_change(sales):
    script = write(sales)

    with pytest.raises(ScriptNotFound):
        rewrite(sales, script, {"body": "Чужая версия"}, caller=sales.south_head)


def test_a_deal_shows_the_current_version_of_its_stages_script(sales):
    pipeline = sales.pipeline()
    stage = sales.stage(pipeline, "Новая")
    script = write(sales, stage_id=stage["id"])
    deal = sales.deal(pipeline)
    assert deal["stage"]["script"] == {"id": script["id"], "title": "Первый звонок", "body": script["body"], "version": 1}

    rewrite(sales, script, {"body": "Версия два"})

    assert sales.get(deal)["stage"]["script"] == {"id": script["id"], "title": "Первый звонок", "body": "Версия два",
                                                  "version": 2}


def test_a_script_chosen_for_the_stage_wins_over_one_merely_written_for_it(sales):
    chosen = write(sales, title="Выбранный")
    pipeline = sales.pipeline(stages=[{"name": "Новая", "kind": "open", "script_id": chosen["id"]},
                                      {"name": "Успех", "kind": "won"}, {"name": "Отказ", "kind": "lost"}])
    write(sales, title="Написанный для этапа", stage_id=pipeline["stages"][0]["id"])

    assert sales.deal(pipeline)["stage"]["script"]["title"] == "Выбранный"


def test_a_stage_without_a_chosen_script_shows_the_latest_written_for_it(sales):
    pipeline = sales.pipeline()
    stage = sales.stage(pipeline, "Переговоры")
    older = write(sales, title="Старый")
    newer = write(sales, title="Новый")
    rewrite(sales, older, {"stage_id": stage["id"]})
    rewrite(sales, newer, {"stage_id": stage["id"]})

    deal = sales.move(sales.deal(pipeline), stage)

    assert deal["stage"]["script"]["id"] == newer["id"]


def test_a_deal_at_a_stage_without_a_script_shows_none(sales):
    pipeline = sales.pipeline()
    write(sales, stage_id=sales.stage(pipeline, "Переговоры")["id"])

    assert sales.deal(pipeline)["stage"]["script"] is None


def test_a_script_moved_to_another_stage_is_shown_there(sales):
    pipeline = sales.pipeline()
    new, talks = sales.stage(pipeline, "Новая"), sales.stage(pipeline, "Переговоры")
    script = write(sales, stage_id=new["id"])

    rewrite(sales, script, {"stage_id": talks["id"]})

    assert sales.move(sales.deal(pipeline), talks)["stage"]["script"]["id"] == script["id"]


def test_a_script_moved_to_another_stage_is_no_longer_shown_at_the_stage_it_left(sales):
    pipeline = sales.pipeline()
    new, talks = sales.stage(pipeline, "Новая"), sales.stage(pipeline, "Переговоры")
    script = write(sales, stage_id=new["id"])

    rewrite(sales, script, {"stage_id": talks["id"]})

    assert sales.deal(pipeline)["stage"]["script"] is None
