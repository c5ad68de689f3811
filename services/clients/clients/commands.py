"""Use cases of the clients service.

Each function takes the unit of work (``uow.session`` and ``uow.emit``), the caller and the raw input;
it validates, applies the domain rules and records events. Committing is the entrypoint's job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from clients import domain
from clients import repository as repo
from clients.exceptions import ClientHasOpenDeals, ClientMerged, ClientNotFound, DuplicateContact
from clients.models import Client, Interaction, TimelineEntry, Touchpoint
from clients.schemas import (
    client_create,
    client_out,
    client_update,
    interaction_create,
    interaction_out,
    touchpoint_create,
)
from crm_common.bulk import apply_defaults, insert_objects
from crm_common.caller import Caller
from crm_common.clock import utcnow
from crm_common.errors import Conflict, Forbidden, Unavailable, ValidationError, VersionConflict, require
from crm_common.schemas import load_or_raise, new_id

EDITABLE = ("kind", "name", "phones", "emails", "source", "tags", "custom_fields", "owner_id", "branch_id")


def require_visible(session, caller: Caller, client_id: str, for_update: bool = False) -> Client:
    """A client the caller may see (404 otherwise); a merged one is a redirect to the client it became."""
    client = require(repo.get_visible(session, caller, client_id, for_update=for_update), ClientNotFound)
    if client.merged_into:
        raise ClientMerged(client.merged_into)
    return client


def _flush_contacts(uow, client: Client, free: bool = False) -> None:
    """Write the client's contact rows; a concurrent duplicate loses on the unique index."""
    try:
        repo.replace_contacts(uow.session, client, free=free)
        uow.session.flush()
    except IntegrityError:
        branch_id, phones, emails, own_id = client.branch_id, list(client.phones), list(client.emails), client.id
        uow.rollback()
        existing = repo.find_by_contacts(uow.session, branch_id, phones, emails, exclude_id=own_id)
        raise DuplicateContact(existing or "") from None


def _timeline(uow, client: Client, kind: str, type_: str, actor_id, ref_id=None, data=None, when=None):
    uow.session.add(_timeline_entry(client, kind, type_, actor_id, ref_id, data, when))


def _timeline_entry(client: Client, kind: str, type_: str, actor_id, ref_id=None, data=None, when=None):
    return TimelineEntry(
        id=new_id(),
        client_id=client.id,
        kind=kind,
        type=type_,
        occurred_at=when or utcnow(),
        ref_id=ref_id,
        actor_id=actor_id,
        data=data or {},
    )


def create_client(uow, caller: Caller, raw: dict, directory: dict | None, region: str) -> dict:
    data = load_or_raise(client_create, raw)
    branch_id = caller.target_branch(data["branch_id"])
    owner_id = domain.check_owner(caller, data["owner_id"], branch_id, directory)
    phones, emails = domain.normalize_contacts(data["phones"], data["emails"], region)
    existing = repo.find_by_contacts(uow.session, branch_id, phones, emails)
    if existing:
        raise DuplicateContact(existing)
    now = utcnow()
    client = Client(
        id=new_id(),
        branch_id=branch_id,
        kind=data["kind"],
        name=data["name"],
        owner_id=owner_id,
        source=data["source"],
        phones=phones,
        emails=emails,
        tags=domain.normalize_tags(data["tags"]),
        custom_fields=data.get("custom_fields") or {},
        search_text=domain.search_text(data["name"], phones, emails),
        created_at=now,
        updated_at=now,
    )
    uow.session.add(client)
    uow.session.flush()
    _flush_contacts(uow, client, free=True)
    _timeline(uow, client, "client", "client_created", caller.id, ref_id=client.id, data={"name": client.name}, when=now)
    out = client_out.dump(client)
    uow.emit("client_created", {"branch_id": branch_id, "actor_id": caller.id, "client": out})
    return out


@dataclass(frozen=True)
class DealCheck:
    """What the service learnt of a client's deals before its transaction: the open deals the deals
    service listed, and how many deal openings the timeline held just before it asked (None when the
    deals service is not part of this CRM)."""

    open_deals: list[dict]
    openings: int | None


NO_DEALS = DealCheck([], None)  # a CRM without the deals service


def _refuse_while_deals_open(session, client: Client, deals: DealCheck | None, action: str) -> None:
    """Archiving or moving a client needs it to have no open deals. The list came over RPC before the
    client was locked; a deal opened since shows as a new opening on the timeline (its event was handled
    meanwhile), and one whose event comes after we commit restores the client (``add_deal_event``)."""
    if deals is None:
        raise Conflict("the client changed while it was being saved; read it again and retry")
    if deals.open_deals:
        raise ClientHasOpenDeals(deals.open_deals, action)
    if deals.openings is not None and repo.deal_openings(session, client.id) != deals.openings:
        raise Conflict(f"a deal was opened for the client a moment ago; close it before {action}")


def update_client(
    uow, caller: Caller, client_id: str, raw: dict, expected_version, directory, region: str,
    deals: DealCheck | None = None,
) -> dict:
    """``deals`` (see ``DealCheck``) must show no open deals to move the client to another branch."""
    changes = load_or_raise(client_update, raw)
    client = require_visible(uow.session, caller, client_id, for_update=True)
    VersionConflict.check("client", client.version, expected_version)
    domain.check_branch_change(caller, changes.get("branch_id"), client.branch_id)
    branch_id = changes.get("branch_id", client.branch_id)
    moving = branch_id != client.branch_id
    if moving:
        _refuse_while_deals_open(uow.session, client, deals, "moving the client to another branch")
    if "owner_id" in changes and changes["owner_id"] != client.owner_id and caller.is_manager:
        raise Forbidden("a manager cannot give a client to someone else")
    if "owner_id" in changes and (changes["owner_id"] != client.owner_id or moving):
        # the owner named must belong to the branch the client ends up in
        changes["owner_id"] = domain.check_owner(caller, changes["owner_id"], branch_id, directory)
    elif moving:
        changes["owner_id"] = None  # the old owner works in the old branch; the new branch's head assigns one
    if "phones" in changes or "emails" in changes:
        phones, emails = domain.normalize_contacts(
            changes.get("phones", client.phones), changes.get("emails", client.emails), region
        )
        changes["phones"], changes["emails"] = phones, emails
    if "tags" in changes:
        changes["tags"] = domain.normalize_tags(changes["tags"])
    if "branch_id" in changes or "phones" in changes or "emails" in changes:
        # only what the client does not list yet: a duplicate kept on purpose (an import's create_anyway)
        # may still edit its other fields and contacts
        kept = not moving
        new_phones = [p for p in changes.get("phones", client.phones) if not (kept and p in client.phones)]
        new_emails = [e for e in changes.get("emails", client.emails) if not (kept and e in client.emails)]
        existing = repo.find_by_contacts(uow.session, branch_id, new_phones, new_emails, exclude_id=client.id)
        if existing:
            raise DuplicateContact(existing)

    changed = [name for name in EDITABLE if name in changes and changes[name] != getattr(client, name)]
    if not changed:
        return client_out.dump(client)
    for name in changed:
        setattr(client, name, changes[name])
    client.search_text = domain.search_text(client.name, client.phones, client.emails)
    client.updated_at = utcnow()
    try:
        uow.session.flush()
    except StaleDataError:
        raise VersionConflict("the client changed while you were saving it") from None
    if {"phones", "emails", "branch_id"} & set(changed):
        _flush_contacts(uow, client)
    _timeline(uow, client, "client", "client_updated", caller.id, ref_id=client.id, data={"changed": changed})
    out = client_out.dump(client)
    uow.emit("client_updated", {"branch_id": client.branch_id, "actor_id": caller.id, "client": out, "changed": changed})
    return out


def set_archived(uow, caller: Caller, client_id: str, archived: bool, deals: DealCheck | None = None) -> dict:
    """Archive or restore. To archive, ``deals`` (see ``DealCheck``) must show no open deals."""
    client = require_visible(uow.session, caller, client_id, for_update=True)
    if client.archived == archived:
        return client_out.dump(client)
    if archived:
        _refuse_while_deals_open(uow.session, client, deals, "archiving")
    now = utcnow()
    client.archived_at = now if archived else None
    client.updated_at = now
    uow.session.flush()
    event = "client_archived" if archived else "client_restored"
    _timeline(uow, client, "client", event, caller.id, ref_id=client.id, when=now)
    out = client_out.dump(client)
    uow.emit(event, {"branch_id": client.branch_id, "actor_id": caller.id, "client": out})
    return out


def log_interaction(uow, caller: Caller, client_id: str, raw: dict) -> dict:
    data = load_or_raise(interaction_create, raw)
    client = require_visible(uow.session, caller, client_id)
    interaction = Interaction(
        id=new_id(),
        client_id=client.id,
        branch_id=client.branch_id,
        type=data["type"],
        direction=data["direction"],
        text=data["text"],
        occurred_at=data["occurred_at"] or utcnow(),
        duration_s=data["duration_s"],
        script_id=data["script_id"],
        author_id=caller.id,
        created_at=utcnow(),
    )
    uow.session.add(interaction)
    out = interaction_out.dump(interaction)
    _timeline(
        uow, client, "interaction", interaction.type, caller.id, ref_id=interaction.id,
        data={k: out[k] for k in ("direction", "text", "duration_s", "script_id")},
        when=interaction.occurred_at,
    )
    uow.emit(
        "interaction_logged",
        {"branch_id": client.branch_id, "actor_id": caller.id, "client_id": client.id,
         "owner_id": client.owner_id, "interaction": out},
    )
    return out


def record_touchpoint(uow, caller: Caller, raw: dict, directory: dict | None, region: str) -> dict:
    data = load_or_raise(touchpoint_create, raw)
    branch_id = caller.target_branch(data["branch_id"])
    errors: dict[str, list[str]] = {}
    phone = email = None
    if data["phone"]:
        try:
            phone = domain.normalize_phone(data["phone"], region)
        except ValueError as exc:
            errors["phone"] = [str(exc)]
    if data["email"]:
        try:
            email = domain.normalize_email(data["email"])
        except ValueError as exc:
            errors["email"] = [str(exc)]
    if errors:
        raise ValidationError("invalid contact", fields=errors)
    phones, emails = [phone] if phone else [], [email] if email else []
    for attempt in (1, 2):
        try:
            return _record_touchpoint(uow, caller, data, branch_id, phones, emails, directory)
        except DuplicateContact:
            if attempt == 2:
                raise
            # another touchpoint created the same client a moment ago: find it this time
    raise AssertionError("unreachable")


def _record_touchpoint(uow, caller, data, branch_id, phones, emails, directory) -> dict:
    client_id = repo.find_by_contacts(uow.session, branch_id, phones, emails)
    result, _client, rows = touchpoint_rows(uow, caller, data, branch_id, phones, emails, directory, client_id)
    try:
        insert_objects(uow.session, rows)
    except IntegrityError:
        if not result["created"]:
            raise
        uow.rollback()  # another request claimed one of the contacts a moment ago
        raise DuplicateContact(repo.find_by_contacts(uow.session, branch_id, phones, emails) or "") from None
    return result


def touchpoint_rows(uow, caller, data, branch_id, phones, emails, directory, client_id) -> tuple[dict, Client, list]:
    """The touchpoint use case up to writing its new rows. ``client_id``: the client the contacts found, or None
    for a new client owned round robin (the branch's round-robin row stays locked until the transaction ends).
    An existing client's new contacts are written here and the events emitted; the new rows (the new client's
    first, parents before children) are returned for ``insert_objects``, with the result and the client."""
    session = uow.session
    now = utcnow()
    source = domain.touchpoint_source(data["channel"], data["utm"])
    created = client_id is None
    rows: list = []
    if created:
        cursor = repo.round_robin_cursor(session, branch_id)
        owner_id = domain.next_owner((directory or {}).get("managers") or [], cursor.last_owner_id)
        # no manager to take it: the user recording it (an API key is nobody's owner: it stays unowned)
        if owner_id is None and not caller.is_admin and not (directory or {}).get("machine"):
            owner_id = caller.id
        cursor.last_owner_id = owner_id or cursor.last_owner_id
        name = data["name"] or (emails[0] if emails else phones[0])
        client = Client(
            id=new_id(), branch_id=branch_id, kind="person", name=name, owner_id=owner_id, source=source,
            phones=phones, emails=emails, tags=[], custom_fields={},
            search_text=domain.search_text(name, phones, emails), created_at=now, updated_at=now,
        )
        apply_defaults(session, client)  # as inserted, for the event
        rows += [client, *repo.new_contacts(client),
                 _timeline_entry(client, "client", "client_created", caller.id, ref_id=client.id, data={"name": name},
                                 when=now)]
        uow.emit("client_created", {"branch_id": branch_id, "actor_id": caller.id, "client": client_out.dump(client)})
    else:
        # locked: a concurrent edit of the same client waits instead of failing on its version
        client = session.get(Client, client_id, with_for_update=True)
        _collect_new_contacts(uow, caller, client, phones, emails)
    touchpoint = Touchpoint(
        id=new_id(), client_id=client.id, branch_id=branch_id, channel=data["channel"], name=data["name"],
        phone=phones[0] if phones else None, email=emails[0] if emails else None, message=data["message"],
        utm=data["utm"], created_client=created, recorded_by=caller.id, created_at=now,
    )
    rows += [touchpoint, _timeline_entry(
        client, "touchpoint", data["channel"], caller.id, ref_id=touchpoint.id,
        data={"message": data["message"], "utm": data["utm"], "created_client": created}, when=now,
    )]
    uow.emit(
        "touchpoint_recorded",
        {"branch_id": branch_id, "actor_id": caller.id, "client_id": client.id, "touchpoint_id": touchpoint.id,
         "channel": data["channel"], "source": source, "created": created, "owner_id": client.owner_id,
         "utm": data["utm"]},
    )
    return {"client_id": client.id, "created": created, "touchpoint_id": touchpoint.id}, client, rows


def _collect_new_contacts(uow, caller: Caller, client: Client, phones: list[str], emails: list[str]) -> None:
    """A known client wrote from a new email or called from a new phone: keep it, unless another client has it."""
    session = uow.session
    new_phones = [p for p in phones if p not in client.phones]
    new_emails = [e for e in emails if e not in client.emails]
    if new_phones and repo.find_by_contacts(session, client.branch_id, new_phones, [], exclude_id=client.id):
        new_phones = []
    if new_emails and repo.find_by_contacts(session, client.branch_id, [], new_emails, exclude_id=client.id):
        new_emails = []
    changed = []
    if new_phones:
        client.phones = list(client.phones) + new_phones
        changed.append("phones")
    if new_emails:
        client.emails = list(client.emails) + new_emails
        changed.append("emails")
    if client.archived:
        client.archived_at = None
        changed.append("archived")
    if not changed:
        return
    client.search_text = domain.search_text(client.name, client.phones, client.emails)
    client.updated_at = utcnow()
    session.flush()
    if "phones" in changed or "emails" in changed:
        _flush_contacts(uow, client)
    out = client_out.dump(client)
    event = "client_restored" if changed == ["archived"] else "client_updated"
    _timeline(uow, client, "client", event, caller.id, ref_id=client.id, data={"changed": changed})
    payload = {"branch_id": client.branch_id, "actor_id": caller.id, "client": out}
    if event == "client_updated":
        payload["changed"] = changed
    uow.emit(event, payload)


@dataclass(frozen=True)
class DealOpenAnswer:
    """Asked before a deal-opening event's transaction, for a client then archived at ``archived_at``:
    whether the deals service says the deal is open now."""

    archived_at: datetime
    still_open: bool


def add_deal_event(uow, event_type: str, payload: dict, answer: DealOpenAnswer | None = None) -> bool:
    """Put a deal event on its client's timeline, once; False if it was seen before or the client is unknown.

    A deal opened for an archived client (created while the archive was being decided, or a closed deal
    reopened) brings the client back if ``answer`` says the deal is still open: events may arrive late and
    out of order. When the answer is missing or was given for another archiving (the client was archived,
    or restored and archived again, since), the event is handled again: ``Unavailable`` requeues it.
    """
    if not uow.first_delivery(payload["event_id"], event_type):
        return False
    opening = event_type in repo.DEAL_OPENING_EVENTS
    client = uow.session.get(Client, payload["deal"]["client_id"], with_for_update=opening)
    if client is None:
        return False
    if client.merged_into:
        # a deal of a client merged meanwhile (made just before the merge, or told of late): it shows on the
        # client it became, and the deals service hears of the merge again so it re-points this deal too
        announce_merge(uow, uow.session.get(Client, client.merged_into), client.id, payload.get("actor_id"))
        client = uow.session.get(Client, client.merged_into, with_for_update=opening)
    if opening and client.archived:
        if answer is None or answer.archived_at != client.archived_at:
            raise Unavailable("the client was archived meanwhile: the deal's state is asked again")
        if answer.still_open:
            _restore_for_deal(uow, client, payload)
    uow.session.add(
        TimelineEntry(
            id=new_id(),
            client_id=client.id,
            kind="deal",
            type=event_type,
            occurred_at=datetime.fromisoformat(payload["occurred_at"].replace("Z", "+00:00")),
            ref_id=payload["deal"]["id"],
            actor_id=payload.get("actor_id"),
            data=domain.deal_timeline_data(event_type, payload),
            source_event_id=payload["event_id"],
        )
    )
    return True


def _restore_for_deal(uow, client: Client, payload: dict) -> None:
    client.archived_at = None
    client.updated_at = utcnow()
    uow.session.flush()
    deal = payload["deal"]
    _timeline(uow, client, "client", "client_restored", payload.get("actor_id"), ref_id=client.id,
              data={"reason": "a deal was opened", "deal_id": deal["id"]})
    uow.emit("client_restored", {"branch_id": client.branch_id, "actor_id": payload.get("actor_id"),
                                 "client": client_out.dump(client)})


def add_task_event(uow, event_type: str, payload: dict) -> bool:
    """Put a task or complaint event on its client's timeline, once; False if it was seen before, or the task
    has no client, or the client is unknown here."""
    if not uow.first_delivery(payload["event_id"], event_type):
        return False
    kind, record = ("complaint", payload["complaint"]) if "complaint" in payload else ("task", payload["task"])
    client = uow.session.get(Client, record["client_id"]) if record.get("client_id") else None
    if client is None:
        return False
    uow.session.add(
        TimelineEntry(
            id=new_id(),
            client_id=client.id,
            kind=kind,
            type=event_type,
            occurred_at=datetime.fromisoformat(payload["occurred_at"].replace("Z", "+00:00")),
            ref_id=record["id"],
            actor_id=payload.get("actor_id"),
            data=domain.task_timeline_data(event_type, payload),
            source_event_id=payload["event_id"],
        )
    )
    return True
def announce_merge(uow, kept: Client, merged_id: str, actor_id: str | None) -> None:
    """``client_merged``: the deals and tasks services re-point the merged client's records to ``kept``."""
    uow.emit("client_merged", {"branch_id": kept.branch_id, "actor_id": actor_id,
                               "client": client_out.dump(kept), "merged_id": merged_id})
