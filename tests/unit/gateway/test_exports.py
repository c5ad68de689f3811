"""Client exports: the daily cap, the marker rows, the file, tracing and expiry, on an in-memory database with a
fake clients service."""

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from crm_common.caller import Caller
from crm_common.clock import utcnow
from crm_common.config import Settings
from crm_common.errors import Conflict, Forbidden, ValidationError
from crm_common.testing.uow import FakeUnitOfWork
from gateway import export_rules as rules
from gateway import exports
from gateway.models import Base, Export, ExportChunk, ExportQuota, User

SETTINGS = Settings(secret_key="k" * 40, export_daily_rows=10, export_marker_domain="leaks.example.org")
KEY = rules.marker_key("k" * 40)


@pytest.fixture
def uow():
    with FakeUnitOfWork(Base) as unit:
        yield unit


def add_user(uow, role="admin", can_export=False, branch_id=None) -> Caller:
    user = User(id=str(uuid.uuid4()), email=f"{uuid.uuid4().hex[:8]}@crm.test", name="U", password_hash="x", role=role,
                branch_id=branch_id, active=True, can_export=can_export)
    uow.session.add(user)
    uow.commit()
    return Caller(user.id, role, branch_id)


def client(number: int) -> dict:
    return {"id": str(uuid.UUID(int=number)), "kind": "person", "name": f"Клиент {number}", "phones": [f"+7916000{number:04d}"],
            "emails": [f"c{number}@mail.test"], "source": "site", "tags": ["vip"], "custom_fields": {"inn": str(number)},
            "owner_id": "owner-1", "branch_id": "branch-1", "archived": False,
            "created_at": f"2026-11-{1 + number % 28:02d}T10:00:00Z", "updated_at": "2026-11-30T10:00:00Z"}


class FakeClients:
    """``list_clients`` over a fixed list, in pages by cursor (the position), as the caller asked."""

    def __init__(self, clients):
        self.clients = clients
        self.calls = []

    def list_clients(self, caller, query):
        self.calls.append((caller, dict(query)))
        start = int(query.get("cursor") or 0)
        end = start + int(query["limit"])
        return {"items": self.clients[start:end], "next_cursor": str(end) if end < len(self.clients) else None}


def ask(uow, caller, count, body=None, settings=SETTINGS) -> dict:
    prepared = exports.prepare(uow.reader, caller, body if body is not None else {"filter": {}})
    with uow.transaction():
        return exports.create_export(uow, settings, caller, prepared, count)


def make(uow, clients, settings=SETTINGS) -> FakeClients:
    service = FakeClients(clients)
    assert exports.run_next(uow, settings, service, "replica-1")
    return service


def file_lines(uow, caller, export_id) -> list[list[str]]:
    _, chunks = exports.open_file(uow.reader, caller, export_id)
    data = b"".join(chunks)
    assert data.startswith(b"\xef\xbb\xbf"), "UTF-8 with a BOM"
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def quota(uow, caller) -> int:
    row = uow.session.get(ExportQuota, (caller.id, rules.quota_day(utcnow())))
    uow.rollback()
    return row.rows if row else 0


# ---- who may export

def test_an_administrator_and_a_head_granted_can_export_may_export_and_no_one_else(uow):
    assert exports.prepare(uow.reader, add_user(uow, "admin"), {"filter": {}})
    assert exports.prepare(uow.reader, add_user(uow, "head", can_export=True, branch_id="b"), {"filter": {}})
    for caller in (add_user(uow, "head", branch_id="b"), add_user(uow, "manager", branch_id="b"),
                   add_user(uow, "manager", can_export=True, branch_id="b")):
        with pytest.raises(Forbidden):
            exports.prepare(uow.reader, caller, {"filter": {}})


def test_paging_and_unknown_filter_keys_are_refused_naming_the_key(uow):
    admin = add_user(uow)
    with pytest.raises(ValidationError) as refused:
        exports.prepare(uow.reader, admin, {"filter": {"limit": "10", "cursor": "abc"}})
    assert set(refused.value.fields) == {"filter.limit", "filter.cursor"}
    with pytest.raises(ValidationError) as refused:
        exports.prepare(uow.reader, admin, {"filter": {"colour": "red"}})
    assert set(refused.value.fields) == {"filter.colour"}


def test_the_filter_reaches_the_clients_service_as_the_query_of_get_clients(uow):
    admin = add_user(uow)
    prepared = exports.prepare(uow.reader, admin, {"filter": {"tag": "vip", "archived": True, "created_from": "2026-01-01"}})
    assert prepared["query"] == {"tag": "vip", "archived": "true", "created_from": "2026-01-01T00:00:00Z",
                                 "sort": "-created_at"}


# ---- the daily cap

def test_exports_fit_while_the_days_rows_stay_within_the_cap():
    assert rules.fits(10, 0, 10)
    assert rules.fits(4, 6, 10)
    assert not rules.fits(5, 6, 10)
    assert rules.fits(0, 10, 10), "an empty export takes nothing"
    assert not rules.fits(1, 0, 0), "a cap of 0 allows no rows"


def test_a_refused_export_is_told_to_come_back_at_midnight_utc():
    assert rules.seconds_until_next_day(datetime(2026, 12, 1, 23, 59, 30, tzinfo=UTC)) == 30
    assert rules.seconds_until_next_day(datetime(2026, 12, 1, 0, 0, 0, tzinfo=UTC)) == 86400
    assert rules.quota_day(datetime(2026, 12, 1, 23, 30, tzinfo=UTC)) == datetime(2026, 12, 1).date()


def test_an_export_past_the_daily_cap_is_refused_with_retry_after_and_reserves_nothing(uow):
    admin = add_user(uow)
    ask(uow, admin, 6)
    with pytest.raises(exports.ExportCapReached) as refused:
        ask(uow, admin, 5)
    assert refused.value.code == "export_cap" and refused.value.status == 429
    assert 0 < refused.value.details["retry_after"] <= 86400
    assert "4 of today's 10 rows left" in refused.value.message
    assert quota(uow, admin) == 6
    assert uow.session.query(Export).count() == 1
    ask(uow, admin, 4)
    assert quota(uow, admin) == 10


def test_the_cap_is_per_user(uow):
    first, second = add_user(uow), add_user(uow)
    ask(uow, first, 10)
    ask(uow, second, 10)
    with pytest.raises(exports.ExportCapReached):
        ask(uow, first, 1)


def test_rows_reserved_but_not_written_go_back_to_the_day(uow):
    admin = add_user(uow)
    ask(uow, admin, 8)  # counted 8; three were archived before the file was made
    make(uow, [client(n) for n in range(5)])
    assert quota(uow, admin) == 5


def test_a_file_never_holds_more_clients_than_were_reserved(uow):
    admin = add_user(uow)
    accepted = ask(uow, admin, 4)
    make(uow, [client(n) for n in range(9)])  # five more matched by the time the file was made
    export = exports.get_export(uow.reader, admin, accepted["id"])
    assert export["rows"] == 4
    data_lines = file_lines(uow, admin, accepted["id"])[2:]
    assert len(data_lines) == 4 + 3


def test_a_failed_export_gives_its_rows_back(uow):
    admin = add_user(uow)
    accepted = ask(uow, admin, 7)

    class Down:
        def list_clients(self, caller, query):
            raise ConnectionError("clients is down")

    for _attempt in range(exports.MAX_ATTEMPTS):
        uow.session.query(Export).update({"lease_until": None})  # the retry's pause is over
        uow.commit()
        assert exports.run_next(uow, SETTINGS, Down(), "replica-1")
    export = exports.get_export(uow.reader, admin, accepted["id"])
    assert export["status"] == "failed" and "clients is down" in export["error"]
    assert quota(uow, admin) == 0
    with pytest.raises(Conflict):
        exports.open_file(uow.reader, admin, accepted["id"])


# ---- markers

def test_markers_are_the_same_for_an_export_and_differ_between_exports():
    first = rules.markers_for(KEY, "export-1", 100, "leaks.example.org")
    assert first == rules.markers_for(KEY, "export-1", 100, "leaks.example.org")
    other = rules.markers_for(KEY, "export-2", 100, "leaks.example.org")
    assert {m.phone for m in first[0]}.isdisjoint(m.phone for m in other[0])
    assert {m.email for m in first[0]}.isdisjoint(m.email for m in other[0])
    assert first != rules.markers_for(rules.marker_key("another secret key of forty characters"), "export-1", 100,
                                      "leaks.example.org"), "without the key the markers cannot be predicted"


def test_a_marker_looks_like_a_client():
    (marker, *_), _ = rules.markers_for(KEY, "export-1", 10, "leaks.example.org")
    assert marker.phone.startswith("+79") and len(marker.phone) == 12 and marker.phone[1:].isdigit()
    assert marker.email.endswith("@leaks.example.org")
    assert len(marker.name.split()) == 2
    assert uuid.UUID(marker.id).version == 4


def test_a_file_has_three_markers_at_most_one_per_client_and_never_first():
    for rows in (0, 1, 2, 3, 50):
        markers, slots = rules.markers_for(KEY, f"export-{rows}", rows, "x.example")
        assert len(markers) == len(slots) == min(3, rows)
        assert all(1 <= slot < rows + len(markers) for slot in slots)
        assert slots == sorted(set(slots))


def test_markers_go_where_their_slots_say_and_take_the_row_before_them():
    markers, slots = rules.markers_for(KEY, "export-x", 20, "x.example")
    marked = rules.MarkedRows(markers, slots)
    lines = []
    for number in range(20):
        lines += marked.add(client(number))
    lines += marked.finish()
    assert len(lines) == 23
    for marker, slot in zip(markers, slots):
        row, before = lines[slot], lines[slot - 1]
        assert row[0] == marker.id and row[3] == marker.phone and row[4] == marker.email
        assert row[7:9] == before[7:9] and row[10:12] == before[10:12], "owner, branch and dates of its neighbour"
    assert [p["line"] for p in marked.placed] == [rules.FIRST_DATA_LINE + slot for slot in slots]


def test_markers_whose_slots_the_clients_did_not_reach_go_at_the_end():
    markers, slots = rules.markers_for(KEY, "export-y", 10, "x.example")
    marked = rules.MarkedRows(markers, slots)
    lines = marked.add(client(1))
    lines += marked.finish()
    assert len(lines) == 1 + 3
    assert len(marked.placed) == 3 and marked.clients == 1


# ---- the file

def test_the_file_names_its_export_user_and_time_then_the_header_then_clients_and_markers(uow):
    admin = add_user(uow)
    email = uow.session.get(User, admin.id).email
    uow.rollback()
    accepted = ask(uow, admin, 5, {"filter": {"tag": "vip"}})
    service = make(uow, [client(n) for n in range(5)])
    lines = file_lines(uow, admin, accepted["id"])
    assert lines[0][0] == f"# CRM client export {accepted['id']}"
    assert lines[0][1] == f"user {email} ({admin.id})"
    assert lines[0][2].startswith("created 20")
    assert tuple(lines[1]) == rules.HEADER
    assert len(lines) == 2 + 5 + 3
    assert {line[0] for line in lines[2:]} >= {client(n)["id"] for n in range(5)}
    assert service.calls[0][0] == {"id": admin.id, "role": "admin", "branch_id": None}, "as the user asked"
    assert service.calls[0][1]["tag"] == "vip"
    export = exports.get_export(uow.reader, admin, accepted["id"])
    assert export["status"] == "done" and export["rows"] == 5
    assert export["expires_at"] > export["finished_at"]
    stored = uow.session.get(Export, accepted["id"]).markers
    assert [lines[m["line"] - 1][0] for m in stored] == [m["id"] for m in stored]


def test_an_empty_export_has_no_markers(uow):
    admin = add_user(uow)
    accepted = ask(uow, admin, 0)
    make(uow, [])
    assert len(file_lines(uow, admin, accepted["id"])) == 2


def test_a_head_sees_only_their_own_exports(uow):
    head = add_user(uow, "head", can_export=True, branch_id="b")
    other = add_user(uow, "head", can_export=True, branch_id="b")
    admin = add_user(uow)
    accepted = ask(uow, head, 0)
    with pytest.raises(exports.ExportNotFound):
        exports.get_export(uow.reader, other, accepted["id"])
    assert exports.get_export(uow.reader, admin, accepted["id"])["user_id"] == head.id
    assert [e["id"] for e in exports.list_exports(uow.reader, other, {})["items"]] == []
    assert [e["id"] for e in exports.list_exports(uow.reader, head, {})["items"]] == [accepted["id"]]


# ---- tracing

def test_a_leaked_file_is_traced_to_its_export_from_its_text_however_its_phones_are_written(uow):
    admin = add_user(uow)
    leaked = ask(uow, admin, 5)
    make(uow, [client(n) for n in range(5)])
    other = ask(uow, admin, 5)
    make(uow, [client(n) for n in range(5)])
    lines = file_lines(uow, admin, leaked["id"])
    rows = [line for line in lines[2:]]
    marker = next(row for row in rows if row[0] not in {client(n)["id"] for n in range(5)})
    digits = marker[3][2:]
    reformatted = f"8 ({digits[:3]}) {digits[3:6]}-{digits[6:8]}-{digits[8:]}"
    found = exports.trace(uow.reader, admin, {"text": f"Имя;Телефон\n{marker[2]};{reformatted}\n"})
    assert [item["export_id"] for item in found["items"]] == [leaked["id"]]
    assert found["items"][0]["matched"] == [{"kind": "phone", "value": digits}]
    whole = exports.trace(uow.reader, admin, {"text": "\n".join(",".join(r) for r in rows)})
    assert whole["items"][0]["export_id"] == leaked["id"] and len(whole["items"][0]["matched"]) == 9
    assert other["id"] not in [item["export_id"] for item in whole["items"]]
    by_email = exports.trace(uow.reader, admin, {"emails": [marker[4].upper()]})
    assert [item["export_id"] for item in by_email["items"]] == [leaked["id"]]


def test_only_an_administrator_traces(uow):
    head = add_user(uow, "head", can_export=True, branch_id="b")
    with pytest.raises(Forbidden):
        exports.trace(uow.reader, head, {"phones": ["+79160000000"]})


def test_phones_are_compared_on_their_last_ten_digits():
    assert rules.phone_key("+7 (916) 123-45-67") == rules.phone_key("89161234567") == "9161234567"
    assert rules.phone_key("12345") is None
    assert ("email", "a.b@x.org") in rules.trace_values(text="write to A.B@x.org today")
    joined = rules.trace_values(text="+79161234567 +79161234568")
    assert {("phone", "9161234567"), ("phone", "9161234568")} <= joined


# ---- expiry

def test_an_expired_file_is_gone_while_its_markers_still_trace(uow):
    admin = add_user(uow)
    accepted = ask(uow, admin, 3)
    make(uow, [client(n) for n in range(3)])
    marker = uow.session.get(Export, accepted["id"]).markers[0]
    uow.rollback()
    later = utcnow() + timedelta(seconds=SETTINGS.export_ttl_s + 1)
    assert exports.expire(uow, now=utcnow()) == 0
    assert exports.expire(uow, now=later) == 1
    assert uow.session.query(ExportChunk).count() == 0
    with pytest.raises(exports.ExportExpired):
        exports.open_file(uow.reader, admin, accepted["id"])
    assert exports.get_export(uow.reader, admin, accepted["id"])["status"] == "expired"
    found = exports.trace(uow.reader, admin, {"phones": [marker["phone"]]})
    assert [item["export_id"] for item in found["items"]] == [accepted["id"]]


def test_a_file_past_its_time_is_gone_even_before_the_sweep(uow):
    admin = add_user(uow)
    accepted = ask(uow, admin, 1)
    make(uow, [client(1)])
    uow.session.query(Export).update({"expires_at": utcnow() - timedelta(seconds=1)})
    uow.commit()
    with pytest.raises(exports.ExportExpired):
        exports.open_file(uow.reader, admin, accepted["id"])


# ---- granting exports

def test_only_an_administrator_grants_exports_and_only_to_a_head(uow):
    from gateway import identity
    from gateway.models import Branch

    branch = str(uuid.uuid4())
    uow.session.add(Branch(id=branch, name="B", code="B"))
    admin, head = add_user(uow), add_user(uow, "head", branch_id=branch)
    manager = add_user(uow, "manager", branch_id=branch)
    with uow.transaction():
        assert identity.update_user(uow, admin, head.id, {"can_export": True})["can_export"] is True
    with pytest.raises(ValidationError) as refused:
        identity.update_user(uow, admin, manager.id, {"can_export": True})
    assert list(refused.value.fields) == ["can_export"]
    uow.rollback()
    with pytest.raises(Forbidden):
        identity.update_user(uow, head, manager.id, {"can_export": False})
    uow.rollback()
    with pytest.raises(Forbidden):
        identity.update_user(uow, head, head.id, {"can_export": False})
    uow.rollback()
    with uow.transaction():
        demoted = identity.update_user(uow, admin, head.id, {"role": "manager"})
    assert demoted["can_export"] is False, "a head who changes role loses the grant"
    assert uow.events[-1][1]["changed"] == ["role", "can_export"]
