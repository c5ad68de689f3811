"""Bringing a client base in from a CSV file, over HTTP as a head of sales or an administrator does it."""

import csv
import io
import json
import uuid

import pytest

from crm_common.testing.system import Api, phone_number, unique
from tests.e2e.uploads import MAPPING, csv_file, finished, run_import, send


def phone(n: int | None = None) -> str:
    return phone_number(n if n is not None else uuid.uuid4().int)


def clients_named(api: Api, name: str) -> list[dict]:
    return api.pages(f"/clients?q={name}")


@pytest.fixture
def branch(new_branch):
    return new_branch(managers=2)


def test_an_import_in_utf8_with_commas_creates_clients_assigned_round_robin_and_reports_bad_rows(branch):
    head, managers = branch.head, branch.managers
    tag = unique("импорт")
    good = [[f"Клиент {tag} {i}", phone(), "", f"{unique('c')}@mail.ru", f"{tag}, vip", "ООО Ромашка", ""]
            for i in range(4)]
    owned = [f"Клиент {tag} свой", phone(), "", "", tag, "", managers[1].me["email"].upper()]
    bad = [[f"Клиент {tag} плохой", "12345", "", "", tag, "", ""],
           ["", phone(), "", "", tag, "", ""],
           [f"Клиент {tag} чужой", phone(), "", "", tag, "", "nobody@nowhere.test"]]

    done = run_import(head, csv_file([*good, owned, *bad]))

    assert (done["status"], done["progress"], done["created"], done["skipped"]) == (
        "done", {"rows_read": 8, "total": 8}, 5, 0)
    assert (done["rows_with_errors"], done["errors_count"], done["dry_run"], done["file_name"]) == (3, 3, False, "база.csv")
    assert [(e["row"], e["field"], e["column"]) for e in done["errors"]] == [
        (7, "phones.0", "Телефон"), (8, "name", "ФИО"), (9, "owner_email", "Менеджер")]
    imported = clients_named(head, tag)
    assert len(imported) == 5 and all(c["tags"] == [tag.lower(), "vip"] or c["tags"] == [tag.lower()] for c in imported)
    by_name = {c["name"]: c for c in imported}
    assert by_name[owned[0]]["owner_id"] == managers[1].me["id"]
    assert {by_name[row[0]]["owner_id"] for row in good} == {m.me["id"] for m in managers}
    assert by_name[good[0][0]]["phones"][0].startswith("+7") and by_name[good[0][0]]["custom_fields"] == {
        "company": "ООО Ромашка"}
    timeline = head.ok("GET", f"/clients/{by_name[good[0][0]]['id']}/timeline")["items"]
    assert timeline[-1]["type"] == "client_created" and timeline[-1]["data"]["import_id"] == done["id"]


def test_an_import_in_windows_1251_with_semicolons_reads_cyrillic_and_quoted_semicolons(branch):
    head = branch.head
    tag = unique("кп")
    rows = [[f"Иванов; Иван {tag}", phone(), phone(), "", tag, "ЗАО «Берёза»", ""],
            [f"Смирнова Ольга Петровна {tag}", phone(), "", "", tag, "", ""]]

    done = run_import(head, csv_file(rows, delimiter=";", encoding="cp1251"))

    assert (done["created"], done["rows_with_errors"]) == (2, 0)
    names = {c["name"]: c for c in clients_named(head, tag)}
    assert set(names) == {rows[0][0], rows[1][0]}
    assert len(names[rows[0][0]]["phones"]) == 2 and names[rows[0][0]]["custom_fields"]["company"] == "ЗАО «Берёза»"


def test_the_errors_of_an_import_download_as_csv_with_rows_as_in_the_file(branch):
    head = branch.head
    rows = [[f"Ок {unique()}", phone(), "", "", "", "", ""], ["Плохой", "000", "", "ivan@", "", "", ""]]
    done = run_import(head, csv_file(rows))

    response = head.get(f"/imports/{done['id']}/errors")

    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in response.headers["Content-Disposition"]
    lines = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert lines == [["row", "field", "column", "message"],
                     ["3", "phones.0", "Телефон", "Not a valid phone number: «000»."],
                     ["3", "emails.0", "Email", "Not a valid email address: «ivan@»."]]


def test_a_dry_run_reports_what_would_happen_and_creates_nothing(branch):
    head = branch.head
    tag = unique("проба")
    existing = head.ok("POST", "/clients", {"kind": "person", "name": f"Есть {tag}", "phones": [phone(1)]}, status=201)
    rows = [[f"Новый {tag}", phone(), "", "", "", "", ""], [f"Старый {tag}", phone(1), "", "", "", "", ""],
            [f"Плохой {tag}", "1", "", "", "", "", ""]]

    done = run_import(head, csv_file(rows), dry_run=True)

    assert (done["dry_run"], done["created"], done["skipped"], done["rows_with_errors"]) == (True, 1, 1, 1)
    assert [c["id"] for c in clients_named(head, tag)] == [existing["id"]]


def test_duplicates_are_skipped_merged_or_created_as_on_duplicate_says(branch):
    head = branch.head
    tag = unique("дубль")
    number, email = phone(), f"{unique('d')}@mail.ru"
    existing = head.ok("POST", "/clients", {"kind": "person", "name": f"Исходный {tag}", "phones": [number],
                                            "tags": ["vip"]}, status=201)
    # the second row repeats the first (same email); the first repeats the existing client (same phone)
    rows = [[f"Копия {tag}", number, "", email, "опт", "", ""], [f"Ещё копия {tag}", "", "", email, "", "", ""]]

    skipped = run_import(head, csv_file(rows))
    assert (skipped["created"], skipped["skipped"], skipped["merged"]) == (0, 2, 0)
    assert [c["id"] for c in clients_named(head, tag)] == [existing["id"]]

    merged = run_import(head, csv_file(rows), on_duplicate="merge")
    assert (merged["created"], merged["merged"]) == (0, 2)
    client = head.ok("GET", f"/clients/{existing['id']}")
    assert (client["emails"], client["tags"], client["name"]) == ([email], ["vip", "опт"], f"Исходный {tag}")

    twin = run_import(head, csv_file(rows[:1]), on_duplicate="create_anyway")
    assert twin["created"] == 1
    both = clients_named(head, tag)
    assert len(both) == 2
    copy = next(c for c in both if c["id"] != existing["id"])
    assert copy["phones"] == client["phones"][:1]
    found = head.ok("GET", f"/clients/{copy['id']}/duplicates")["items"]
    assert found[0]["client"]["id"] == existing["id"]
    assert {"reason": "same_phone", "value": copy["phones"][0]} in found[0]["reasons"]
    # POST /clients still refuses the phone, naming the client that claims it
    refused = head.post("/clients", json={"kind": "person", "name": "Третий", "phones": [number]})
    assert refused.status_code == 409 and refused.json()["error"]["existing_id"] == existing["id"]


def test_an_import_is_a_head_or_administrator_matter_within_their_branches(branch, world):
    content = csv_file([[f"Права {unique()}", phone(), "", "", "", "", ""]])
    manager, head, admin = branch.managers[0], branch.head, world.admin

    assert send(manager, content).status_code == 403
    assert send(head, content, branch_id=world.north.id).status_code == 403
    no_branch = send(admin, content)
    assert no_branch.status_code == 422 and "branch_id" in no_branch.json()["error"]["fields"]
    by_admin = run_import(admin, content, branch_id=branch.id)
    assert by_admin["branch_id"] == branch.id

    assert head.get(f"/imports/{by_admin['id']}").status_code == 200
    assert world.north.head.get(f"/imports/{by_admin['id']}").status_code == 404
    assert manager.get(f"/imports/{by_admin['id']}").status_code == 403
    assert by_admin["id"] in [i["id"] for i in head.ok("GET", "/imports?status=done")["items"]]
    assert by_admin["id"] not in [i["id"] for i in world.north.head.pages("/imports")]


def test_the_same_upload_under_one_idempotency_key_is_imported_once(branch):
    head = branch.head
    tag = unique("ключ")
    content = csv_file([[f"Один {tag}", phone(), "", "", "", "", ""]])
    key = {"Idempotency-Key": unique("import-")}

    first = head.post("/imports", files={"file": ("a.csv", content)}, data={"mapping": json.dumps(MAPPING)}, headers=key)
    again = head.post("/imports", files={"file": ("a.csv", content)}, data={"mapping": json.dumps(MAPPING)}, headers=key)
    other = head.post("/imports", files={"file": ("a.csv", content + content[-40:])},
                      data={"mapping": json.dumps(MAPPING)}, headers=key)

    assert first.status_code == again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert other.status_code == 409
    finished(head, first.json()["id"])
    assert len(clients_named(head, tag)) == 1
