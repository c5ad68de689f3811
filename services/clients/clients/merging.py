"""Likely duplicates of a client, and merging two clients into one.

A merge keeps one client (``client_id``) and turns the other into a redirect to it: the kept client gets
every contact, tag, custom field, interaction, touchpoint and timeline entry of both, and ``client_merged``
tells the deals and tasks services to re-point their records.
"""

from __future__ import annotations

from sqlalchemy import update

from clients import domain
from clients import repository as repo
from clients.commands import _timeline, announce_merge, require_visible
from clients.exceptions import ClientNotFound
from clients.models import Client, Interaction, TimelineEntry, Touchpoint
from clients.schemas import client_merge, client_out
from crm_common.caller import Caller
from crm_common.clock import utcnow
from crm_common.errors import Forbidden, ValidationError, require
from crm_common.schemas import load_or_raise

DUPLICATES_LIMIT = 100
REASON_ORDER = {"same_phone": 0, "same_email": 1, "same_name": 2}


def find_duplicates(session, caller: Caller, client_id: str) -> dict:
    """Clients of the same branch the caller may see that are likely the same person or company, strongest
    first: sharing a phone or an email (claimed or not), or with the same name and kind (for two persons
    whose ``company`` custom fields both say something, only if they name the same company)."""
    client = require_visible(session, caller, client_id)
    reasons: dict[str, list[dict]] = {}
    for other_id, kind, value in repo.shared_contacts(session, client):
        reasons.setdefault(other_id, []).append({"reason": f"same_{kind}", "value": value})
    for other in repo.same_name(session, client, DUPLICATES_LIMIT):
        company = domain.same_company(client.custom_fields, other.custom_fields) if client.kind == "person" else None
        if company is False:
            continue
        reason = {"reason": "same_name", "value": other.name}
        if company:
            reason["company"] = str(other.custom_fields["company"]).strip()
        reasons.setdefault(other.id, []).append(reason)
    found = repo.visible_clients(session, caller, list(reasons))
    found.sort(key=lambda c: (-len(reasons[c.id]), min(REASON_ORDER[r["reason"]] for r in reasons[c.id]),
                              c.created_at, c.id))
    return {"items": [{"client": client_out.dump(c), "reasons": sorted(reasons[c.id], key=lambda r: REASON_ORDER[r["reason"]])}
                      for c in found[:DUPLICATES_LIMIT]]}


def merge_clients(uow, caller: Caller, client_id: str, raw: dict) -> dict:
    """Merge ``other_id`` into ``client_id``: ``{"other_id": "..."}`` → the kept client."""
    if caller.is_manager:
        raise Forbidden("only a head of sales or an administrator merges clients")
    other_id = load_or_raise(client_merge, raw)["other_id"]
    session = uow.session
    kept, other = _lock_pair(session, caller, client_id, other_id)
    _check_mergeable(kept, other)
    now = utcnow()
    fields = domain.merged_fields(kept, other)
    changed = [name for name, value in fields.items() if value != getattr(kept, name)]
    for name, value in fields.items():
        setattr(kept, name, value)
    if kept.archived and not other.archived:
        kept.archived_at = None  # the other's records (an open deal among them) stay in the active base
        changed.append("archived")
    kept.search_text = domain.search_text(kept.name, kept.phones, kept.emails)
    kept.updated_at = now
    other.merged_into, other.merged_at, other.updated_at = kept.id, now, now
    session.flush()
    _move_contacts(session, kept, other)
    for model in (Interaction, Touchpoint, TimelineEntry):
        session.execute(update(model).where(model.client_id == other.id).values(client_id=kept.id)
                        .execution_options(synchronize_session=False))
    # clients merged into the other earlier now lead straight to the kept one
    session.execute(update(Client).where(Client.merged_into == other.id).values(merged_into=kept.id)
                    .execution_options(synchronize_session=False))
    _timeline(uow, kept, "client", "client_merged", caller.id, ref_id=other.id,
              data={"merged_id": other.id, "merged_name": other.name, "changed": changed}, when=now)
    announce_merge(uow, kept, other.id, caller.id)
    return client_out.dump(kept)


def _lock_pair(session, caller: Caller, client_id: str, other_id: str) -> tuple[Client, Client]:
    if other_id == client_id:
        raise ValidationError("a client cannot be merged into itself",
                              fields={"other_id": ["A client cannot be merged into itself."]})
    # locked in id order: two merges of the same pair, either way round, cannot deadlock
    found = {}
    for wanted in sorted((client_id, other_id)):
        found[wanted] = repo.get_visible(session, caller, wanted, for_update=True)
    kept = require(found[client_id], ClientNotFound)
    other = found[other_id]
    if other is None:
        raise ValidationError("no such client", fields={"other_id": ["No such client."]})
    return kept, other


def _check_mergeable(kept: Client, other: Client) -> None:
    for field, client in (("client_id", kept), ("other_id", other)):
        if client.merged_into:
            raise ValidationError(
                "the client was merged already", fields={field: [f"Already merged into client {client.merged_into}."]}
            )
    if kept.branch_id != other.branch_id:
        raise ValidationError(
            "the clients are in different branches",
            fields={"other_id": ["In another branch: move one of the clients to the other's branch first."]},
        )


def _move_contacts(session, kept: Client, other: Client) -> None:
    """The other's contact rows become the kept client's; where both list a value, one row stays, claimed if
    either row was."""
    mine = {(row.kind, row.value): row for row in repo.contacts_of(session, kept.id)}
    promote = []
    for row in repo.contacts_of(session, other.id):
        own = mine.get((row.kind, row.value))
        if own is None:
            row.client_id = kept.id
            continue
        if row.claimed and not own.claimed:
            promote.append(own)
        session.delete(row)
    session.flush()  # the other's claimed row is gone before the kept one claims the value
    for row in promote:
        row.claimed = True
    session.flush()
