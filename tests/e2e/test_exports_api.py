"""Client exports over HTTP: who may export, the daily cap, the file and its first line, tracing a leaked copy.

The e2e system runs with ``CRM_EXPORT_DAILY_ROWS=30`` (conftest.py), so a cap is reached with a few clients."""

import csv
import io
from datetime import datetime, timedelta

import pytest

from crm_common.testing.fixtures import poll
from crm_common.testing.system import Api, unique

DAILY_ROWS = 30


@pytest.fixture
def branch(new_branch, admin):
    """A branch of its own whose head an administrator allowed to export."""
    made = new_branch(managers=1)
    granted = admin.ok("PATCH", f"/users/{made.head.me['id']}", {"can_export": True})
    assert granted["can_export"] is True
    return made


def add_clients(api: Api, tag: str, count: int) -> list[dict]:
    return [api.ok("POST", "/clients", {"kind": "person", "name": f"Клиент {tag} {n}", "tags": [tag],
                                        "emails": [f"{unique('c')}@mail.test"]}) for n in range(count)]


def export(api: Api, filter_: dict) -> dict:
    accepted = api.ok("POST", "/exports", {"filter": filter_}, status=202)
    assert accepted["status"] == "running"
    return poll(lambda: (e := api.ok("GET", f"/exports/{accepted['id']}"))["status"] != "running" and e,
                timeout=30, message="the export to finish")


def download(api: Api, export_id: str) -> tuple[bytes, list[list[str]]]:
    response = api.get(f"/exports/{export_id}/file")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/csv")
    return response.content, list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))


def test_a_manager_and_a_head_not_granted_exports_get_403_and_a_granted_head_exports_only_their_branch(
    world, branch, admin
):
    tag = unique("выгрузка")
    theirs = add_clients(branch.head, tag, 2)
    add_clients(world.north.head, tag, 1)  # the same tag in another branch

    assert world.north.managers[0].post("/exports", {"filter": {}}).status_code == 403
    refused = world.north.head.post("/exports", {"filter": {}})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert world.north.head.get("/exports").status_code == 403

    done = export(branch.head, {"tag": tag})
    _, lines = download(branch.head, done["id"])

    assert done["status"] == "done" and done["rows"] == 2
    assert {c["id"] for c in theirs} <= {line[0] for line in lines[2:]}
    assert {line[8] for line in lines[2:]} == {branch.id}, "every row, markers too, in the head's branch"
    assert world.north.head.get(f"/exports/{done['id']}").status_code == 403
    assert admin.ok("GET", f"/exports/{done['id']}")["user_id"] == branch.head.me["id"]
    withdrawn = admin.ok("PATCH", f"/users/{branch.head.me['id']}", {"can_export": False})
    assert withdrawn["can_export"] is False
    assert branch.head.get(f"/exports/{done['id']}/file").status_code == 403


def test_the_file_names_its_export_user_and_time_first_then_the_clients_the_filter_matches(branch, admin):
    tag = unique("файл")
    clients = add_clients(branch.head, tag, 3)
    add_clients(branch.head, unique("другой"), 1)

    done = export(branch.head, {"tag": tag})
    raw, lines = download(branch.head, done["id"])

    assert raw.startswith(b"\xef\xbb\xbf"), "UTF-8 with a BOM, as spreadsheets want it"
    assert lines[0][0] == f"# CRM client export {done['id']}"
    assert lines[0][1] == f"user {branch.head.me['email']} ({branch.head.me['id']})"
    assert lines[0][2] == f"created {done['created_at']}"
    assert lines[1][:5] == ["id", "kind", "name", "phones", "emails"]
    rows = {line[0]: line for line in lines[2:]}
    assert len(rows) == 3 + 3, "three clients and three marker rows"
    for client in clients:
        assert rows[client["id"]][2] == client["name"] and rows[client["id"]][4] == client["emails"][0]
        assert rows[client["id"]][6] == tag
    assert done["filter"]["tag"] == tag and done["rows"] == 3
    finished = datetime.fromisoformat(done["finished_at"])
    assert datetime.fromisoformat(done["expires_at"]) - finished == timedelta(hours=24)
    # the export and its download are on record, each with the clients it holds
    def on_record():
        audit = admin.ok("GET", f"/audit?user_id={branch.head.me['id']}&action=export")["items"]
        return [(e["ref_type"], e["ref_id"], e["count"]) for e in audit if e["ref_id"] == done["id"]]

    poll(lambda: len(on_record()) == 2, timeout=15, message="the export and its download in the audit log")
    assert on_record() == [("export_file", done["id"], 3), ("export", done["id"], 3)]


def test_exports_past_the_daily_row_cap_are_429_export_cap_with_retry_after(branch):
    tag = unique("лимит")
    add_clients(branch.head, tag, 12)

    assert export(branch.head, {"tag": tag})["rows"] == 12
    assert export(branch.head, {"tag": tag})["rows"] == 12
    refused = branch.head.post("/exports", {"filter": {"tag": tag}})

    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "export_cap"
    assert 0 < int(refused.headers["Retry-After"]) <= 86400
    assert f"6 of today's {DAILY_ROWS} rows left" in refused.json()["error"]["message"]
    assert export(branch.head, {"tag": tag, "q": f"Клиент {tag} 1"})["rows"] <= 6, "a narrower filter still fits"


def test_a_leaked_file_is_traced_to_its_export_and_user(branch, admin):
    tag = unique("утечка")
    clients = add_clients(branch.head, tag, 5)
    leaked = export(branch.head, {"tag": tag})
    other = export(branch.head, {"tag": tag})
    _, lines = download(branch.head, leaked["id"])
    known = {c["id"] for c in clients}
    # what turns up outside: names and phones only, the export's first line and ids cut off
    pasted = "\n".join(f"{line[2]};{line[3]}" for line in lines[2:] if line[3] or line[0] not in known)

    found = admin.ok("POST", "/exports/trace", {"text": pasted})

    assert found["items"][0]["export_id"] == leaked["id"]
    assert found["items"][0]["user_id"] == branch.head.me["id"]
    assert [m["kind"] for m in found["items"][0]["matched"]] == ["phone"] * 3
    assert other["id"] not in [item["export_id"] for item in found["items"]]
    assert branch.head.post("/exports/trace", {"text": pasted}).status_code == 403


def test_paging_and_unknown_filter_keys_are_422_naming_them(branch):
    paging = branch.head.post("/exports", {"filter": {"limit": "10"}})
    unknown = branch.head.post("/exports", {"filter": {"colour": "red"}})
    wrong = branch.head.post("/exports", {"filter": {"sort": "phone"}})

    assert paging.status_code == 422 and list(paging.json()["error"]["fields"]) == ["filter.limit"]
    assert unknown.status_code == 422 and list(unknown.json()["error"]["fields"]) == ["filter.colour"]
    assert wrong.status_code == 422 and list(wrong.json()["error"]["fields"]) == ["filter.sort"]
