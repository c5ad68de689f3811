"""Tasks, penalties, process templates, automations, complaints and notifications over HTTP, for every role."""

from datetime import UTC, datetime, timedelta

import eventlet
import pytest

from crm_common.schemas import iso
from crm_common.testing.fixtures import poll
from crm_common.testing.system import phone_number, unique

PAST = "2020-01-01T00:00:00Z"


def later(seconds: float = 86400) -> str:
    return iso(datetime.now(UTC) + timedelta(seconds=seconds))


def task_of(api, status=201, **fields):
    return api.ok("POST", "/tasks", {"title": "Перезвонить клиенту", "due_at": later(), **fields}, status=status)


def client_of(api):
    return api.ok("POST", "/clients", {"kind": "company", "name": unique("ООО "), "phones": [phone_number()]})


def error_of(response, status):
    assert response.status_code == status, response.text
    return response.json()["error"]


def notices(api, **query):
    suffix = "&".join(f"{k}={v}" for k, v in query.items())
    return api.ok("GET", "/notifications" + (f"?{suffix}" if suffix else ""))["items"]


@pytest.fixture(scope="module")
def template(world):
    return world.north.head.ok("POST", "/task-templates", {
        "name": "Отправить КП", "process": "Продажа", "instruction": "Соберите КП по шаблону и отправьте.",
        "checklist": ["Собрать КП", "Согласовать цену", "Отправить"], "due_in_hours": 48,
        "penalty": {"amount": "300.00", "currency": "RUB"}}, status=201)


def test_a_manager_works_through_a_checklist_and_completes_the_task_once(world):
    manager = world.north.managers[0]
    client = client_of(manager)
    task = task_of(manager, checklist=["Позвонить", "Записать итог"], client_id=client["id"])
    assert task["assignee_id"] == task["author_id"] == manager.me["id"] and task["status"] == "open"
    error = error_of(manager.post(f"/tasks/{task['id']}/complete"), 409)
    assert error["code"] == "checklist_incomplete" and set(error["fields"]) == {"checklist.0", "checklist.1"}
    for index in (0, 1):
        task = manager.ok("POST", f"/tasks/{task['id']}/checklist/{index}", {"done": True})
    assert all(step["done"] and step["done_at"] for step in task["checklist"])
    done = manager.ok("POST", f"/tasks/{task['id']}/complete")
    again = manager.ok("POST", f"/tasks/{task['id']}/complete")
    assert done["status"] == "done" and again == done

    def task_entries():
        items = manager.ok("GET", f"/clients/{client['id']}/timeline")["items"]
        return [e["type"] for e in items if e["kind"] == "task"]

    poll(lambda: "task_completed" in task_entries(), timeout=15, message="the completion on the timeline")
    assert task_entries().count("task_completed") == 1 and "task_created" in task_entries()


@pytest.mark.parametrize(("body", "field"), [
    ({"due_at": later()}, "title"),
    ({"title": "Звонок"}, "due_at"),
    ({"title": "Звонок", "due_at": PAST}, "due_at"),
    ({"title": "Звонок", "due_at": "завтра"}, "due_at"),
    ({"title": "Звонок", "due_at": "2026-12-01T10:00:00"}, "due_at"),
    ({"title": 5, "due_at": later()}, "title"),
    ({"title": "Звонок", "due_at": later(), "checklist": "Позвонить"}, "checklist"),
    ({"title": "Звонок", "due_at": later(), "checklist": [""]}, "checklist.0"),
    ({"title": "Звонок", "due_at": later(), "penalty": {"amount": 100, "currency": "RUB"}}, "penalty.amount"),
    ({"title": "Звонок", "due_at": later(), "penalty": {"amount": "1.00", "currency": "XXQ"}}, "penalty.currency"),
    ({"title": "Звонок", "due_at": later(), "template_id": "00000000-0000-4000-8000-000000000000"}, "template_id"),
    ({"title": "Звонок", "due_at": later(), "client_id": "00000000-0000-4000-8000-000000000000"}, "client_id"),
    ({"title": "Звонок", "due_at": later(), "deal_id": "00000000-0000-4000-8000-000000000000"}, "deal_id"),
    ({"title": "Звонок", "due_at": later(), "colour": "red"}, "colour"),
])
def test_an_invalid_task_is_refused_with_422_naming_the_field(world, body, field):
    error = error_of(world.north.managers[0].post("/tasks", body), 422)
    assert error["code"] == "validation_error" and field in error["fields"]


def test_who_may_be_assigned_is_checked_against_the_branch_and_the_users_state(world, admin):
    head, manager, other = world.north.head, world.north.managers[0], world.north.managers[1]
    assert error_of(manager.post("/tasks", {"title": "x", "due_at": later(), "assignee_id": other.me["id"]}), 403)
    south = world.south.managers[0].me["id"]
    assert "assignee_id" in error_of(head.post("/tasks", {"title": "x", "due_at": later(), "assignee_id": south}),
                                     422)["fields"]
    leaver = head.ok("POST", "/users", {"email": f"{unique('leaver')}@e2e.test", "name": "Уходящий",
                                        "password": "e2e-password-1", "role": "manager"})
    head.ok("PATCH", f"/users/{leaver['id']}", {"active": False})
    assert "assignee_id" in error_of(head.post("/tasks", {"title": "x", "due_at": later(), "assignee_id": leaver["id"]}),
                                     422)["fields"]
    task = task_of(head, assignee_id=other.me["id"])
    assert task["assignee_id"] == other.me["id"] and task["author_id"] == head.me["id"]
    by_admin = task_of(admin, assignee_id=other.me["id"])
    assert by_admin["branch_id"] == world.north.id


def test_a_task_is_seen_by_its_assignee_its_author_the_branchs_head_and_admins_only(world, admin):
    head, manager, other = world.north.head, world.north.managers[0], world.north.managers[1]
    task = task_of(head, assignee_id=manager.me["id"])
    for api in (manager, head, admin):
        assert api.ok("GET", f"/tasks/{task['id']}")["id"] == task["id"]
    for api in (other, world.south.head, world.south.managers[0]):
        assert error_of(api.get(f"/tasks/{task['id']}"), 404)["code"] == "not_found"
    assert task["id"] in {t["id"] for t in manager.ok("GET", f"/tasks?assignee_id={manager.me['id']}")["items"]}
    assert task["id"] not in {t["id"] for t in other.pages("/tasks")}
    assert task["id"] not in {t["id"] for t in world.south.head.pages("/tasks")}


def test_edits_need_the_current_version_and_the_right_person(world):
    head, manager = world.north.head, world.north.managers[0]
    task = task_of(head, assignee_id=manager.me["id"])
    assert error_of(manager.patch(f"/tasks/{task['id']}", {"due_at": later(10 ** 6)}), 403)
    changed = head.patch(f"/tasks/{task['id']}", {"title": "Новое"}, headers={"If-Match": '"1"'})
    assert changed.status_code == 200 and changed.headers["ETag"] == '"2"'
    stale = error_of(head.patch(f"/tasks/{task['id']}", {"title": "Старое"}, headers={"If-Match": "1"}), 409)
    assert stale["code"] == "version_conflict" and stale["current_version"] == 2
    assert "due_at" in error_of(head.patch(f"/tasks/{task['id']}", {"due_at": PAST}), 422)["fields"]
    assert error_of(manager.post(f"/tasks/{task['id']}/cancel", {"reason": "Не хочу"}), 403)
    assert "reason" in error_of(head.post(f"/tasks/{task['id']}/cancel", {}), 422)["fields"]
    cancelled = head.ok("POST", f"/tasks/{task['id']}/cancel", {"reason": "Клиент отказался"})
    assert cancelled["status"] == "cancelled"
    assert error_of(manager.post(f"/tasks/{task['id']}/complete"), 409)["code"] == "conflict"
    assert error_of(head.patch(f"/tasks/{task['id']}", {"title": "x"}), 409)


def test_a_checklist_step_out_of_range_is_404(world):
    manager = world.north.managers[0]
    task = task_of(manager, checklist=["Один"])
    for index in ("1", "-1", "abc"):
        assert error_of(manager.post(f"/tasks/{task['id']}/checklist/{index}", {"done": True}), 404)
    assert "done" in error_of(manager.post(f"/tasks/{task['id']}/checklist/0", {"done": "yes"}), 422)["fields"]


def test_concurrent_ticks_all_count_and_concurrent_completions_announce_one_completion(world):
    manager = world.north.managers[0]
    client = client_of(manager)
    steps = [f"Шаг {n}" for n in range(8)]
    task = task_of(manager, checklist=steps, client_id=client["id"])
    pool = eventlet.GreenPool(8)
    list(pool.imap(lambda n: manager.ok("POST", f"/tasks/{task['id']}/checklist/{n}", {"done": True}), range(8)))
    ticked = manager.ok("GET", f"/tasks/{task['id']}")
    assert all(step["done"] for step in ticked["checklist"]) and ticked["version"] == 9
    answers = list(pool.imap(lambda _: manager.post(f"/tasks/{task['id']}/complete"), range(6)))
    assert {a.status_code for a in answers} == {200}

    def completions():
        items = manager.ok("GET", f"/clients/{client['id']}/timeline")["items"]
        return [e for e in items if e["type"] == "task_completed"]

    poll(completions, timeout=15, message="the completion on the timeline")
    eventlet.sleep(1.0)  # a second completion event, if there were one, would have arrived by now
    assert len(completions()) == 1


def test_an_idempotency_key_makes_one_task(world):
    manager = world.north.managers[0]
    key = {"Idempotency-Key": unique("task-")}
    body = {"title": "Один раз", "due_at": later()}
    first = manager.post("/tasks", body, headers=key)
    second = manager.post("/tasks", body, headers=key)
    assert first.status_code == second.status_code == 201 and first.json() == second.json()


def test_a_missed_deadline_makes_the_task_overdue_with_one_penalty_and_tells_the_assignee_and_head(world, template,
                                                                                                   admin):
    head, manager, other = world.north.head, world.north.managers[0], world.north.managers[1]
    task = task_of(head, assignee_id=manager.me["id"], due_at=later(1.5), template_id=template["id"])
    assert task["penalty"] == {"amount": "300.00", "currency": "RUB"}
    overdue = poll(lambda: [t for t in manager.ok("GET", "/tasks?overdue=true")["items"] if t["id"] == task["id"]],
                   timeout=20, message="the task to become overdue")
    assert overdue[0]["overdue"] is True and overdue[0]["status"] == "open"
    eventlet.sleep(1.0)  # more checks run; none records a second penalty
    mine = [p for p in manager.ok("GET", f"/penalties?month={task['due_at'][:7]}")["items"] if p["task_id"] == task["id"]]
    assert len(mine) == 1
    penalty = mine[0]
    assert (penalty["user_id"], penalty["amount"], penalty["status"]) == (manager.me["id"], "300.00", "active")
    assert penalty["id"] not in {p["id"] for p in other.ok("GET", "/penalties")["items"]}
    assert penalty["id"] not in {p["id"] for p in world.south.head.ok("GET", "/penalties")["items"]}
    assert penalty["id"] in {p["id"] for p in admin.ok("GET", f"/penalties?user_id={manager.me['id']}")["items"]}
    for api in (manager, head):
        found = poll(lambda api=api: [n for n in notices(api) if n["ref_id"] == task["id"]], timeout=10,
                     message="the overdue notice")
        assert found[0]["kind"] == "task_overdue"
    assert error_of(manager.post(f"/penalties/{penalty['id']}/waive", {"reason": "Сам"}), 403)
    assert "reason" in error_of(head.post(f"/penalties/{penalty['id']}/waive", {}), 422)["fields"]
    waived = head.ok("POST", f"/penalties/{penalty['id']}/waive", {"reason": "Клиент перенёс встречу"})
    assert waived["status"] == "waived"
    assert error_of(head.post(f"/penalties/{penalty['id']}/waive", {"reason": "Ещё"}), 409)
    done = manager.ok("POST", f"/tasks/{task['id']}/complete", status=(409,))
    assert done["error"]["code"] == "checklist_incomplete"


def test_templates_are_written_by_heads_versioned_and_read_by_the_branch(world, template):
    head, manager = world.north.head, world.north.managers[0]
    assert error_of(manager.post("/task-templates", {"name": "x", "process": "y", "instruction": "z", "checklist": [],
                                                     "due_in_hours": 1}), 403)
    assert "due_in_hours" in error_of(head.post("/task-templates", {"name": "x", "process": "y", "instruction": "z",
                                                                     "checklist": [], "due_in_hours": 0}), 422)["fields"]
    own = head.ok("POST", "/task-templates", {"name": "Звонок после продажи", "process": "Сервис",
                                              "instruction": "Узнайте, всё ли устроило.", "checklist": ["Позвонить"],
                                              "due_in_hours": 24}, status=201)
    changed = head.ok("PATCH", f"/task-templates/{own['id']}", {"checklist": ["Позвонить", "Предложить допродажу"]},
                      headers={"If-Match": "1"})
    assert changed["version"] == 2
    assert error_of(head.patch(f"/task-templates/{own['id']}", {"name": "y"}, headers={"If-Match": "1"}), 409)
    assert manager.ok("GET", f"/task-templates/{own['id']}")["checklist"] == ["Позвонить", "Предложить допродажу"]
    assert own["id"] in {t["id"] for t in manager.ok("GET", "/task-templates?process=Сервис")["items"]}
    assert error_of(world.south.head.get(f"/task-templates/{own['id']}"), 404)


def test_an_automation_turns_a_new_client_into_a_task_for_its_owner_after_its_delay(world):
    head, manager = world.north.head, world.north.managers[1]
    template = head.ok("POST", "/task-templates", {"name": unique("Первый звонок "), "process": "Продажа",
                                                   "instruction": "Позвоните в течение часа.", "checklist": ["Позвонить"],
                                                   "due_in_hours": 1}, status=201)
    assert error_of(manager.post("/automations", {"event": "client_created", "template_id": template["id"],
                                                  "assign_to": "owner"}), 403)
    assert "pipeline_id" in error_of(head.post("/automations", {
        "event": "client_created", "template_id": template["id"], "assign_to": "owner",
        "pipeline_id": "00000000-0000-4000-8000-000000000000"}), 422)["fields"]
    automation = head.ok("POST", "/automations", {"event": "client_created", "template_id": template["id"],
                                                  "assign_to": "owner", "delay_hours": 0.0005}, status=201)
    assert automation["id"] in {a["id"] for a in manager.ok("GET", "/automations?event=client_created")["items"]}
    client = client_of(manager)

    def made():
        return [t for t in manager.ok("GET", f"/tasks?client_id={client['id']}")["items"]
                if t["template_id"] == template["id"]]

    found = poll(made, timeout=20, message="the automation's delayed task")
    assert len(found) == 1 and found[0]["assignee_id"] == manager.me["id"] and found[0]["author_id"] is None
    disabled = head.ok("DELETE", f"/automations/{automation['id']}")
    assert disabled["active"] is False
    later_client = client_of(manager)
    eventlet.sleep(3)
    assert manager.ok("GET", f"/tasks?client_id={later_client['id']}")["items"] == []


def test_a_complaint_opens_a_task_for_the_clients_owner_tells_the_head_and_is_resolved_with_a_resolution(world):
    head, manager = world.north.head, world.north.managers[0]
    client = client_of(manager)
    assert "client_id" in error_of(world.south.head.post("/complaints", {"client_id": client["id"], "subject": "x",
                                                                         "text": "y"}), 422)["fields"]
    assert "subject" in error_of(manager.post("/complaints", {"client_id": client["id"], "text": "y"}), 422)["fields"]
    complaint = head.ok("POST", "/complaints", {"client_id": client["id"], "subject": "Доставка опоздала",
                                                "text": "Ждали неделю", "channel": "phone"}, status=201)
    assert complaint["status"] == "open" and complaint["owner_id"] == manager.me["id"] and complaint["due_at"]
    task = manager.ok("GET", f"/tasks/{complaint['task_id']}")
    assert task["assignee_id"] == manager.me["id"] and task["due_at"] == complaint["due_at"]
    found = poll(lambda: [n for n in notices(head, unread="true") if n["ref_id"] == complaint["id"]], timeout=10,
                 message="the head's complaint notice")
    assert found[0]["kind"] == "complaint"
    assert error_of(manager.post(f"/notifications/{found[0]['id']}/read"), 404)
    assert head.ok("POST", f"/notifications/{found[0]['id']}/read")["read_at"]
    assert complaint["id"] not in {n["ref_id"] for n in notices(head, unread="true")}
    assert "resolution" in error_of(manager.patch(f"/complaints/{complaint['id']}", {"status": "resolved"}),
                                    422)["fields"]
    assert error_of(manager.patch(f"/complaints/{complaint['id']}", {"status": "closed"}), 422)
    resolved = manager.ok("PATCH", f"/complaints/{complaint['id']}", {"status": "resolved", "resolution": "Скидка"},
                          headers={"If-Match": "1"})
    assert resolved["status"] == "resolved" and resolved["resolved_at"]
    assert manager.ok("GET", f"/tasks/{complaint['task_id']}")["status"] == "done"
    assert error_of(manager.patch(f"/complaints/{complaint['id']}", {"status": "in_progress"}), 409)
    assert [c["id"] for c in head.ok("GET", f"/complaints?client_id={client['id']}&status=resolved")["items"]] == [
        complaint["id"]]
    assert error_of(world.north.managers[1].get(f"/complaints/{complaint['id']}"), 404)

    def complaint_entries():
        items = manager.ok("GET", f"/clients/{client['id']}/timeline")["items"]
        return {e["type"] for e in items if e["kind"] == "complaint"}

    poll(lambda: complaint_entries() == {"complaint_created", "complaint_resolved"}, timeout=15,
         message="the complaint on the client's timeline")


def test_a_stuck_deal_gives_its_owner_a_task_and_tells_the_head(world):
    head, manager = world.north.head, world.north.managers[1]
    pipeline = head.ok("POST", "/pipelines", {"name": unique("Быстрая "), "stages": [
        {"name": "Звонок", "kind": "open", "max_days": 0.00002}, {"name": "Успех", "kind": "won"},
        {"name": "Отказ", "kind": "lost"}]}, status=201)
    client = client_of(manager)
    deal = manager.ok("POST", "/deals", {"client_id": client["id"], "pipeline_id": pipeline["id"], "title": "Срочно",
                                         "amount": "10.00", "currency": "RUB"})
    tasks = poll(lambda: manager.ok("GET", f"/tasks?deal_id={deal['id']}")["items"], timeout=20,
                 message="the stuck deal's task")
    assert tasks[0]["assignee_id"] == manager.me["id"] and tasks[0]["client_id"] == client["id"]
    notice = poll(lambda: [n for n in notices(head) if n["ref_id"] == deal["id"]], timeout=10,
                  message="the head's stuck-deal notice")
    assert notice[0]["kind"] == "deal_stuck" and notice[0]["ref_type"] == "deal"
    assert deal["id"] not in {n["ref_id"] for n in notices(manager)}


@pytest.mark.parametrize(("path", "field"), [
    ("/tasks?status=late", "status"), ("/tasks?overdue=maybe", "overdue"), ("/tasks?due_before=soon", "due_before"),
    ("/penalties?month=2026-13", "month"), ("/notifications?unread=perhaps", "unread"),
    ("/complaints?status=angry", "status"), ("/automations?event=deal_exploded", "event"),
])
def test_a_bad_filter_is_a_bad_request_naming_it(world, path, field):
    assert field in error_of(world.north.head.get(path), 400)["fields"]
