"""The audit log and the bulk-read alarm and cap, over HTTP: who read and listed which clients is on record, an
entry altered in the database is found, and a user reading the client base wholesale is reported and stopped."""

import uuid

import pytest
from sqlalchemy import create_engine, text

from crm_common.config import Settings
from crm_common.testing.fixtures import poll
from crm_common.testing.system import phone_number, unique
from tests.e2e.uploads import csv_file, run_import

ALERT, CAP = 200, 500  # the defaults the e2e system runs with (CRM_READ_ALERT_PER_HOUR, CRM_READ_CAP_PER_HOUR)


def new_client(api, name=None):
    body = {"kind": "person", "name": name or unique("Клиент "), "phones": [phone_number()]}
    return api.ok("POST", "/clients", body, status=201)


def entries(api, **filters):
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    return api.pages(f"/audit?{query}", limit=200)


def entries_when(api, check, **filters):
    """The entries once ``check`` holds: the gateway writes them a moment after it answers."""
    return poll(lambda: (found := entries(api, **filters)) and check(found) and found, timeout=10,
                message=f"audit entries {filters}")


@pytest.fixture
def gateway_db(system):
    env = system.env
    settings = Settings.from_config({"CRM": {"database_url": env["CRM_DATABASE_URL"],
                                             "database_prefix": env["CRM_DATABASE_PREFIX"]}})
    engine = create_engine(settings.database_url_for("gateway"))
    yield engine
    engine.dispose()


def test_reading_listing_and_changing_clients_and_logging_in_are_on_record(new_branch, world):
    branch = new_branch(managers=1)
    manager, head = branch.managers[0], branch.head
    mine = [new_client(manager) for _ in range(3)]
    manager.ok("GET", f"/clients/{mine[0]['id']}")
    listed = manager.ok("GET", "/clients?limit=200")["items"]
    manager.ok("PATCH", f"/clients/{mine[1]['id']}", {"source": "referral"})
    manager.ok("DELETE", f"/clients/{mine[2]['id']}")

    log = entries_when(head, lambda found: found[0]["action"] == "archive", user_id=manager.me["id"])

    actions = [(e["action"], e["ref_type"], e["ref_id"], e["count"]) for e in log]
    assert actions[:6] == [("archive", "client", mine[2]["id"], 1), ("update", "client", mine[1]["id"], 1),
                           ("list", "client", None, len(listed)), ("read", "client", mine[0]["id"], 1),
                           *[("create", "client", c["id"], 1) for c in reversed(mine[1:])]]
    assert ("create", "client", mine[0]["id"], 1) in actions and actions[-1][0] == "login"
    assert len(listed) == 3
    assert all(e["user_id"] == manager.me["id"] and e["branch_id"] == branch.id and e["request_id"] for e in log)
    assert [e["at"] for e in log] == sorted((e["at"] for e in log), reverse=True)
    reads = entries(head, user_id=manager.me["id"], action="read")
    assert [e["ref_id"] for e in reads] == [mine[0]["id"]]
    # another branch's head sees none of it; an administrator sees it all; a manager reads no audit log
    assert entries(world.south.head, user_id=manager.me["id"]) == []
    assert [e["id"] for e in entries(world.admin, user_id=manager.me["id"])] == [e["id"] for e in log]
    assert manager.get("/audit").status_code == 403
    assert head.get("/audit/verify").status_code == 403
    assert head.get("/audit?action=peek").status_code == 400


def test_the_chain_check_finds_an_entry_altered_in_the_database(admin, world, gateway_db):
    head = world.north.head
    client = new_client(head)
    head.ok("GET", f"/clients/{client['id']}")
    entry = entries_when(admin, lambda found: found[0]["ref_id"] == client["id"], user_id=head.me["id"],
                         action="read")[0]
    assert admin.ok("GET", "/audit/verify")["ok"] is True

    forged = str(uuid.uuid4())
    with gateway_db.begin() as connection:
        connection.execute(text("UPDATE audit_log SET ref_id = :forged WHERE id = :id"),
                           {"forged": forged, "id": entry["id"]})
    try:
        check = admin.ok("GET", "/audit/verify")
        assert (check["ok"], check["first_bad"]) == (False, {"id": entry["id"], "reason": "hash_mismatch"})
        assert check["checked"] >= 1
    finally:
        with gateway_db.begin() as connection:
            connection.execute(text("UPDATE audit_log SET ref_id = :ref WHERE id = :id"),
                               {"ref": client["id"], "id": entry["id"]})
    assert admin.ok("GET", "/audit/verify")["ok"] is True


def test_deleting_an_entry_breaks_the_chain_where_it_was(admin, world, gateway_db):
    head = world.north.head
    first, second = new_client(head), new_client(head)
    head.ok("GET", f"/clients/{first['id']}")
    head.ok("GET", f"/clients/{second['id']}")
    read_second, read_first = entries_when(admin, lambda found: found[0]["ref_id"] == second["id"],
                                           user_id=head.me["id"], action="read")[:2]
    assert (read_first["ref_id"], read_second["ref_id"]) == (first["id"], second["id"])
    with gateway_db.begin() as connection:
        row = connection.execute(text("SELECT * FROM audit_log WHERE id = :id"), {"id": read_first["id"]}).mappings().one()
        connection.execute(text("DELETE FROM audit_log WHERE id = :id"), {"id": read_first["id"]})
    try:
        check = admin.ok("GET", "/audit/verify")
        # the entry after the gap is the first found wrong: the read of the second client
        assert (check["ok"], check["first_bad"]) == (False, {"id": read_second["id"], "reason": "sequence_gap"})
    finally:
        with gateway_db.begin() as connection:
            columns = ", ".join(row.keys())
            connection.execute(text(f"INSERT INTO audit_log ({columns}) VALUES ({', '.join(':' + c for c in row.keys())})"),
                               dict(row))
    assert admin.ok("GET", "/audit/verify")["ok"] is True


def test_reading_the_client_base_wholesale_alerts_the_head_and_admins_once_and_then_stops_the_reader(
        new_branch, admin):
    branch = new_branch(managers=2)
    reader, colleague, head = branch.managers[0], branch.managers[1], branch.head
    tag = unique("выгрузка")
    rows = [[f"Клиент {tag} {i}", phone_number(), "", "", tag, "", reader.me["email"]] for i in range(CAP + 20)]
    assert run_import(head, csv_file(rows))["created"] == CAP + 20
    mine = new_client(colleague)

    first = reader.ok("GET", "/clients?limit=200")
    assert len(first["items"]) == 200  # exactly at the alarm: nobody is told yet
    second = reader.ok("GET", f"/clients?limit=200&cursor={first['next_cursor']}")

    def bulk_read_notices(api):
        return [n for n in api.pages("/notifications", limit=200)
                if n["kind"] == "bulk_read" and n["ref_id"] == reader.me["id"]]

    told = poll(lambda: bulk_read_notices(head), timeout=15, message="the head's bulk_read notice")
    assert poll(lambda: bulk_read_notices(admin), timeout=15, message="the admins' bulk_read notice")
    assert "400" in told[0]["text"] and told[0]["ref_type"] == "user"
    assert not bulk_read_notices(reader)

    third = reader.ok("GET", f"/clients?limit=200&cursor={second['next_cursor']}")  # 520 distinct: past the cap
    assert len(third["items"]) == CAP + 20 - 400
    # refused once the gateway has written the page's reads (a moment after answering it); reading a client of
    # the window again does not change the count
    refused = poll(lambda: [answer for answer in [reader.get(f"/clients/{third['items'][0]['id']}")]
                            if answer.status_code == 429], timeout=10, message="the read cap")[0]
    assert refused.json()["error"]["code"] == "read_cap"
    assert 3000 < int(refused.headers["Retry-After"]) <= 3600
    assert reader.get("/clients?limit=1").status_code == 429
    # the reader still works otherwise, and the others still read
    assert reader.ok("GET", "/me")["id"] == reader.me["id"]
    assert colleague.ok("GET", f"/clients/{mine['id']}")["id"] == mine["id"]
    assert len(bulk_read_notices(head)) == 1  # once per hour, not per read
    lists = entries(head, user_id=reader.me["id"], action="list")
    assert [e["count"] for e in lists] == [CAP + 20 - 400, 200, 200]
    assert {e["ref_id"] for e in entries(head, user_id=reader.me["id"], action="read")} <= {third["items"][0]["id"]}
