"""The client base over HTTP: duplicates, search, pagination, history, touchpoints, safe retries."""

import uuid

import eventlet

from crm_common.registry import backend_names
from crm_common.testing.fixtures import poll
from crm_common.testing.system import Api, phone_number, unique


def test_the_same_phone_written_four_ways_is_one_client(world):
    head = world.north.head
    n = uuid.uuid4().int % 10**7
    digits = f"{n:07d}"
    spellings = [
        f"+7 915 {digits[:3]}-{digits[3:5]}-{digits[5:]}",
        f"8 (915) {digits[:3]} {digits[3:5]} {digits[5:]}",
        f"8915{digits}",
        f"+7(915){digits}",
    ]
    first = head.ok("POST", "/clients", {"kind": "person", "name": "Анна", "phones": [spellings[0]]}, status=201)
    assert first["phones"] == [f"+7915{digits}"]
    for spelling in spellings[1:]:
        response = head.post("/clients", json={"kind": "person", "name": "Анна 2", "phones": [spelling]})
        assert response.status_code == 409, spelling
        error = response.json()["error"]
        assert error["code"] == "duplicate_client" and error["existing_id"] == first["id"]


def test_an_email_in_another_case_is_a_duplicate_but_another_branch_may_have_it(world):
    email = f"{unique('Ivan.')}@Example.RU"
    first = world.north.head.ok("POST", "/clients", {"kind": "person", "name": "Иван", "emails": [email]}, status=201)
    assert first["emails"] == [email.lower()]
    duplicate = world.north.head.post("/clients", json={"kind": "person", "name": "И", "emails": [email.upper()]})
    assert duplicate.status_code == 409 and duplicate.json()["error"]["existing_id"] == first["id"]
    assert world.south.head.post("/clients", json={"kind": "person", "name": "И", "emails": [email]}).status_code == 201


def test_paging_through_more_than_two_pages_returns_every_client_once(world):
    admin = world.admin
    branch = admin.ok("POST", "/branches", {"name": "Paging", "code": unique("P")[:12]})
    created = {
        admin.ok("POST", "/clients", {"kind": "company", "name": f"Компания {i}", "branch_id": branch["id"]},
                 status=201)["id"]
        for i in range(57)
    }
    seen, cursor, pages = [], None, 0
    while True:
        page = admin.ok("GET", f"/clients?limit=20&branch_id={branch['id']}" + (f"&cursor={cursor}" if cursor else ""))
        pages += 1
        seen += [item["id"] for item in page["items"]]
        if pages == 1:
            # new clients arriving while someone pages must not shift or repeat what they see
            for i in range(5):
                admin.ok("POST", "/clients", {"kind": "company", "name": f"Поздний {i}", "branch_id": branch["id"]},
                         status=201)
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 57
    assert set(seen) == created


def test_search_finds_a_client_by_name_phone_in_any_format_and_email(world):
    head = world.north.head
    marker = unique("Зайцев")
    n = uuid.uuid4().int % 10**7
    client = head.ok("POST", "/clients", {
        "kind": "person", "name": f"Пётр {marker}", "phones": [f"+7 916 {n:07d}"],
        "emails": [f"{marker.lower()}@mail.ru"],
    }, status=201)
    queries = [marker.lower(), marker.upper(), f"8 (916) {n:07d}", f"916{n:07d}", f"{marker.lower()}@mail"]
    for query in queries:
        items = head.ok("GET", "/clients", params={"q": query})["items"]
        assert [item["id"] for item in items] == [client["id"]], query


def test_filters_by_tag_source_and_creation_time(world):
    head = world.north.head
    tag = unique("tag")
    tagged = head.ok("POST", "/clients", {"kind": "company", "name": "С тегом", "tags": [tag.upper()],
                                          "source": "exhibition"}, status=201)
    head.ok("POST", "/clients", {"kind": "company", "name": "Без тега", "source": "exhibition"}, status=201)
    assert [c["id"] for c in head.ok("GET", f"/clients?tag={tag}")["items"]] == [tagged["id"]]
    by_source = head.ok("GET", "/clients?source=exhibition&limit=200")["items"]
    assert tagged["id"] in [c["id"] for c in by_source]
    later = head.ok("GET", "/clients", params={"created_from": "2999-01-01"})["items"]
    assert later == []


def test_interactions_and_changes_appear_on_the_timeline_newest_first(world):
    manager = world.north.managers[0]
    client = manager.ok("POST", "/clients", {"kind": "person", "name": "История", "phones": [phone_number()]},
                        status=201)
    manager.ok("POST", f"/clients/{client['id']}/interactions",
               {"type": "call", "direction": "out", "duration_s": 120, "text": "Обсудили цены"}, status=201)
    manager.ok("POST", f"/clients/{client['id']}/interactions",
               {"type": "meeting", "occurred_at": "2020-01-01T10:00:00+03:00", "text": "Первая встреча"}, status=201)
    manager.ok("PATCH", f"/clients/{client['id']}", {"tags": ["горячий"]})
    timeline = manager.ok("GET", f"/clients/{client['id']}/timeline")["items"]
    kinds = [(entry["kind"], entry["type"]) for entry in timeline]
    assert kinds[-1] == ("interaction", "meeting"), "a meeting dated in the past sorts last"
    assert ("interaction", "call") in kinds and ("client", "client_updated") in kinds
    assert ("client", "client_created") in kinds
    times = [entry["occurred_at"] for entry in timeline]
    assert times == sorted(times, reverse=True)
    assert timeline[-1]["occurred_at"] == "2020-01-01T07:00:00Z"


def test_touchpoints_find_the_client_or_create_one_for_the_next_manager_in_turn(new_branch):
    branch = new_branch(managers=2)
    head = branch.head
    manager_ids = {m.me["id"] for m in branch.managers}
    owners = []
    for _ in range(4):
        result = head.ok("POST", "/touchpoints", {"channel": "web_form", "name": "Лид",
                                                  "phone": phone_number(), "utm": {"utm_source": "yandex"}},
                         status=201)
        assert result["created"] is True
        owners.append(head.ok("GET", f"/clients/{result['client_id']}")["owner_id"])
    assert set(owners) == manager_ids, "new clients go to every active manager"
    assert owners[0] != owners[1] and owners[0] == owners[2], "in turn"

    email = f"{unique('lead')}@example.com"
    phone = phone_number()
    first = head.ok("POST", "/touchpoints", {"channel": "call", "phone": phone}, status=201)
    again = head.ok("POST", "/touchpoints", {"channel": "telegram", "phone": phone, "email": email.upper()},
                    status=201)
    assert again == {**again, "client_id": first["client_id"], "created": False}
    client = head.ok("GET", f"/clients/{first['client_id']}")
    assert email in client["emails"], "a new contact of a known client is kept"
    assert client["source"] == "call"
    channels = [e["type"] for e in head.ok("GET", f"/clients/{client['id']}/timeline")["items"] if e["kind"] == "touchpoint"]
    assert channels == ["telegram", "call"]


def test_an_admin_must_name_the_branch_of_a_touchpoint(world):
    response = world.admin.post("/touchpoints", json={"channel": "walk_in", "phone": phone_number()})
    assert response.status_code == 422 and "branch_id" in response.json()["error"]["fields"]
    created = world.admin.ok("POST", "/touchpoints", {"channel": "walk_in", "phone": phone_number(),
                                                       "branch_id": world.south.id}, status=201)
    assert world.south.head.get(f"/clients/{created['client_id']}").status_code == 200


def test_a_retried_create_with_the_same_idempotency_key_creates_one_client(world):
    head = world.north.head
    key = unique("key-")
    body = {"kind": "person", "name": "Повтор", "phones": [phone_number()]}
    first = head.post("/clients", json=body, headers={"Idempotency-Key": key})
    second = head.post("/clients", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers.get("Idempotent-Replayed") == "true"
    reused = head.post("/clients", json={**body, "name": "Другое"}, headers={"Idempotency-Key": key})
    assert reused.status_code == 409 and "Idempotency-Key" in reused.json()["error"]["fields"]
    assert len(head.ok("GET", "/clients", params={"q": body["phones"][0]})["items"]) == 1


def test_a_conflict_is_not_replayed_for_an_idempotency_key_so_a_retry_runs_again(world):
    head = world.north.head
    phone = phone_number()
    taken = head.ok("POST", "/clients", {"kind": "person", "name": "Занят", "phones": [phone]}, status=201)
    key = {"Idempotency-Key": unique("key-")}
    body = {"kind": "person", "name": "Позже", "phones": [phone]}
    assert head.post("/clients", json=body, headers=key).status_code == 409
    head.ok("PATCH", f"/clients/{taken['id']}", {"phones": [phone_number()]})  # the phone is free now
    retried = head.post("/clients", json=body, headers=key)
    assert retried.status_code == 201, retried.text
    assert "Idempotent-Replayed" not in retried.headers


def test_simultaneous_retries_with_one_idempotency_key_write_once(world):
    head = world.north.head
    key = unique("key-")
    body = {"kind": "person", "name": "Гонка", "phones": [phone_number()]}
    pool = eventlet.GreenPool(5)
    responses = list(pool.imap(lambda _: head.post("/clients", json=body, headers={"Idempotency-Key": key}), range(5)))
    codes = sorted(r.status_code for r in responses)
    assert codes.count(201) >= 1 and set(codes) <= {201, 409}
    poll(lambda: head.post("/clients", json=body, headers={"Idempotency-Key": key}).status_code == 201,
         message="the key's first answer to be replayable")
    assert len(head.ok("GET", "/clients", params={"q": body["phones"][0]})["items"]) == 1


def test_a_stale_if_match_is_refused_and_the_etag_gives_the_version(world):
    head = world.north.head
    client = head.ok("POST", "/clients", {"kind": "company", "name": "Версии"}, status=201)
    response = head.get(f"/clients/{client['id']}")
    assert response.headers["ETag"] == '"1"'
    updated = head.patch(f"/clients/{client['id']}", json={"name": "Версии 2"}, headers={"If-Match": '"1"'})
    assert updated.status_code == 200 and updated.json()["version"] == 2
    stale = head.patch(f"/clients/{client['id']}", json={"name": "Версии 3"}, headers={"If-Match": "1"})
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "version_conflict"
    assert head.ok("GET", f"/clients/{client['id']}")["name"] == "Версии 2"


def test_cyrillic_round_trips_unchanged(world):
    name = "Общество с ограниченной ответственностью «Ёлки-Палки» — №1"
    client = world.north.head.ok("POST", "/clients", {"kind": "company", "name": name,
                                                      "custom_fields": {"город": "Москва"}}, status=201)
    raw = world.north.head.get(f"/clients/{client['id']}")
    assert raw.headers["Content-Type"].startswith("application/json")
    assert name.encode() in raw.content
    assert raw.json()["custom_fields"] == {"город": "Москва"}


def test_health_reports_the_bus_and_every_service(system):
    health = Api(system.base_url.replace("/api/v1", "")).ok("GET", "/health")
    assert health["status"] == "ok" and health["bus"] == "ok"
    assert set(health["services"]) == set(backend_names(only_default=True))
    assert all(s["status"] == "ok" for s in health["services"].values())


def test_the_openapi_document_and_its_page_are_served(system):
    anonymous = Api(system.base_url)
    spec = anonymous.ok("GET", "/openapi.json")
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/clients/{client_id}" in spec["paths"] and "/api/v1/deals/{deal_id}/stage" in spec["paths"]
    page = anonymous.get("/docs")
    assert page.status_code == 200 and "openapi.json" in page.text
