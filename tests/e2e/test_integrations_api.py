"""API keys, telephony and call recordings over HTTP, as the telephone exchange and the CRM's users use them."""

import hashlib
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from crm_common.schemas import iso
from crm_common.testing import audio
from crm_common.testing.fixtures import poll
from crm_common.testing.system import Api, phone_number, unique

SCOPES = ("touchpoints:write", "telephony:write", "clients:read", "deals:read", "webhooks:manage")


def error_of(response, status):
    assert response.status_code == status, response.text
    return response.json()["error"]


def key_api(admin: Api, scopes, branch_id=None, header="bearer") -> tuple[Api, dict]:
    made = admin.ok("POST", "/api-keys", {"name": unique("Key "), "branch_id": branch_id, "scopes": list(scopes)},
                    status=201)
    api = Api(admin.base_url)
    if header == "bearer":
        api.http.headers["Authorization"] = f"Bearer {made['key']}"
    else:
        api.http.headers["X-Api-Key"] = made["key"]
    return api, made


def now(seconds: float = 0) -> str:
    return iso(datetime.now(UTC) + timedelta(seconds=seconds))


def event(call_id, kind, from_, to="101", direction="in", **extra):
    return {"call_id": call_id, "event": kind, "direction": direction, "from": from_, "to": to, "at": now(), **extra}


def timeline_call(api, client_id, call_id):
    entries = api.ok("GET", f"/clients/{client_id}/timeline")["items"]
    return [e for e in entries if e["kind"] == "interaction" and e["ref_id"] == call_id]


@pytest.fixture
def branch(new_branch):
    return new_branch(managers=2)


@pytest.fixture
def exchange(admin, branch):
    """The branch's telephone exchange: a key with telephony:write."""
    api, _ = key_api(admin, ["telephony:write"], branch.id)
    return api


# ---- API keys

def test_an_admin_makes_a_key_that_is_shown_once_and_listed_by_its_prefix_only(admin, branch):
    _, made = key_api(admin, ["clients:read", "deals:read"], branch.id)

    assert made["key"].startswith("crm_") and len(made["key"]) == 47
    assert made["prefix"] == made["key"][:10] and made["scopes"] == ["clients:read", "deals:read"]
    listed = [k for k in admin.pages("/api-keys") if k["id"] == made["id"]]
    assert listed and "key" not in listed[0] and listed[0]["revoked_at"] is None


@pytest.mark.parametrize("scopes", [["telephony:write", "calls:delete"], [], ["clients:read", "clients:read"]])
def test_an_unknown_missing_or_repeated_scope_is_422(admin, scopes):
    error = error_of(admin.post("/api-keys", {"name": "Bad", "scopes": scopes}), 422)

    assert any(name.startswith("scopes") for name in error["fields"])


def test_only_an_administrator_manages_keys(branch):
    assert branch.head.post("/api-keys", {"name": "Mine", "scopes": ["clients:read"]}).status_code == 403
    assert branch.head.get("/api-keys").status_code == 403


# what each scope opens, and a route of another scope and one that takes no key at all
ALLOWED = {
    "touchpoints:write": ("POST", "/touchpoints", lambda: {"channel": "web_form", "phone": phone_number()}),
    "telephony:write": ("POST", "/telephony/events", lambda: event(unique("c"), "ringing", phone_number())),
    "clients:read": ("GET", "/clients", None),
    "deals:read": ("GET", "/deals", None),
}
NO_KEYS = [("GET", "/me"), ("GET", "/tasks"), ("POST", "/clients"), ("GET", "/users")]


@pytest.mark.parametrize("scope", SCOPES)
def test_a_key_with_one_scope_may_use_only_the_routes_of_that_scope(admin, branch, scope):
    api, _ = key_api(admin, [scope], branch.id)

    for other, (method, path, body) in ALLOWED.items():
        response = api.request(method, path, json=body() if body else None)
        if other == scope:
            assert response.status_code in (200, 201), (scope, path, response.text)
        else:
            assert error_of(response, 403)["code"] == "forbidden", (scope, path)
    for method, path in NO_KEYS:
        assert api.request(method, path, json={}).status_code == 403, (scope, path)


def test_a_key_is_also_accepted_in_x_api_key(admin, branch):
    api, _ = key_api(admin, ["clients:read"], branch.id, header="x-api-key")

    assert api.get("/clients").status_code == 200


def test_a_revoked_key_is_refused_at_once_and_a_malformed_or_unknown_one_too(admin, branch):
    api, made = key_api(admin, ["clients:read"], branch.id)
    assert api.get("/clients").status_code == 200

    revoked = admin.ok("DELETE", f"/api-keys/{made['id']}")
    assert revoked["revoked_at"] is not None
    assert error_of(api.get("/clients"), 401)["code"] == "unauthorized"
    for key in ("crm_short", "crm_" + "x" * 43, made["key"] + "x"):
        assert api.get("/clients", headers={"Authorization": f"Bearer {key}"}).status_code == 401, key
    assert Api(admin.base_url).get("/clients", headers={"X-Api-Key": "nope"}).status_code == 401
    assert admin.ok("DELETE", f"/api-keys/{made['id']}")["revoked_at"] == revoked["revoked_at"]  # again: no change


def test_a_branch_key_acts_only_in_its_branch(admin, world):
    api, _ = key_api(admin, ["clients:read", "touchpoints:write"], world.north.id)
    south_client = world.south.head.ok("POST", "/clients", {"kind": "person", "name": "Юг", "phones": [phone_number()]})

    assert api.get(f"/clients/{south_client['id']}").status_code == 404
    assert api.post("/touchpoints", {"channel": "web_form", "phone": phone_number(),
                                     "branch_id": world.south.id}).status_code == 403
    made = api.ok("POST", "/touchpoints", {"channel": "web_form", "phone": phone_number()}, status=201)
    client = world.north.head.ok("GET", f"/clients/{made['client_id']}")
    owner = world.north.head.ok("GET", f"/users/{client['owner_id']}")  # other tests add managers to North
    assert client["branch_id"] == owner["branch_id"] == world.north.id and owner["role"] == "manager"


# ---- telephony

def test_an_incoming_call_goes_to_the_owner_and_ends_on_the_timeline_with_its_recording(exchange, branch):
    manager = branch.managers[0]
    manager.ok("PATCH", f"/users/{manager.me['id']}", {"extension": "201", "on_shift": True})
    number = phone_number()
    client = manager.ok("POST", "/clients", {"kind": "person", "name": "Звонящий", "phones": [number]})
    call_id = unique("asterisk-")

    ringing = exchange.ok("POST", "/telephony/events", event(call_id, "ringing", number))
    assert ringing["route_to"] == {"user_id": manager.me["id"], "phone": None, "extension": "201"}
    assert ringing["client_id"] == client["id"] and ringing["status"] == "ringing" and not ringing["client_created"]
    exchange.ok("POST", "/telephony/events", event(call_id, "answered", number, user_id=manager.me["id"]))
    ended = exchange.ok("POST", "/telephony/events", event(call_id, "ended", number, duration_s=95))
    assert ended["status"] == "ended" and ended["duration_s"] == 95 and ended["user_id"] == manager.me["id"]

    entries = timeline_call(manager, client["id"], ringing["id"])
    assert len(entries) == 1 and entries[0]["type"] == "call"
    assert entries[0]["data"]["status"] == "ended" and entries[0]["data"]["duration_s"] == 95

    recording = audio.padded(audio.wav(3.0), 200_000)
    stored = exchange.ok("PUT", f"/calls/{ringing['id']}/recording", data=recording,
                         headers={"Content-Type": "audio/wav"}, status=201)
    assert stored["sha256"] == hashlib.sha256(recording).hexdigest() and stored["size_bytes"] == len(recording)
    assert stored["duration_s"] == pytest.approx(3.0, abs=0.01)

    whole = manager.get(f"/calls/{ringing['id']}/recording")
    assert whole.status_code == 200 and whole.content == recording and whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["Content-Type"] == "audio/wav"
    part = manager.get(f"/calls/{ringing['id']}/recording", headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == recording[1000:2000]
    assert part.headers["Content-Range"] == f"bytes 1000-1999/{len(recording)}"
    tail = manager.get(f"/calls/{ringing['id']}/recording", headers={"Range": "bytes=-500"})
    assert tail.status_code == 206 and tail.content == recording[-500:]
    beyond = manager.get(f"/calls/{ringing['id']}/recording", headers={"Range": f"bytes={len(recording)}-"})
    assert beyond.status_code == 416 and beyond.headers["Content-Range"] == f"bytes */{len(recording)}"
    assert manager.ok("GET", f"/calls/{ringing['id']}")["recording"]["sha256"] == stored["sha256"]
    poll(lambda: "recording" in timeline_call(manager, client["id"], ringing["id"])[0]["data"],
         message="the recording on the timeline")


def test_an_event_sent_again_changes_nothing_and_an_unknown_call_is_422(exchange, branch):
    number = phone_number()
    call_id = unique("dup-")
    first = exchange.ok("POST", "/telephony/events", event(call_id, "ringing", number))
    again = exchange.ok("POST", "/telephony/events", event(call_id, "ringing", number))
    exchange.ok("POST", "/telephony/events", event(call_id, "answered", number))
    exchange.ok("POST", "/telephony/events", event(call_id, "ended", number, duration_s=10))
    late = exchange.ok("POST", "/telephony/events", event(call_id, "ended", number, duration_s=999))

    assert again == first and late["duration_s"] == 10
    assert len(timeline_call(branch.head, first["client_id"], first["id"])) == 1
    for kind in ("answered", "missed", "ended"):
        error = error_of(exchange.post("/telephony/events", event(unique("never-"), kind, number)), 422)
        assert "call_id" in error["fields"]


def test_a_call_to_an_owner_off_shift_or_deactivated_goes_to_the_branch_head(admin, new_branch):
    branch = new_branch(managers=1)
    exchange, _ = key_api(admin, ["telephony:write"], branch.id)
    manager = branch.managers[0]
    number = phone_number()
    manager.ok("POST", "/clients", {"kind": "person", "name": "Клиент", "phones": [number]})
    manager.ok("PATCH", f"/users/{manager.me['id']}", {"on_shift": False})

    off_shift = exchange.ok("POST", "/telephony/events", event(unique("c"), "ringing", number))
    assert off_shift["route_to"]["user_id"] == branch.head.me["id"]

    branch.head.ok("PATCH", f"/users/{manager.me['id']}", {"on_shift": True})
    assert exchange.ok("POST", "/telephony/events", event(unique("c"), "ringing", number))["route_to"]["user_id"] == (
        manager.me["id"])
    branch.head.ok("PATCH", f"/users/{manager.me['id']}", {"active": False})
    gone = exchange.ok("POST", "/telephony/events", event(unique("c"), "ringing", number))
    assert gone["route_to"]["user_id"] == branch.head.me["id"]


def test_a_missed_call_gives_the_owner_a_call_back_task_due_within_the_sla(exchange, branch):
    manager = branch.managers[1]
    number = phone_number()
    client = manager.ok("POST", "/clients", {"kind": "person", "name": "Не дозвонился", "phones": [number]})
    call_id = unique("missed-")
    exchange.ok("POST", "/telephony/events", event(call_id, "ringing", number))
    missed = exchange.ok("POST", "/telephony/events", event(call_id, "missed", number))
    assert missed["status"] == "missed"

    tasks = poll(lambda: manager.ok("GET", f"/tasks?client_id={client['id']}")["items"], message="the call-back task")
    assert len(tasks) == 1 and tasks[0]["assignee_id"] == manager.me["id"] and number in tasks[0]["title"]
    due = datetime.fromisoformat(tasks[0]["due_at"].replace("Z", "+00:00"))
    assert timedelta(minutes=14) < due - datetime.now(UTC) <= timedelta(minutes=15)
    notices = poll(lambda: [n for n in manager.ok("GET", "/notifications")["items"] if n["kind"] == "call_missed"],
                   message="the missed-call notice")
    assert notices[0]["ref_id"] == tasks[0]["id"]
    exchange.ok("POST", "/telephony/events", event(call_id, "missed", number))  # again: no second task
    exchange.ok("POST", "/telephony/events", event(call_id, "ended", number))
    assert len(manager.ok("GET", f"/tasks?client_id={client['id']}")["items"]) == 1


def test_an_unknown_number_becomes_a_new_client_of_the_next_manager_in_turn(admin, new_branch):
    branch = new_branch(managers=2)
    exchange, _ = key_api(admin, ["telephony:write"], branch.id)

    calls = [exchange.ok("POST", "/telephony/events", event(unique("c"), "ringing", phone_number())) for _ in range(4)]
    owners = [branch.head.ok("GET", f"/clients/{call['client_id']}")["owner_id"] for call in calls]

    assert all(call["client_created"] for call in calls)
    assert set(owners) == {m.me["id"] for m in branch.managers} and owners[0] != owners[1] and owners[0] == owners[2]
    assert [call["route_to"]["user_id"] for call in calls] == owners
    timeline = branch.head.ok("GET", f"/clients/{calls[0]['client_id']}/timeline")["items"]
    assert {e["kind"] for e in timeline} >= {"touchpoint", "interaction", "client"}


def test_an_outgoing_call_is_on_the_client_timeline_of_the_user_who_called(exchange, branch):
    manager = branch.managers[0]
    number = phone_number()
    client = manager.ok("POST", "/clients", {"kind": "person", "name": "Исходящий", "phones": [number]})
    call = exchange.ok("POST", "/telephony/events", event(unique("out-"), "ringing", "201", to=number,
                                                          direction="out", user_id=manager.me["id"]))

    assert call["client_id"] == client["id"] and call["route_to"] is None and call["user_id"] == manager.me["id"]


def test_telephony_refuses_bad_input_naming_the_field(exchange, admin):
    bad = [({"event": "rang"}, "event"), ({"direction": "sideways"}, "direction"), ({"from": "anonymous"}, "from"),
           ({"at": "yesterday"}, "at"), ({"duration_s": -1}, "duration_s"), ({"user_id": "7"}, "user_id")]
    for change, field in bad:
        body = {**event(unique("bad-"), "ringing", phone_number()), **change}
        assert field in error_of(exchange.post("/telephony/events", body), 422)["fields"], change
    # an administrator's event names its branch, or one a user's number tells
    assert "branch_id" in error_of(admin.post("/telephony/events", event(unique("c"), "ringing", phone_number(),
                                                                        to="+79990000000")), 422)["fields"]


# ---- recordings

@pytest.fixture
def ended_call(exchange):
    number = phone_number()
    call = exchange.ok("POST", "/telephony/events", event(unique("rec-"), "ringing", number))
    exchange.ok("POST", "/telephony/events", event(call["call_id"], "ended", number))
    return call


def incoming_files(system) -> list[Path]:
    folder = Path(system.env["CRM_DATA_DIR"]) / "recordings" / ".incoming"
    return list(folder.iterdir()) if folder.is_dir() else []


def test_a_recording_that_is_too_large_or_not_audio_is_refused_and_nothing_is_stored(exchange, ended_call, system):
    path = f"/calls/{ended_call['id']}/recording"
    too_large = audio.padded(audio.wav(1.0), 2 * 1024 * 1024 + 1)  # the e2e system keeps 2 MB at most

    assert error_of(exchange.request("PUT", path, data=too_large, headers={"Content-Type": "audio/wav"}), 413)
    chunked = exchange.request("PUT", path, data=iter([too_large[:1_000_000], too_large[1_000_000:]]),
                               headers={"Content-Type": "audio/wav"})
    assert error_of(chunked, 413)["code"] == "payload_too_large"
    for content_type, body in (("audio/wav", b"%PDF-1.7 not a recording" * 100), ("audio/wav", audio.mp3(1.0)),
                               ("audio/mpeg", audio.wav(1.0))):
        assert error_of(exchange.request("PUT", path, data=body, headers={"Content-Type": content_type}), 415)
    assert error_of(exchange.request("PUT", path, data=audio.wav(1.0), headers={"Content-Type": "video/mp4"}), 415)
    assert exchange.get(f"/calls/{ended_call['id']}").status_code == 403  # telephony:write reads no calls
    assert incoming_files(system) == []


def test_a_truncated_upload_is_discarded(exchange, ended_call, system, admin):
    address = urlsplit(system.base_url)
    token = exchange.http.headers["Authorization"]
    body = audio.wav(2.0)
    with socket.create_connection((address.hostname, address.port)) as sock:
        sock.sendall((f"PUT /api/v1/calls/{ended_call['id']}/recording HTTP/1.1\r\nHost: x\r\n"
                      f"Authorization: {token}\r\nContent-Type: audio/wav\r\nContent-Length: {len(body)}\r\n\r\n"
                      ).encode() + body[: len(body) // 2])
        sock.shutdown(socket.SHUT_WR)  # the client goes away half-way
        sock.settimeout(10)
        try:
            while sock.recv(65536):
                pass
        except OSError:
            pass

    poll(lambda: admin.get(f"/calls/{ended_call['id']}/recording").status_code == 404 and not incoming_files(system),
         message="nothing stored")


def test_recordings_are_never_replaced_and_the_same_bytes_again_answer_the_stored_one(admin, exchange, branch):
    number = phone_number()
    call = exchange.ok("POST", "/telephony/events", event(unique("once-"), "ringing", number))
    first = audio.ogg(5.0)
    stored = exchange.ok("PUT", f"/calls/{call['id']}/recording", data=first, headers={"Content-Type": "audio/ogg"},
                         status=201)

    assert stored["duration_s"] == pytest.approx(5.0) and stored["content_type"] == "audio/ogg"
    assert exchange.ok("PUT", f"/calls/{call['id']}/recording", data=first, headers={"Content-Type": "audio/ogg"},
                       status=200) == stored
    other = exchange.request("PUT", f"/calls/{call['id']}/recording", data=audio.mp3(2.0),
                             headers={"Content-Type": "audio/mpeg"})
    assert error_of(other, 409)["code"] == "conflict"
    assert admin.get(f"/calls/{call['id']}/recording").content == first


def test_only_those_who_see_the_client_hear_the_recording_and_managers_do_not_upload(admin, exchange, branch, world):
    owner, other = branch.managers
    number = phone_number()
    owner.ok("POST", "/clients", {"kind": "person", "name": "Секрет", "phones": [number]})
    call = exchange.ok("POST", "/telephony/events", event(unique("vis-"), "ringing", number))
    body = audio.mp3(1.0)

    assert owner.request("PUT", f"/calls/{call['id']}/recording", data=body,
                         headers={"Content-Type": "audio/mpeg"}).status_code == 403
    exchange.ok("PUT", f"/calls/{call['id']}/recording", data=body, headers={"Content-Type": "audio/mpeg"}, status=201)
    assert owner.get(f"/calls/{call['id']}/recording").content == body
    assert branch.head.get(f"/calls/{call['id']}/recording").status_code == 200
    assert other.get(f"/calls/{call['id']}/recording").status_code == 404
    assert world.south.head.get(f"/calls/{call['id']}/recording").status_code == 404
    reader, _ = key_api(admin, ["clients:read"], branch.id)
    assert reader.get(f"/calls/{call['id']}/recording").content == body
