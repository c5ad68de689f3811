"""Offboarding over HTTP: a leaving manager's clients, open deals and open tasks go to a colleague in one step."""

import uuid

import pytest

from crm_common.testing.fixtures import poll
from crm_common.testing.system import Api, unique
from tests.e2e.conftest import PASSWORD

STAGES = [{"name": "Новая", "kind": "open"}, {"name": "Успех", "kind": "won"}, {"name": "Отказ", "kind": "lost"}]


@pytest.fixture
def branch(new_branch):
    return new_branch(managers=2)


def finished(head: Api, saga: dict) -> dict:
    return poll(lambda: (lambda s: s if s["status"] != "running" else None)(head.ok("GET", f"/offboardings/{saga['id']}")),
                timeout=30, message="the offboarding to finish")


def me(api: Api) -> dict:
    return api.ok("GET", "/me")


def test_offboarding_hands_over_clients_open_deals_and_open_tasks_and_locks_the_user_out(branch):
    head, leaving, heir = branch.head, branch.managers[0], branch.managers[1]
    leaving_id, heir_id = me(leaving)["id"], me(heir)["id"]
    pipeline = head.ok("POST", "/pipelines", {"name": unique("Опт "), "stages": STAGES}, status=201)
    won_stage = next(s for s in pipeline["stages"] if s["kind"] == "won")
    clients = [leaving.ok("POST", "/clients", {"kind": "person", "name": f"Клиент {unique()}"}, status=201)
               for _ in range(3)]
    deal = {"pipeline_id": pipeline["id"], "title": "Поставка", "amount": "100.00", "currency": "RUB"}
    open_deals = [leaving.ok("POST", "/deals", {**deal, "client_id": c["id"]}, status=201) for c in clients[:2]]
    won = leaving.ok("POST", "/deals", {**deal, "client_id": clients[2]["id"]}, status=201)
    leaving.ok("POST", f"/deals/{won['id']}/stage", {"stage_id": won_stage["id"]})
    due = "2099-01-01T00:00:00Z"
    open_task = leaving.ok("POST", "/tasks", {"title": "Перезвонить", "due_at": due}, status=201)
    done_task = leaving.ok("POST", "/tasks", {"title": "Отправить КП", "due_at": due}, status=201)
    leaving.ok("POST", f"/tasks/{done_task['id']}/complete")

    started = head.post(f"/users/{leaving_id}/offboard", json={"to_user_id": heir_id})

    assert started.status_code == 202, started.text
    saga = started.json()
    assert (saga["status"], saga["user_id"], saga["to_user_id"]) == ("running", leaving_id, heir_id)
    assert leaving.get("/me").status_code == 401, "the leaving user's token stops working at once"
    assert head.ok("GET", f"/users/{leaving_id}")["active"] is False
    result = finished(head, saga)
    assert (result["status"], result["clients"], result["deals"], result["tasks"]) == ("done", 3, 2, 1)
    assert result["finished_at"] and result["error"] is None and result["step"] is None
    assert {c["owner_id"] for c in (head.ok("GET", f"/clients/{c['id']}") for c in clients)} == {heir_id}
    assert {head.ok("GET", f"/deals/{d['id']}")["owner_id"] for d in open_deals} == {heir_id}
    assert head.ok("GET", f"/deals/{won['id']}")["owner_id"] == leaving_id, "a won deal stays the seller's"
    assert head.ok("GET", f"/tasks/{open_task['id']}")["assignee_id"] == heir_id
    assert head.ok("GET", f"/tasks/{done_task['id']}")["assignee_id"] == leaving_id
    assert {c["id"] for c in heir.pages(f"/clients?owner_id={heir_id}")} >= {c["id"] for c in clients}
    assert [s["id"] for s in head.ok("GET", f"/offboardings?user_id={leaving_id}")["items"]] == [saga["id"]]

    def funnel_of(owner_id):
        report = head.ok("GET", f"/reports/funnel?pipeline_id={pipeline['id']}&owner_id={owner_id}")
        return report["stages"][0]["entered"]

    # reports hear of the new owner from the usual deal_updated events: open deals count for the heir now
    poll(lambda: funnel_of(heir_id) == 2 and funnel_of(leaving_id) == 1, timeout=30, message="reports to follow")


def test_refused_offboardings_are_4xx_with_fields_and_change_nothing(branch, world, admin):
    head, leaving, heir = branch.head, branch.managers[0], branch.managers[1]
    leaving_id, heir_id, head_id = me(leaving)["id"], me(heir)["id"], me(head)["id"]
    stranger_id = me(world.south.managers[0])["id"]
    retired_email = f"{unique('retired')}@e2e.test"
    retired = head.ok("POST", "/users", {"email": retired_email, "name": "Ушедший", "password": PASSWORD,
                                         "role": "manager"}, status=201)
    head.ok("PATCH", f"/users/{retired['id']}", {"active": False})

    def refused(api, user_id, body):
        response = api.post(f"/users/{user_id}/offboard", json=body)
        return response.status_code, response.json()["error"]

    for target, problem in [(leaving_id, "another user"), (retired["id"], "active"), (stranger_id, "No such user"),
                            (str(uuid.uuid4()), "No such user")]:
        status, error = refused(head, leaving_id, {"to_user_id": target})
        assert status == 422 and problem in error["fields"]["to_user_id"][0], (target, error)
    status, error = refused(admin, leaving_id, {"to_user_id": stranger_id})
    assert status == 422 and "same branch" in error["fields"]["to_user_id"][0]
    assert refused(head, leaving_id, {})[1]["fields"]["to_user_id"]
    assert refused(head, str(uuid.uuid4()), {"to_user_id": heir_id})[0] == 404
    assert refused(world.north.head, leaving_id, {"to_user_id": heir_id})[0] == 404, "another branch's head"
    assert refused(heir, leaving_id, {"to_user_id": heir_id})[0] == 403, "a manager"
    assert refused(head, head_id, {"to_user_id": heir_id})[0] == 403, "a head offboards managers only"
    assert leaving.get("/me").status_code == 200, "nothing was done"
    assert head.ok("GET", "/offboardings")["items"] == []

    saga = head.ok("POST", f"/users/{leaving_id}/offboard", {"to_user_id": heir_id}, status=202)
    status, error = refused(head, leaving_id, {"to_user_id": heir_id})
    assert status == 409 and error["fields"]["id"], "running, or done and the user still inactive"
    assert finished(head, saga)["status"] == "done"
    assert refused(admin, leaving_id, {"to_user_id": heir_id})[0] == 409
    assert [s["id"] for s in head.ok("GET", "/offboardings")["items"]] == [saga["id"]]
