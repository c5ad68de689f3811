"""Telephone calls on the clients' timeline: routing, the events of a call, idempotency (fake unit of work)."""

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from clients import call_domain, calls
from clients.models import Call, CallEvent, Client, Interaction, TimelineEntry, Touchpoint
from crm_common.caller import Caller
from crm_common.errors import Forbidden, ValidationError

NORTH = str(uuid.uuid4())
KEY = Caller(str(uuid.uuid4()), "head", NORTH)  # an API key of the branch acts as its head
OWNER, OTHER, HEAD = (str(uuid.uuid4()) for _ in range(3))
AT = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def users(owner_on_shift=True, owner_active=True, head_on_shift=True):
    people = {
        OWNER: {"role": "manager", "active": owner_active, "on_shift": owner_on_shift, "phone": None, "extension": "201"},
        OTHER: {"role": "manager", "active": True, "on_shift": True, "phone": "+79160000002", "extension": None},
        HEAD: {"role": "head", "active": True, "on_shift": head_on_shift, "phone": None, "extension": "200"},
    }
    return {uid: person for uid, person in people.items() if person["active"]}


def directory(**kwargs):
    return {"branch_id": NORTH, "users": users(**kwargs), "managers": [OWNER, OTHER], "machine": True}


def send(uow, call_id, event, number="+79161234567", direction="in", minutes=0, caller=KEY, dirs=None, **extra):
    """One event, in a transaction of its own as the service runs it."""
    raw = {"call_id": call_id, "event": event, "direction": direction, "from": number if direction == "in" else "201",
           "to": "101" if direction == "in" else number, "at": (AT + timedelta(minutes=minutes)).isoformat(), **extra}
    with uow.transaction():
        return calls.record_event(uow, caller, raw, dirs or directory(), "RU")


def client_with(uow, phone="+79161234567", owner=OWNER):
    from clients import commands

    with uow.transaction():
        return commands.create_client(
            uow, KEY, {"kind": "person", "name": "Иван", "phones": [phone], "owner_id": owner},
            {"users": {owner: {"branch_id": NORTH, "active": True}}}, "RU")


def count(uow, model, *where):
    return uow.session.scalar(select(func.count()).select_from(model).where(*where))


def test_an_incoming_call_goes_to_the_owner_on_shift_and_else_to_the_head():
    assert call_domain.route_call(OWNER, users()) == OWNER
    assert call_domain.route_call(OWNER, users(owner_on_shift=False)) == HEAD
    assert call_domain.route_call(OWNER, users(owner_active=False)) == HEAD
    assert call_domain.route_call(OWNER, users(owner_on_shift=False, head_on_shift=False)) == OTHER
    assert call_domain.route_call(None, {}) is None


def test_events_change_a_call_once_and_a_final_status_stays():
    call = SimpleNamespace(status="ringing", answered_at=None, ended_at=None, duration_s=None, user_id=None,
                           route_user_id=OWNER)
    call_domain.apply_event(call, "answered", AT, None, None)
    call_domain.apply_event(call, "ended", AT + timedelta(seconds=75), None, None)
    assert (call.status, call.user_id, call.duration_s) == ("ended", OWNER, 75)
    assert call_domain.apply_event(call, "missed", AT, None, None) is False and call.status == "ended"
    unanswered = SimpleNamespace(status="ringing", answered_at=None, ended_at=None, duration_s=None, user_id=None,
                                 route_user_id=None)
    assert call_domain.apply_event(unanswered, "missed", AT, None, None) is True
    assert call_domain.apply_event(unanswered, "missed", AT, None, None) is False


def test_a_ringing_call_of_a_known_client_is_one_interaction_on_its_timeline(uow):
    client = client_with(uow)
    call = send(uow, "pbx-1", "ringing")

    assert call["client_id"] == client["id"] and call["route_to"] == {"user_id": OWNER, "phone": None,
                                                                       "extension": "201"}
    entries = uow.session.scalars(select(TimelineEntry).where(TimelineEntry.ref_id == call["id"])).all()
    assert len(entries) == 1 and entries[0].kind == "interaction" and entries[0].data["status"] == "ringing"


def test_the_same_event_twice_changes_nothing_and_the_call_ends_with_its_duration(uow):
    client_with(uow)
    first = send(uow, "pbx-2", "ringing")
    assert send(uow, "pbx-2", "ringing") == first
    assert send(uow, "pbx-2", "ringing", dirs=directory(owner_on_shift=False)) == first  # the route it was given
    assert send(uow, "pbx-2", "ringing", number="anonymous") == first  # a retry is answered whatever it says
    assert (count(uow, Call), count(uow, Interaction), count(uow, TimelineEntry, TimelineEntry.kind == "interaction")) \
        == (1, 1, 1)
    send(uow, "pbx-2", "answered", minutes=1, user_id=OWNER)
    ended = send(uow, "pbx-2", "ended", minutes=3, duration_s=120)
    again = send(uow, "pbx-2", "ended", minutes=9, duration_s=999)

    assert ended == again and ended["duration_s"] == 120 and ended["status"] == "ended"
    assert uow.session.scalar(select(func.count()).select_from(CallEvent)) == 3
    logged = [p for kind, p in uow.events if kind == "interaction_logged"]
    assert len(logged) == 1 and logged[0]["interaction"]["duration_s"] == 120


def test_a_missed_incoming_call_emits_call_missed_once(uow):
    client_with(uow)
    send(uow, "pbx-3", "ringing")
    send(uow, "pbx-3", "missed", minutes=1)
    send(uow, "pbx-3", "missed", minutes=1)
    send(uow, "pbx-3", "ended", minutes=2)

    missed = [p for kind, p in uow.events if kind == "call_missed"]
    assert len(missed) == 1 and missed[0]["owner_id"] == OWNER and missed[0]["call"]["from"] == "+79161234567"


def test_an_event_of_a_call_never_rung_is_422_naming_call_id(uow):
    with pytest.raises(ValidationError) as refused:
        send(uow, "never", "answered")
    assert "call_id" in refused.value.fields


def test_an_unknown_number_becomes_a_client_by_round_robin_and_owned_by_no_key(uow):
    calls_made = [send(uow, f"pbx-new-{n}", "ringing", number=f"+7916000000{n}") for n in range(3)]
    owners = [uow.session.get(Client, c["client_id"]).owner_id for c in calls_made]

    assert all(c["client_created"] for c in calls_made) and owners == sorted([OWNER, OTHER]) + [min(OWNER, OTHER)]
    touchpoints = uow.session.scalars(select(Touchpoint).order_by(Touchpoint.created_at)).all()
    assert {(t.client_id, t.channel, t.phone, t.created_client) for t in touchpoints} == {
        (c["client_id"], "phone", f"+7916000000{n}", True) for n, c in enumerate(calls_made)}
    first = calls_made[0]["client_id"]
    kinds = uow.session.scalars(select(TimelineEntry.kind).where(TimelineEntry.client_id == first)).all()
    assert sorted(kinds) == ["client", "interaction", "touchpoint"]
    assert [p["client"]["owner_id"] for kind, p in uow.events if kind == "client_created"] == owners
    assert [p["owner_id"] for kind, p in uow.events if kind == "touchpoint_recorded"] == owners
    assert send(uow, "pbx-new-0", "ringing", number="+79160000000") == calls_made[0]  # no second client
    assert count(uow, Client) == 3
    lonely = {"branch_id": NORTH, "users": {}, "managers": [], "machine": True}
    orphan = send(uow, "pbx-lonely", "ringing", number="+79160000009", dirs=lonely)
    assert uow.session.get(Client, orphan["client_id"]).owner_id is None and orphan["route_to"] is None


def test_an_outgoing_call_to_a_new_number_is_the_calling_users_client(uow):
    placed = {**directory(), "user_id": OTHER}
    call = send(uow, "pbx-out", "ringing", direction="out", number="+79165550000", dirs=placed, user_id=OTHER)

    assert call["route_to"] is None and call["user_id"] == OTHER
    assert uow.session.get(Client, call["client_id"]).owner_id == OTHER


def test_bad_numbers_users_and_branches_are_refused(uow):
    with pytest.raises(ValidationError) as refused:
        send(uow, "pbx-bad", "ringing", number="anonymous")
    assert "from" in refused.value.fields
    with pytest.raises(ValidationError) as refused:
        send(uow, "pbx-bad", "ringing", user_id=str(uuid.uuid4()))
    assert "user_id" in refused.value.fields
    with pytest.raises(Forbidden):
        send(uow, "pbx-bad", "ringing", dirs={**directory(), "branch_id": str(uuid.uuid4())})
    with pytest.raises(ValidationError) as refused:
        send(uow, "pbx-bad", "ringing", dirs={"branch_id": None, "users": {}, "managers": []})
    assert "branch_id" in refused.value.fields


def test_a_stored_recording_shows_on_the_calls_timeline_entry_once(uow):
    client_with(uow)
    call = send(uow, "pbx-rec", "ringing")
    payload = {"event_id": str(uuid.uuid4()), "occurred_at": AT.isoformat(), "branch_id": NORTH, "actor_id": None,
               "client_id": call["client_id"], "recording": {"call_id": call["id"], "content_type": "audio/wav",
                                                             "size_bytes": 10, "sha256": "ab" * 32, "duration_s": 1.5,
                                                             "created_at": AT.isoformat()}}

    assert calls.add_recording(uow, payload) is True and calls.add_recording(uow, payload) is False
    entry = uow.session.scalars(select(TimelineEntry).where(TimelineEntry.ref_id == call["id"])).one()
    assert entry.data["recording"]["duration_s"] == 1.5
    assert uow.session.get(Call, call["id"]).status == "ringing"
