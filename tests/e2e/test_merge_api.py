"""Finding likely duplicates and merging two clients into one, over HTTP; deals follow the merge."""

import pytest

from crm_common.testing.fixtures import poll
from crm_common.testing.system import phone_number, unique

STAGES = [{"name": "Новая", "kind": "open"}, {"name": "Успех", "kind": "won"}, {"name": "Отказ", "kind": "lost"}]


@pytest.fixture
def branch(new_branch):
    return new_branch(managers=1)


def client(api, **fields) -> dict:
    return api.ok("POST", "/clients", {"kind": "person", "name": f"Клиент {unique()}", **fields}, status=201)


def test_a_client_with_the_same_name_and_company_is_listed_as_a_likely_duplicate_with_the_reason(branch):
    head = branch.head
    name = f"Петров Иван {unique()}"
    one = client(head, name=name, custom_fields={"company": "ООО «Ромашка»"})
    same = client(head, name=name.upper(), custom_fields={"company": "Ромашка"})
    client(head, name=name, custom_fields={"company": "Лютик"})

    found = head.ok("GET", f"/clients/{one['id']}/duplicates")["items"]

    assert [(d["client"]["id"], d["reasons"]) for d in found] == [
        (same["id"], [{"reason": "same_name", "value": name.upper(), "company": "Ромашка"}])]


def test_a_merge_keeps_everything_of_both_and_the_other_becomes_a_redirect(branch):
    head = branch.head
    kept = client(head, phones=[phone_number()], tags=["vip"], custom_fields={"inn": "1"})
    other = client(head, emails=[f"{unique('m')}@mail.ru"], tags=["опт"], custom_fields={"inn": "2", "city": "Тверь"})
    head.ok("POST", f"/clients/{other['id']}/interactions", {"type": "call", "text": "Звонил"}, status=201)

    merged = head.ok("POST", f"/clients/{kept['id']}/merge", {"other_id": other["id"]})

    assert (merged["phones"], merged["emails"], merged["tags"]) == (kept["phones"], other["emails"], ["vip", "опт"])
    assert merged["custom_fields"] == {"inn": "1", "city": "Тверь"} and merged["version"] == kept["version"] + 1
    redirect = head.get(f"/clients/{other['id']}", allow_redirects=False)
    assert redirect.status_code == 301
    assert redirect.headers["Location"] == f"/api/v1/clients/{kept['id']}"
    assert redirect.json() == {"merged_into": kept["id"]}
    assert head.ok("GET", f"/clients/{other['id']}")["id"] == kept["id"]  # a client that follows redirects
    timeline = head.get(f"/clients/{other['id']}/timeline", allow_redirects=False)
    assert timeline.status_code == 301 and timeline.headers["Location"].endswith(f"{kept['id']}/timeline")
    types = [e["type"] for e in head.ok("GET", f"/clients/{kept['id']}/timeline")["items"]]
    assert types[0] == "client_merged" and "call" in types and types.count("client_created") == 2
    listed = {c["id"] for c in head.pages(f"/clients?q={other['name']}")}
    assert listed == set()
    refused = head.patch(f"/clients/{other['id']}", json={"name": "Новое имя"})
    assert refused.status_code == 409 and refused.json()["error"]["merged_into"] == kept["id"]


def test_a_merge_that_cannot_be_is_422_and_a_manager_may_not_merge(branch, world):
    head, admin, manager = branch.head, world.admin, branch.managers[0]
    one, two = client(head), client(head)
    far = client(world.south.head)

    same = head.post(f"/clients/{one['id']}/merge", json={"other_id": one["id"]})
    assert same.status_code == 422 and "other_id" in same.json()["error"]["fields"]
    across = admin.post(f"/clients/{one['id']}/merge", json={"other_id": far["id"]})
    assert across.status_code == 422 and "other_id" in across.json()["error"]["fields"]
    assert head.post(f"/clients/{one['id']}/merge", json={"other_id": far["id"]}).status_code == 422
    assert manager.post(f"/clients/{one['id']}/merge", json={"other_id": two["id"]}).status_code == 403
    head.ok("POST", f"/clients/{one['id']}/merge", {"other_id": two["id"]})
    again = head.post(f"/clients/{one['id']}/merge", json={"other_id": two["id"]})
    assert again.status_code == 422 and "other_id" in again.json()["error"]["fields"]


def test_the_deals_of_a_merged_client_follow_it_to_the_kept_one(branch):
    head = branch.head
    pipeline = head.ok("POST", "/pipelines", {"name": f"П {unique()}", "stages": STAGES}, status=201)
    kept, other = client(head), client(head)
    deal = head.ok("POST", "/deals", {"client_id": other["id"], "pipeline_id": pipeline["id"], "title": "Поставка",
                                      "amount": "100.00", "currency": "RUB"}, status=201)

    head.ok("POST", f"/clients/{kept['id']}/merge", {"other_id": other["id"]})

    moved = poll(lambda: (d := head.ok("GET", f"/deals/{deal['id']}"))["client_id"] == kept["id"] and d,
                 timeout=20, message="the deal to follow the merge")
    assert moved["version"] == deal["version"] + 1
    assert [d["id"] for d in head.pages(f"/deals?client_id={kept['id']}")] == [deal["id"]]
    refused = head.post("/deals", json={"client_id": other["id"], "pipeline_id": pipeline["id"], "title": "Ещё",
                                        "amount": "1.00", "currency": "RUB"})
    assert refused.status_code == 409 and refused.json()["error"]["merged_into"] == kept["id"]
