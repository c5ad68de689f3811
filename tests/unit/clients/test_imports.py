"""Imports on the fake unit of work: the upload, the batches, duplicates, dry runs, crashes and leases."""

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from clients import commands, imports
from clients import repository as repo
from clients.exceptions import ImportNotFound
from clients.models import Client, ClientContact, Import, ImportOutcome, TimelineEntry
from crm_common.caller import Caller
from crm_common.clock import utcnow
from crm_common.errors import Conflict, DuplicateClient, Forbidden, ValidationError

NORTH, SOUTH = str(uuid.uuid4()), str(uuid.uuid4())
HEAD = Caller(str(uuid.uuid4()), "head", NORTH)
SOUTH_HEAD = Caller(str(uuid.uuid4()), "head", SOUTH)
ADMIN = Caller(str(uuid.uuid4()), "admin", None)
MANAGERS = sorted(str(uuid.uuid4()) for _ in range(3))
MAPPING = {"name": "ФИО", "phones": ["Телефон", "Моб."], "emails": ["Email"], "tags": ["Метки"]}
REPLICA = "replica-a"


def phone(n: int) -> str:
    return f"+7 916 {n // 10000 % 1000:03d}-{n // 100 % 100:02d}-{n % 100:02d}"


def person(n: int, **data) -> dict:
    return {"name": f"Клиент {n}", "phones": [[0, phone(n)]], **data}


def upload(uow, rows: list[dict], caller=HEAD, start=True, **options) -> str:
    """Hand rows over as the gateway does (rows numbered from 2, the header being row 1) and start."""
    body = {"file_name": "base.csv", "mapping": MAPPING, "total": len(rows), **options}
    imp = uow.call(imports.create_import, caller, body, {"managers": MANAGERS})
    numbered = [{"row": index + 2, "data": data} for index, data in enumerate(rows)]
    for start_at in range(0, len(numbered), 1000):
        uow.call(imports.add_rows, caller, imp["id"], numbered[start_at:start_at + 1000])
    if start:
        uow.call(imports.start_import, caller, imp["id"])
    return imp["id"]


def run(uow, replica=REPLICA, ticks=100) -> None:
    for _ in range(ticks):
        more = imports.work(uow, replica, 30, "RU")
        uow.close()
        if not more:
            return
    raise AssertionError("the import did not finish")


def status(uow, import_id, caller=HEAD) -> dict:
    return uow.read(imports.get_import, caller, import_id)


def clients(uow) -> list[Client]:
    return uow.read(lambda s: list(s.scalars(select(Client).order_by(Client.created_at, Client.name)).all()))


def test_an_import_creates_one_client_per_row_with_one_client_created_event_each(uow):
    import_id = upload(uow, [person(1, emails=[[0, "A@X.RU"]], tags=[[0, "vip"], [0, "опт"]]), person(2), person(3)])
    uow.take_events()

    run(uow)

    done = status(uow, import_id)
    assert (done["status"], done["progress"], done["created"], done["skipped"], done["errors"]) == (
        "done", {"rows_read": 3, "total": 3}, 3, 0, [])
    assert done["finished_at"] and done["started_at"]
    made = clients(uow)
    assert {c.name for c in made} == {"Клиент 1", "Клиент 2", "Клиент 3"}
    first = next(c for c in made if c.name == "Клиент 1")
    assert (first.phones, first.emails, first.tags, first.branch_id) == (["+79160000001"], ["a@x.ru"], ["vip", "опт"], NORTH)
    assert first.name_key == "1 клиент" and "79160000001" in first.search_text
    assert uow.event_types() == ["client_created"] * 3
    assert {payload["client"]["id"] for _, payload in uow.events} == {c.id for c in made}
    entries = uow.read(lambda s: s.scalars(select(TimelineEntry)).all())
    assert {(e.client_id, e.type, e.data["import_id"]) for e in entries} == {(c.id, "client_created", import_id) for c in made}


def test_rows_without_an_owner_go_round_robin_to_the_branch_managers(uow):
    owner = str(uuid.uuid4())
    upload(uow, [person(n) for n in range(1, 7)] + [person(7, owner_email="olga@firm.ru", owner_id=owner)])

    run(uow)

    owners = [c.owner_id for c in sorted(clients(uow), key=lambda c: int(c.name.split()[1]))]
    assert owners == MANAGERS * 2 + [owner]


def test_without_managers_the_head_who_imports_owns_the_clients_and_an_administrator_leaves_them_unowned(uow):
    body = {"file_name": "a.csv", "mapping": MAPPING, "total": 1}
    for caller, number in ((HEAD, 10), (ADMIN, 11)):
        imp = uow.call(imports.create_import, caller, {**body, "branch_id": NORTH}, {"managers": []})
        uow.call(imports.add_rows, caller, imp["id"], [{"row": 2, "data": person(number)}])
        uow.call(imports.start_import, caller, imp["id"])
    run(uow)

    assert sorted((c.name, c.owner_id or "") for c in clients(uow)) == [("Клиент 10", HEAD.id), ("Клиент 11", "")]


def test_a_row_with_an_invalid_phone_is_reported_with_its_row_and_column_and_the_rest_imported(uow):
    import_id = upload(uow, [person(1), {"name": "Плохой", "phones": [[1, "12345"]]}, {"name": ""}, person(4)])

    run(uow)

    done = status(uow, import_id)
    assert (done["created"], done["rows_with_errors"], done["errors_count"]) == (2, 2, 2)
    assert done["errors"] == [
        {"row": 3, "field": "phones.1", "column": "Моб.", "message": "Not a valid phone number: «12345»."},
        {"row": 4, "field": "name", "column": "ФИО", "message": "Missing: every client needs a name."},
    ]
    assert uow.read(imports.import_errors, HEAD, import_id, 0, 1000)["items"] == done["errors"]


def test_a_row_repeating_an_earlier_row_of_the_file_is_skipped_naming_the_client_it_duplicates(uow):
    import_id = upload(uow, [person(1), {"name": "Снова", "phones": [[1, "8 916 000-00-01"]]}])

    run(uow)

    assert (status(uow, import_id)["created"], status(uow, import_id)["skipped"]) == (1, 1)
    [kept] = clients(uow)
    second = uow.read(lambda s: s.get(ImportOutcome, (import_id, 3)))
    assert (second.status, second.client_id) == ("skipped", kept.id)
    assert second.note == f"duplicate of client {kept.id} (same phone +79160000001)"


def test_a_row_duplicating_a_client_of_the_base_is_skipped_by_default(uow):
    existing = uow.call(commands.create_client, HEAD, {"kind": "person", "name": "Старый", "emails": ["a@x.ru"]}, None, "RU")
    uow.take_events()

    import_id = upload(uow, [person(1, emails=[[0, "A@x.ru"]])])
    run(uow)

    assert status(uow, import_id)["skipped"] == 1
    assert [c.id for c in clients(uow)] == [existing["id"]]
    assert uow.event_types() == []


def test_merging_adds_the_rows_new_contacts_and_tags_to_the_existing_client(uow):
    existing = uow.call(commands.create_client, HEAD, {"kind": "person", "name": "Старый", "emails": ["a@x.ru"],
                                                       "tags": ["vip"], "source": "сайт"}, None, "RU")
    uow.take_events()

    import_id = upload(uow, [person(1, emails=[[0, "a@x.ru"]], tags=[[0, "опт"]], source="выставка"),
                             {"name": "Ещё раз", "phones": [[0, "+7 916 000-00-02"]], "emails": [[0, "a@x.ru"]]}],
                       on_duplicate="merge")
    run(uow)

    assert (status(uow, import_id)["merged"], status(uow, import_id)["created"]) == (2, 0)
    [client] = clients(uow)
    assert (client.id, client.name, client.source) == (existing["id"], "Старый", "сайт")
    assert client.phones == ["+79160000001", "+79160000002"] and client.tags == ["vip", "опт"]
    assert client.version == 2
    assert uow.event_types() == ["client_updated"]
    assert uow.events[0][1]["changed"] == ["phones", "tags"]
    contacts = uow.read(lambda s: {(c.value, c.claimed) for c in s.scalars(select(ClientContact))})
    assert contacts == {("a@x.ru", True), ("+79160000001", True), ("+79160000002", True)}


def test_create_anyway_makes_a_second_client_that_lists_the_shared_phone_unclaimed(uow):
    existing = uow.call(commands.create_client, HEAD, {"kind": "person", "name": "Старый", "phones": [phone(1)]}, None, "RU")

    import_id = upload(uow, [person(1)], on_duplicate="create_anyway")
    run(uow)

    assert status(uow, import_id)["created"] == 1
    contacts = uow.read(lambda s: sorted((c.client_id == existing["id"], c.claimed) for c in s.scalars(select(ClientContact))))
    assert contacts == [(False, False), (True, True)]
    # the rules of POST /clients and touchpoints still see one client with this phone
    with pytest.raises(DuplicateClient) as error:
        uow.call(commands.create_client, HEAD, {"kind": "person", "name": "Третий", "phones": [phone(1)]}, None, "RU")
    assert error.value.details["existing_id"] == existing["id"]
    touch = uow.call(commands.record_touchpoint, HEAD, {"channel": "call", "phone": phone(1)}, None, "RU")
    assert touch == {**touch, "client_id": existing["id"], "created": False}


def test_a_duplicate_made_on_purpose_may_still_be_edited_and_claims_the_phone_once_the_first_gives_it_up(uow):
    existing = uow.call(commands.create_client, HEAD, {"kind": "person", "name": "Старый", "phones": [phone(1)]}, None, "RU")
    upload(uow, [person(1)], on_duplicate="create_anyway")
    run(uow)
    twin = next(c for c in clients(uow) if c.id != existing["id"])

    uow.call(commands.update_client, HEAD, twin.id, {"phones": [phone(1), phone(2)], "name": "Близнец"}, None, None, "RU")
    uow.call(commands.update_client, HEAD, existing["id"], {"phones": []}, None, None, "RU")

    claims = uow.read(lambda s: {(c.client_id, c.value): c.claimed for c in s.scalars(select(ClientContact))})
    assert claims == {(twin.id, "+79160000001"): True, (twin.id, "+79160000002"): True}


def test_a_dry_run_reports_what_would_happen_and_writes_no_client(uow):
    uow.call(commands.create_client, HEAD, {"kind": "person", "name": "Старый", "phones": [phone(1)]}, None, "RU")
    uow.take_events()

    import_id = upload(uow, [person(1), person(2), person(2), {"name": "", "phones": [[0, phone(3)]]}],
                       dry_run=True, on_duplicate="merge")
    run(uow)

    done = status(uow, import_id)
    assert (done["dry_run"], done["status"], done["created"], done["merged"], done["rows_with_errors"]) == (
        True, "done", 1, 2, 1)
    assert len(clients(uow)) == 1 and uow.events == []
    third = uow.read(lambda s: s.get(ImportOutcome, (import_id, 4)))
    assert (third.status, third.client_id, third.note) == ("merged", None, "duplicate of row 3 (same phone +79160000002)")


def test_a_large_import_runs_in_batches_each_committed_with_its_counters(uow, monkeypatch):
    monkeypatch.setattr(imports, "BATCH_ROWS", 4)
    import_id = upload(uow, [person(n) for n in range(1, 11)])

    assert imports.work(uow, REPLICA, 30, "RU", budget_s=0) is True  # one batch, then the tick ends
    uow.close()

    half = status(uow, import_id)
    assert (half["status"], half["progress"], half["created"]) == ("running", {"rows_read": 4, "total": 10}, 4)
    assert uow.read(lambda s: s.get(Import, import_id)).last_row == 5
    run(uow)
    assert status(uow, import_id)["created"] == 10 and len(clients(uow)) == 10


def test_a_batch_that_fails_half_way_leaves_nothing_and_the_next_attempt_imports_every_row_once(uow, monkeypatch):
    monkeypatch.setattr(imports, "BATCH_ROWS", 3)
    import_id = upload(uow, [person(n) for n in range(1, 10)])
    imports.work(uow, REPLICA, 30, "RU", budget_s=0)  # rows 2-4 committed
    uow.close()
    events_before = len(uow.events)
    original = imports.Batch._write

    def crash(self):  # the process dies while the second batch is being written
        original(self)
        raise RuntimeError("killed")

    monkeypatch.setattr(imports.Batch, "_write", crash)
    assert imports.work(uow, REPLICA, 30, "RU") is True
    uow.close()
    failed = status(uow, import_id)
    assert (failed["progress"]["rows_read"], failed["created"], len(clients(uow))) == (3, 3, 3)
    assert len(uow.events) == events_before

    monkeypatch.setattr(imports.Batch, "_write", original)
    run(uow)

    assert status(uow, import_id)["created"] == 9
    assert sorted(c.name for c in clients(uow)) == sorted(f"Клиент {n}" for n in range(1, 10))
    assert len(uow.events) == 9


def test_an_import_failing_again_and_again_is_given_up_as_failed(uow, monkeypatch):
    import_id = upload(uow, [person(1)])
    monkeypatch.setattr(imports.Batch, "_write", lambda self: 1 / 0)

    run(uow)

    failed = status(uow, import_id)
    assert failed["status"] == "failed" and "ZeroDivisionError" in failed["error"] and failed["created"] == 0


def test_an_import_another_replica_holds_is_left_alone_until_its_lease_runs_out(uow, monkeypatch):
    monkeypatch.setattr(imports, "BATCH_ROWS", 2)
    import_id = upload(uow, [person(n) for n in range(1, 6)])
    imports.work(uow, "replica-a", 30, "RU", budget_s=0)
    uow.close()

    assert imports.work(uow, "replica-b", 30, "RU") is False
    uow.close()
    assert status(uow, import_id)["progress"]["rows_read"] == 2

    def expire(session):
        session.get(Import, import_id).lease_until = utcnow() - timedelta(seconds=1)

    uow.call(lambda u: expire(u.session))
    run(uow, replica="replica-b")
    assert status(uow, import_id)["created"] == 5 and len(clients(uow)) == 5
    # the first replica comes back: the import is not its any more
    assert imports.process_batch(uow, import_id, "replica-a", 30, "RU") is False


def test_an_upload_abandoned_half_way_is_failed_after_a_while_and_takes_no_more_rows(uow):
    import_id = upload(uow, [person(1), person(2)], start=False)

    assert uow.call(lambda u: imports.fail_abandoned(u.session, utcnow())) == 0
    assert uow.call(lambda u: imports.fail_abandoned(u.session, utcnow() + timedelta(minutes=11))) == 1

    abandoned = status(uow, import_id)
    assert abandoned["status"] == "failed" and "did not finish" in abandoned["error"]
    with pytest.raises(Conflict):
        uow.call(imports.add_rows, HEAD, import_id, [{"row": 9, "data": person(9)}])
    with pytest.raises(Conflict):
        uow.call(imports.start_import, HEAD, import_id)


def test_a_chunk_sent_twice_is_staged_once_and_an_import_starts_only_with_every_row(uow):
    imp = uow.call(imports.create_import, HEAD, {"mapping": MAPPING, "total": 3}, None)
    chunk = [{"row": 2, "data": person(1)}, {"row": 3, "data": person(2)}]
    assert uow.call(imports.add_rows, HEAD, imp["id"], chunk) == {"received": 2}
    assert uow.call(imports.add_rows, HEAD, imp["id"], chunk) == {"received": 2}

    with pytest.raises(ValidationError) as error:
        uow.call(imports.start_import, HEAD, imp["id"])
    assert error.value.fields == {"rows": ["2 of 3 rows were received."]}
    with pytest.raises(ValidationError):
        uow.call(imports.add_rows, HEAD, imp["id"], [{"row": 4, "data": person(3)}, {"row": 5, "data": person(4)}])
    uow.call(imports.add_rows, HEAD, imp["id"], [{"row": 5, "data": person(3)}])
    assert uow.call(imports.start_import, HEAD, imp["id"])["status"] == "queued"
    assert uow.call(imports.start_import, HEAD, imp["id"])["status"] == "queued"
    assert uow.call(imports.add_rows, HEAD, imp["id"], chunk) == {"received": 3}  # a late retry changes nothing


@pytest.mark.parametrize(
    "rows", [{"row": 2}, [{"row": 1, "data": {}}], [{"row": "2", "data": {}}], [{"row": 2, "data": []}],
             [{"row": 2, "data": {}}, {"row": 2, "data": {}}]],
)
def test_malformed_rows_are_refused(uow, rows):
    imp = uow.call(imports.create_import, HEAD, {"mapping": MAPPING, "total": 3}, None)

    with pytest.raises(ValidationError):
        uow.call(imports.add_rows, HEAD, imp["id"], rows)


def test_imports_are_seen_by_the_head_of_their_branch_and_administrators_only(uow):
    import_id = upload(uow, [person(1)], start=False)

    assert status(uow, import_id, ADMIN)["id"] == import_id
    with pytest.raises(ImportNotFound):
        status(uow, import_id, SOUTH_HEAD)
    with pytest.raises(Forbidden):
        status(uow, import_id, Caller(str(uuid.uuid4()), "manager", NORTH))
    assert uow.read(repo.list_imports, SOUTH_HEAD, {"limit": 50}, lambda i: i.id)["items"] == []
    assert uow.read(repo.list_imports, HEAD, {"limit": 50}, lambda i: i.id)["items"] == [import_id]
    with pytest.raises(Forbidden):
        uow.call(imports.create_import, SOUTH_HEAD, {"mapping": MAPPING, "total": 1, "branch_id": NORTH}, None)


def test_an_administrator_must_name_the_branch_of_an_import(uow):
    with pytest.raises(ValidationError) as error:
        uow.call(imports.create_import, ADMIN, {"mapping": MAPPING, "total": 1}, None)

    assert "branch_id" in error.value.fields



def test_a_replica_whose_lease_was_taken_while_it_paused_sees_it_within_its_own_tick(uow, monkeypatch):
    from sqlalchemy.orm import Session

    monkeypatch.setattr(imports, "BATCH_ROWS", 2)
    import_id = upload(uow, [person(n) for n in range(1, 6)])
    imports.work(uow, "replica-a", 30, "RU", budget_s=0)
    held = uow.session.get(Import, import_id)  # replica-a's session still holds the import as it last read it

    with Session(uow.engine) as other:  # meanwhile replica-b took over and decided two more rows
        taken = other.get(Import, import_id)
        taken.lease_owner, taken.last_row = "replica-b", taken.last_row + 2
        other.commit()

    assert imports.process_batch(uow, import_id, "replica-a", 30, "RU") is False
    uow.commit()
    assert held.lease_owner == "replica-b" and len(clients(uow)) == 2
