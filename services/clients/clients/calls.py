"""Use cases of telephone calls: each event of the exchange on the call's interaction, idempotent per call and event.

A call is an interaction (type ``call``) on its client's timeline; the ``calls`` row (same id) keeps what the
exchange told: its id there, the numbers, the status and times, whom it was put through to. ``call_events``
keeps each event of a call once, so an event the exchange sends again changes nothing.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from clients import call_domain, commands, domain
from clients import repository as repo
from clients.exceptions import DuplicateContact
from clients.models import Call, CallEvent, Client, Interaction, TimelineEntry
from clients.schemas import interaction_out
from crm_common.bulk import insert_objects
from crm_common.caller import Caller
from crm_common.clock import utcnow
from crm_common.contracts.integrations import CallSchema, TelephonyEventSchema
from crm_common.errors import NotFound, ValidationError, require
from crm_common.schemas import is_uuid, load_or_raise, new_id

call_out = CallSchema()
PHONE_CHANNEL = "phone"


class CallNotFound(NotFound):
    """call not found"""


def _unknown_call() -> ValidationError:
    return ValidationError("unknown call", fields={"call_id": ["No such call: send its ringing event first."]})


def dump(call: Call) -> dict:
    route = None
    if call.route_user_id:
        route = {"user_id": call.route_user_id, "phone": call.route_phone, "extension": call.route_extension}
    return call_out.dump({
        "id": call.id, "call_id": call.external_id, "branch_id": call.branch_id, "client_id": call.client_id,
        "client_created": call.client_created, "direction": call.direction, "from_": call.from_number,
        "to": call.to_number, "status": call.status, "started_at": call.started_at, "answered_at": call.answered_at,
        "ended_at": call.ended_at, "duration_s": call.duration_s, "user_id": call.user_id, "route_to": route,
    })


def get_call(session, caller: Caller, call_id: str) -> dict:
    """A call whose client the caller may see; any other is 404."""
    if not is_uuid(call_id):
        raise CallNotFound()
    query = select(Call).join(Client, Client.id == Call.client_id).where(Call.id == call_id, caller.visibility(Client))
    return dump(require(session.scalars(query).first(), CallNotFound))


def record_event(uow, caller: Caller, raw: dict, directory: dict | None, region: str) -> dict:
    """One event of the exchange. ``directory`` (from the gateway): ``branch_id`` (the call's branch when it can be
    told, else None), ``users`` (the branch's active users: role, on_shift, phone, extension), ``managers`` (whom
    a new client may go to), ``user_id`` (the user placing an outgoing call, if known)."""
    data = load_or_raise(TelephonyEventSchema, raw)
    directory = directory or {}
    users = directory.get("users") or {}
    if data["user_id"] is not None and data["user_id"] not in users:
        raise ValidationError("unknown user", fields={"user_id": ["Not an active user of the call's branch."]})
    branch_id = directory.get("branch_id")
    if branch_id is not None:
        branch_id = caller.target_branch(branch_id)
    if data["event"] == "ringing" and branch_id is not None:
        return _ringing(uow, caller, data, branch_id, directory, region)
    call = _find(uow.session, caller, branch_id, data["call_id"])
    if call is None:
        if data["event"] != "ringing":
            raise _unknown_call()
        raise ValidationError("which branch?", fields={"branch_id": [
            "Name the branch: the key has none and no user of the CRM has the number called."]})
    return _follow(uow, call, data)


def _ringing(uow, caller: Caller, data: dict, branch_id: str, directory: dict, region: str) -> dict:
    """A ringing of a known branch is written without looking for its call first: the exchange sends it once but
    for a retry, and a retry (now, or a moment ago by another request) fails on uq_calls_branch_external and
    answers the call as it was recorded, route and all."""
    for attempt in (1, 2):
        try:
            return _ring(uow, caller, data, branch_id, directory, region)
        except (IntegrityError, DuplicateContact):
            # the same ringing recorded already, or a new client from the same number committed a moment ago by
            # another request (the second attempt finds it)
            if uow.session.in_transaction():
                uow.rollback()
            call = _find(uow.session, caller, branch_id, data["call_id"])
            if call is not None:
                return dump(call)
            if attempt == 2:
                raise
        except ValidationError:
            call = _find(uow.session, caller, branch_id, data["call_id"])  # a retry is answered whatever it says
            if call is not None:
                return dump(call)
            raise
    raise AssertionError("unreachable")


def _find(session, caller: Caller, branch_id: str | None, external_id: str) -> Call | None:
    query = select(Call).where(Call.external_id == external_id)
    if branch_id is not None:
        query = query.where(Call.branch_id == branch_id)
    elif not caller.is_admin:
        query = query.where(Call.branch_id == caller.branch_id)
    found = session.scalars(query.limit(2)).all()
    if len(found) > 1:
        raise ValidationError("which branch?", fields={"branch_id": ["Calls of several branches have this call_id."]})
    return found[0] if found else None


def _ring(uow, caller: Caller, data: dict, branch_id: str, directory: dict, region: str) -> dict:
    """The call's interaction, call, event and timeline entry (and for a new number the client, its touchpoint and
    theirs) in one statement; the client found with its owner in one query. A new client takes the branch's
    round-robin row, locked from then until the commit: nothing is read after it."""
    session = uow.session
    number_field = "from" if data["direction"] == "in" else "to"
    try:
        phone = domain.normalize_phone(call_domain.client_number(data["direction"], data["from_"], data["to"]), region)
    except ValueError as exc:
        raise ValidationError("not a client's number", fields={number_field: [str(exc)]}) from None
    users = directory.get("users") or {}
    user_id = data["user_id"] or (directory.get("user_id") if data["direction"] == "out" else None)
    found = repo.client_by_phone(session, branch_id, phone)
    rows: list = []
    if found is not None:
        client_id, owner_id, created = found.id, found.owner_id, False
    else:
        managers = directory.get("managers") or []
        if data["direction"] == "out" and directory.get("user_id"):
            managers = [directory["user_id"]]  # a number the user called first is the user's client
        touch = {"channel": PHONE_CHANNEL, "name": None, "message": None, "utm": {}}
        _result, client, rows = commands.touchpoint_rows(
            uow, caller, touch, branch_id, [phone], [], {"managers": managers, "machine": True}, None,
        )
        client_id, owner_id, created = client.id, client.owner_id, True
    route_user = call_domain.route_call(owner_id, users) if data["direction"] == "in" else None
    now = utcnow()
    interaction = Interaction(
        id=new_id(), client_id=client_id, branch_id=branch_id, type="call", direction=data["direction"],
        text=call_domain.summary(data["direction"], phone, "ringing", None), occurred_at=data["at"],
        duration_s=None, script_id=None, author_id=user_id or route_user, created_at=now,
    )
    route = users.get(route_user) or {}
    call = Call(
        id=interaction.id, branch_id=branch_id, client_id=client_id, external_id=data["call_id"],
        direction=data["direction"], from_number=data["from_"], to_number=data["to"], status="ringing",
        started_at=data["at"], user_id=user_id, route_user_id=route_user, route_phone=route.get("phone"),
        route_extension=route.get("extension"), client_created=created, created_at=now, updated_at=now,
    )
    rows += [interaction, call, CallEvent(call_id=call.id, event="ringing", at=data["at"], received_at=now),
             TimelineEntry(id=new_id(), client_id=client_id, kind="interaction", type="call", occurred_at=data["at"],
                           ref_id=interaction.id, actor_id=caller.id, data=_timeline_data(call, interaction))]
    # a ringing of the same call recorded meanwhile fails here, on uq_calls_branch_external
    insert_objects(session, rows)
    return dump(call)


def _follow(uow, call: Call, data: dict) -> dict:
    """A later event of a known call; the same event again changes nothing."""
    session = uow.session
    if session.get(CallEvent, (call.id, data["event"])) is not None:
        return dump(call)
    now = utcnow()
    session.add(CallEvent(call_id=call.id, event=data["event"], at=data["at"], received_at=now))
    was_final = call.status in call_domain.FINAL
    became_missed = call_domain.apply_event(call, data["event"], data["at"], data["duration_s"], data["user_id"])
    call.updated_at = now
    interaction = session.get(Interaction, call.id)
    number = call_domain.client_number(call.direction, call.from_number, call.to_number)
    interaction.duration_s = call.duration_s
    interaction.author_id = call.user_id or call.route_user_id
    interaction.text = call_domain.summary(call.direction, number, call.status, call.duration_s)
    entry = session.scalars(
        select(TimelineEntry).where(TimelineEntry.ref_id == call.id, TimelineEntry.kind == "interaction")
    ).first()
    if entry is not None:
        entry.data = {**(entry.data or {}), **_timeline_data(call, interaction)}
    session.flush()
    client = session.get(Client, call.client_id)
    out = dump(call)
    if call.status in call_domain.FINAL and not was_final:
        # reports count a call once, with its outcome and length
        uow.emit("interaction_logged", {
            "branch_id": call.branch_id, "actor_id": interaction.author_id, "client_id": client.id,
            "owner_id": client.owner_id, "interaction": interaction_out.dump(interaction)})
    if became_missed and call.direction == "in":
        uow.emit("call_missed", {"branch_id": call.branch_id, "actor_id": None, "call": out,
                                 "client_id": client.id, "owner_id": client.owner_id})
    return out


def _timeline_data(call: Call, interaction: Interaction) -> dict:
    return {"direction": call.direction, "text": interaction.text, "duration_s": call.duration_s, "script_id": None,
            "status": call.status, "call_id": call.external_id, "from": call.from_number, "to": call.to_number,
            "user_id": call.user_id, "route_user_id": call.route_user_id, "client_created": call.client_created}


def add_recording(uow, payload: dict) -> bool:
    """Show a stored recording on its call's timeline entry, once; False if seen before or the call is unknown."""
    if not uow.first_delivery(payload["event_id"], "call_recorded"):
        return False
    recording = payload["recording"]
    entry = uow.session.scalars(
        select(TimelineEntry).where(TimelineEntry.ref_id == recording["call_id"], TimelineEntry.kind == "interaction")
    ).first()
    if entry is None:
        return False
    entry.data = {**(entry.data or {}), "recording": {
        k: recording[k] for k in ("content_type", "size_bytes", "sha256", "duration_s", "created_at")}}
    return True

