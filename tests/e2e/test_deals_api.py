"""The sales process over HTTP: pipelines, deals through their stages, history, stuck deals, scripts."""

import eventlet
import pytest

from crm_common.testing.fixtures import poll
from crm_common.testing.system import phone_number, unique

STAGES = [
    {"name": "Новая заявка", "kind": "open", "max_days": 1},
    {"name": "КП отправлено", "kind": "open", "max_days": 2.5},
    {"name": "Переговоры", "kind": "open"},
    {"name": "Оплачено", "kind": "won"},
    {"name": "Отказ", "kind": "lost"},
]


def pipeline_of(head, stages=STAGES):
    return head.ok("POST", "/pipelines", {"name": unique("Воронка "), "stages": stages}, status=201)


def client_of(api):
    return api.ok("POST", "/clients", {"kind": "company", "name": unique("ООО "), "phones": [phone_number()]},
                  status=201)


def deal_of(api, client, pipeline, **extra):
    body = {"client_id": client["id"], "pipeline_id": pipeline["id"], "title": "Поставка", "amount": "1250.50",
            "currency": "RUB", **extra}
    return api.ok("POST", "/deals", body, status=201)


@pytest.fixture(scope="module")
def pipeline(world):
    return pipeline_of(world.north.head)


def stage(pipeline, name):
    return next(s for s in pipeline["stages"] if s["name"] == name)


def test_a_deal_goes_through_lost_reopened_and_won_with_an_exact_history(world, pipeline):
    manager = world.north.managers[0]
    client = client_of(manager)
    deal = deal_of(manager, client, pipeline)
    assert deal["stage_id"] == pipeline["stages"][0]["id"] and deal["status"] == "open"
    assert deal["amount"] == "1250.50" and deal["owner_id"] == manager.me["id"]
    route = [("КП отправлено", None, "open"), ("Отказ", "Дорого", "lost"), ("Переговоры", None, "open"),
             ("Оплачено", None, "won")]
    for name, reason, status in route:
        body = {"stage_id": stage(pipeline, name)["id"]}
        if reason:
            body["lost_reason"] = reason
        deal = manager.ok("POST", f"/deals/{deal['id']}/stage", body)
        assert deal["status"] == status and deal["stage"]["name"] == name
    assert deal["closed_at"] is not None and deal["lost_reason"] is None

    history = manager.ok("GET", f"/deals/{deal['id']}/history")["items"]
    assert [(h["stage_name"], h["stage_kind"], h["lost_reason"]) for h in history] == [
        ("Новая заявка", "open", None), ("КП отправлено", "open", None), ("Отказ", "lost", "Дорого"),
        ("Переговоры", "open", None), ("Оплачено", "won", None),
    ]
    for before, after in zip(history, history[1:]):
        assert before["exited_at"] == after["entered_at"]
        assert after["from_stage_id"] == before["stage_id"]
        assert before["time_spent_s"] >= 0
    assert history[-1]["exited_at"] is None and history[-1]["time_spent_s"] is None
    assert {h["moved_by"] for h in history} == {manager.me["id"]}

    expected = ["deal_created", "deal_stage_changed", "deal_lost", "deal_reopened", "deal_won"]

    def deal_events():
        entries = manager.ok("GET", f"/clients/{client['id']}/timeline?limit=200")["items"]
        kinds = [e["type"] for e in reversed(entries) if e["kind"] == "deal"]
        return kinds if set(expected) <= set(kinds) else None

    kinds = poll(deal_events, message="the deal's events on the client timeline")
    assert kinds.count("deal_stage_changed") == 4 and kinds.count("deal_lost") == 1


def test_losing_a_deal_needs_a_reason_and_a_reason_is_only_for_losing(world, pipeline):
    head = world.north.head
    deal = deal_of(head, client_of(head), pipeline)
    lost = stage(pipeline, "Отказ")["id"]
    response = head.post(f"/deals/{deal['id']}/stage", json={"stage_id": lost})
    assert response.status_code == 422 and "lost_reason" in response.json()["error"]["fields"]
    response = head.post(f"/deals/{deal['id']}/stage", json={"stage_id": stage(pipeline, "Оплачено")["id"],
                                                             "lost_reason": "?"})
    assert response.status_code == 422 and "lost_reason" in response.json()["error"]["fields"]


def test_a_stuck_deal_is_raised_once_for_each_time_it_enters_the_stage(world):
    head = world.north.head
    quick = pipeline_of(head, [{"name": "Звонок", "kind": "open", "max_days": 1 / 86400},
                               {"name": "Встреча", "kind": "open", "max_days": 30},
                               {"name": "Успех", "kind": "won"}, {"name": "Отказ", "kind": "lost"}])
    client = client_of(head)
    deal = deal_of(head, client, quick)

    def stuck_events(client_id):
        entries = head.ok("GET", f"/clients/{client_id}/timeline?limit=200")["items"]
        return [e for e in entries if e["type"] == "deal_stuck"]

    poll(lambda: stuck_events(client["id"]), timeout=15, message="deal_stuck")
    listed = head.ok("GET", f"/deals?stuck=true&pipeline_id={quick['id']}")["items"]
    assert [d["id"] for d in listed] == [deal["id"]] and listed[0]["stuck"] is True
    # a later deal getting stuck proves the scanner ran again since; the first is still raised only once
    later_client = client_of(head)
    deal_of(head, later_client, quick)
    poll(lambda: stuck_events(later_client["id"]), timeout=15, message="the later deal's deal_stuck")
    assert len(stuck_events(client["id"])) == 1

    moved = head.ok("POST", f"/deals/{deal['id']}/stage", {"stage_id": quick["stages"][1]["id"]})
    assert moved["stuck"] is False
    assert deal["id"] not in {d["id"] for d in head.ok("GET", f"/deals?stuck=true&pipeline_id={quick['id']}")["items"]}
    head.ok("POST", f"/deals/{deal['id']}/stage", {"stage_id": quick["stages"][0]["id"]})
    poll(lambda: len(stuck_events(client["id"])) == 2, timeout=15, message="a second deal_stuck after re-entering")
    assert stuck_events(client["id"])[0]["data"]["stage"] == "Звонок"


def _move_concurrently(head, deal, targets, headers):
    pool = eventlet.GreenPool(len(targets))
    return list(pool.imap(
        lambda target: head.post(f"/deals/{deal['id']}/stage", json={"stage_id": target}, headers=headers), targets
    ))


def _assert_history_consistent(head, deal_id):
    history = head.ok("GET", f"/deals/{deal_id}/history")["items"]
    for before, after in zip(history, history[1:]):
        assert before["exited_at"] == after["entered_at"] and after["from_stage_id"] == before["stage_id"]
    assert history[-1]["exited_at"] is None
    final = head.ok("GET", f"/deals/{deal_id}")
    assert final["stage_id"] == history[-1]["stage_id"]
    assert final["version"] == len(history), "every recorded move, and only those, changed the deal"
    return history


def test_two_simultaneous_moves_of_one_deal_one_wins_the_other_gets_409(world, pipeline):
    head = world.north.head
    targets = [stage(pipeline, "КП отправлено")["id"], stage(pipeline, "Переговоры")["id"]] * 3
    deal = deal_of(head, client_of(head), pipeline)
    responses = _move_concurrently(head, deal, targets, {"If-Match": str(deal["version"])})
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [409] * (len(targets) - 1)
    assert all(r.json()["error"]["code"] == "version_conflict" for r in responses if r.status_code == 409)
    history = _assert_history_consistent(head, deal["id"])
    assert len(history) == 2


def test_simultaneous_moves_without_if_match_never_corrupt_the_history(world, pipeline):
    head = world.north.head
    targets = [stage(pipeline, "КП отправлено")["id"], stage(pipeline, "Переговоры")["id"]] * 4
    deal = deal_of(head, client_of(head), pipeline)
    responses = _move_concurrently(head, deal, targets, {})
    assert {r.status_code for r in responses} <= {200, 409}
    assert any(r.status_code == 200 for r in responses)
    _assert_history_consistent(head, deal["id"])


def test_deals_follow_the_same_visibility_rules_as_clients(world, pipeline):
    north, south = world.north, world.south
    manager, colleague = north.managers
    deal = deal_of(manager, client_of(manager), pipeline)
    assert manager.get(f"/deals/{deal['id']}").status_code == 200
    assert north.head.get(f"/deals/{deal['id']}").status_code == 200
    assert world.admin.get(f"/deals/{deal['id']}").status_code == 200
    for outsider in (colleague, south.head, south.managers[0]):
        assert outsider.get(f"/deals/{deal['id']}").status_code == 404
        assert outsider.get(f"/deals/{deal['id']}/history").status_code == 404
        assert outsider.patch(f"/deals/{deal['id']}", json={"title": "x"}).status_code == 404
        assert outsider.post(f"/deals/{deal['id']}/stage", json={"stage_id": pipeline["stages"][1]["id"]}).status_code == 404
        assert deal["id"] not in {d["id"] for d in outsider.pages("/deals", limit=200)}
    assert south.head.get(f"/pipelines/{pipeline['id']}").status_code == 404


def test_a_deal_needs_a_client_the_caller_may_see(world, pipeline):
    manager, colleague = world.north.managers
    foreign = client_of(colleague)
    response = manager.post("/deals", json={"client_id": foreign["id"], "pipeline_id": pipeline["id"], "title": "X",
                                            "amount": "1.00", "currency": "RUB"})
    assert response.status_code == 422 and "client_id" in response.json()["error"]["fields"]
    south_client = client_of(world.south.head)
    response = world.admin.post("/deals", json={"client_id": south_client["id"], "pipeline_id": pipeline["id"],
                                                "title": "X", "amount": "1.00", "currency": "RUB"})
    assert response.status_code == 422 and "pipeline_id" in response.json()["error"]["fields"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": "-1.00"}, "amount"),
        ({"amount": "12.345"}, "amount"),
        ({"amount": 100}, "amount"),
        ({"amount": "сто"}, "amount"),
        ({"currency": "RUR"}, "currency"),
        ({"currency": "rub"}, "currency"),
        ({"currency": "RUBLES"}, "currency"),
        ({"title": ""}, "title"),
        ({"client_id": "00000000-0000-4000-8000-000000000000"}, "client_id"),
        ({"pipeline_id": "00000000-0000-4000-8000-000000000000"}, "pipeline_id"),
        ({"pipeline_id": "nope"}, "pipeline_id"),
    ],
)
def test_an_invalid_deal_is_refused_with_422(world, pipeline, change, field):
    head = world.north.head
    client = client_of(head)
    body = {"client_id": client["id"], "pipeline_id": pipeline["id"], "title": "Сделка", "amount": "10.00",
            "currency": "RUB", **change}
    response = head.post("/deals", json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]["fields"]


def test_moving_to_an_unknown_stage_or_a_stage_of_another_pipeline_is_refused(world, pipeline):
    head = world.north.head
    other = pipeline_of(head)
    deal = deal_of(head, client_of(head), pipeline)
    for stage_id in ("00000000-0000-4000-8000-000000000000", other["stages"][1]["id"], "bad"):
        response = head.post(f"/deals/{deal['id']}/stage", json={"stage_id": stage_id})
        assert response.status_code == 422 and "stage_id" in response.json()["error"]["fields"]
    assert head.ok("GET", f"/deals/{deal['id']}/history")["items"].__len__() == 1


@pytest.mark.parametrize(
    ("stages", "field"),
    [
        ([], "stages"),
        ([{"name": "Успех", "kind": "won"}, {"name": "Отказ", "kind": "lost"}], "stages"),
        ([{"name": "A", "kind": "open"}, {"name": "Отказ", "kind": "lost"}], "stages"),
        ([{"name": "A", "kind": "open"}, {"name": "a", "kind": "open"}, {"name": "W", "kind": "won"},
          {"name": "L", "kind": "lost"}], "stages"),
        ([{"name": "A", "kind": "open", "max_days": -1}, {"name": "W", "kind": "won"}, {"name": "L", "kind": "lost"}],
         "stages.0.max_days"),
        ([{"name": "A", "kind": "open", "max_days": "2"}, {"name": "W", "kind": "won"}, {"name": "L", "kind": "lost"}],
         "stages.0.max_days"),
        ([{"name": "A", "kind": "open"}, {"name": "W", "kind": "won", "max_days": 2}, {"name": "L", "kind": "lost"}],
         "stages.1.max_days"),
        ([{"name": "A", "kind": "maybe"}, {"name": "W", "kind": "won"}, {"name": "L", "kind": "lost"}],
         "stages.0.kind"),
    ],
)
def test_an_invalid_pipeline_is_refused(world, stages, field):
    response = world.north.head.post("/pipelines", json={"name": "Плохая", "stages": stages})
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]["fields"]


def test_a_manager_may_not_change_the_sales_process(world, pipeline):
    manager = world.north.managers[0]
    assert manager.post("/pipelines", json={"name": "Моя", "stages": STAGES}).status_code == 403
    assert manager.post("/scripts", json={"title": "T", "body": "B"}).status_code == 403
    assert manager.ok("GET", f"/pipelines/{pipeline['id']}")["id"] == pipeline["id"]


def test_changing_a_pipeline_keeps_history_and_refuses_to_remove_a_stage_with_deals(world):
    head = world.north.head
    own = pipeline_of(head)
    deal = deal_of(head, client_of(head), own)
    first, second = own["stages"][0], own["stages"][1]
    keep = [{k: s[k] for k in ("id", "name", "kind", "max_days")} for s in own["stages"]]
    without_first = [s for s in keep if s["id"] != first["id"]]
    response = head.patch(f"/pipelines/{own['id']}", json={"stages": without_first})
    assert response.status_code == 409
    renamed = [dict(s, name="Входящая") if s["id"] == first["id"] else s for s in keep]
    changed = head.ok("PATCH", f"/pipelines/{own['id']}", {"stages": renamed})
    assert changed["stages"][0]["name"] == "Входящая"
    head.ok("POST", f"/deals/{deal['id']}/stage", {"stage_id": second["id"]})
    history = head.ok("GET", f"/deals/{deal['id']}/history")["items"]
    assert history[0]["stage_name"] == "Новая заявка", "history keeps the name the stage had"
    renamed_only = [s for s in renamed if s["id"] != first["id"]]
    removed = head.ok("PATCH", f"/pipelines/{own['id']}", {"stages": renamed_only})
    assert first["id"] not in {s["id"] for s in removed["stages"]}
    assert head.ok("GET", f"/deals/{deal['id']}/history")["items"][0]["stage_id"] == first["id"]


def test_the_deal_shows_its_stage_script_and_scripts_are_versioned(world):
    head, manager = world.north.head, world.north.managers[0]
    own = pipeline_of(head)
    first = own["stages"][0]
    script = head.ok("POST", "/scripts", {"title": "Первый звонок", "body": "Здравствуйте!", "stage_id": first["id"]},
                     status=201)
    deal = deal_of(manager, client_of(manager), own)
    assert deal["stage"]["script"] == {"id": script["id"], "title": "Первый звонок", "body": "Здравствуйте!",
                                       "version": 1}
    updated = head.ok("PATCH", f"/scripts/{script['id']}", {"body": "Добрый день! Меня зовут…"},
                      headers={"If-Match": '"1"'})
    assert updated["version"] == 2
    stale = head.patch(f"/scripts/{script['id']}", json={"body": "Поверх чужой правки"}, headers={"If-Match": '"1"'})
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "version_conflict"
    assert head.get(f"/scripts/{script['id']}").headers["ETag"] == '"2"'
    assert manager.ok("GET", f"/deals/{deal['id']}")["stage"]["script"]["version"] == 2
    versions = manager.ok("GET", f"/scripts/{script['id']}/versions")["items"]
    assert [(v["version"], v["body"]) for v in versions] == [(2, "Добрый день! Меня зовут…"), (1, "Здравствуйте!")]
    client_id = deal["client_id"]
    cited = manager.ok("POST", f"/clients/{client_id}/interactions", {"type": "call", "script_id": script["id"]},
                       status=201)
    assert cited["script_id"] == script["id"]
    assert world.south.head.get(f"/scripts/{script['id']}").status_code == 404


def test_a_client_with_open_deals_cannot_be_archived_until_they_are_closed(world, pipeline):
    head = world.north.head
    client = client_of(head)
    deal = deal_of(head, client, pipeline)
    refused = head.delete(f"/clients/{client['id']}")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["open_deal_ids"] == [deal["id"]] and "/stage" in error["message"]
    head.ok("POST", f"/deals/{deal['id']}/stage", {"stage_id": stage(pipeline, "Отказ")["id"], "lost_reason": "Ушёл"})
    assert head.ok("DELETE", f"/clients/{client['id']}")["archived"] is True
    # reopening the deal brings the client back: an archived client never has open deals
    head.ok("POST", f"/deals/{deal['id']}/stage", {"stage_id": pipeline["stages"][0]["id"]})
    poll(lambda: head.ok("GET", f"/clients/{client['id']}")["archived"] is False, timeout=10,
         message="the client to be restored")
    timeline = head.ok("GET", f"/clients/{client['id']}/timeline")["items"]
    assert any(e["type"] == "client_restored" and e["data"].get("deal_id") == deal["id"] for e in timeline), timeline


def test_a_client_with_open_deals_stays_in_its_branch_until_they_are_closed(world, pipeline):
    head = world.north.head
    client = client_of(head)
    deal = deal_of(head, client, pipeline)
    refused = world.admin.patch(f"/clients/{client['id']}", json={"branch_id": world.south.id})
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["open_deal_ids"] == [deal["id"]]
    assert head.ok("GET", f"/clients/{client['id']}")["branch_id"] == world.north.id
    head.ok("POST", f"/deals/{deal['id']}/stage", {"stage_id": stage(pipeline, "Отказ")["id"], "lost_reason": "Ушёл"})
    moved = world.admin.ok("PATCH", f"/clients/{client['id']}", {"branch_id": world.south.id})
    assert (moved["branch_id"], moved["owner_id"]) == (world.south.id, None)


def test_a_closed_deal_of_a_client_moved_to_another_branch_is_not_reopened(world, pipeline):
    head = world.north.head
    client = client_of(head)
    deal = deal_of(head, client, pipeline)
    head.ok("POST", f"/deals/{deal['id']}/stage", {"stage_id": stage(pipeline, "Отказ")["id"], "lost_reason": "Ушёл"})
    world.admin.ok("PATCH", f"/clients/{client['id']}", {"branch_id": world.south.id})
    refused = head.post(f"/deals/{deal['id']}/stage", json={"stage_id": pipeline["stages"][0]["id"]})
    assert refused.status_code == 409 and "stage_id" in refused.json()["error"]["fields"], refused.text
    assert head.ok("GET", f"/deals/{deal['id']}")["status"] == "lost"


def test_deals_are_filtered_by_stage_owner_and_status(world, pipeline):
    head = world.north.head
    manager, colleague = world.north.managers
    mine = deal_of(manager, client_of(manager), pipeline)
    theirs = deal_of(colleague, client_of(colleague), pipeline)
    first = pipeline["stages"][0]["id"]
    listed = head.ok("GET", f"/deals?stage_id={first}&owner_id={manager.me['id']}&limit=200")["items"]
    assert mine["id"] in {d["id"] for d in listed} and theirs["id"] not in {d["id"] for d in listed}
    assert all(d["stage_id"] == first and d["owner_id"] == manager.me["id"] for d in listed)
    won = head.ok("GET", f"/deals?status=won&pipeline_id={pipeline['id']}&limit=200")["items"]
    assert all(d["status"] == "won" for d in won)
    assert head.get("/deals?status=maybe").status_code == 400


def test_a_stale_if_match_on_a_deal_update_is_refused(world, pipeline):
    head = world.north.head
    deal = deal_of(head, client_of(head), pipeline)
    head.ok("PATCH", f"/deals/{deal['id']}", {"amount": "99.90"}, headers={"If-Match": '"1"'})
    stale = head.patch(f"/deals/{deal['id']}", json={"amount": "1.00"}, headers={"If-Match": '"1"'})
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "version_conflict"
    assert head.ok("GET", f"/deals/{deal['id']}")["amount"] == "99.90"
