"""What the gateway tells the clients service about people for a telephony event (decision 7: the gateway owns
users and vouches for them): the call's branch, the branch's active users with their numbers and shift, the
managers a new client may go to, and who places an outgoing call.

The branch is the key's (or the user's); else the one the body names (an administrator, or a key of no
branch); else the branch of the user whose extension or phone the call reaches (incoming) or comes from
(outgoing); else that of the ``user_id`` named. Without one, the clients service finds the call by its id
alone, and refuses a ringing (422).

An incoming ringing must be answered at once, so the active users are kept in memory (``People``, in the
gateway's ``UserCache`` under ``PEOPLE``) while the cache listens for changes: every change of a user that the
directory shows (a new user; active, role, branch, phone, extension, on shift) sends ``auth.notify_people_changed`` in
its transaction, and every gateway drops its copy as it commits (decision 78). When the cache does not listen
(SQLite, the listener down) they are read for each event instead: one query of a small table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import phonenumbers
from sqlalchemy import select

from crm_common.caller import Caller
from crm_common.schemas import is_uuid
from gateway.apikeys import is_key
from gateway.models import User
from gateway.usercache import PEOPLE, UserCache


def normal_phone(raw: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _text(body: dict, name: str) -> str | None:
    value = body.get(name)
    return value.strip() if isinstance(value, str) and value.strip() else None


@dataclass(frozen=True)
class Person:
    id: str
    branch_id: str | None
    role: str
    on_shift: bool
    phone: str | None
    extension: str | None


@dataclass(frozen=True)
class People:
    """Active users: every one (as cached) or those one event needs (read for it)."""

    id: str
    by_id: dict[str, Person]
    cached_at: float
    # derived once per copy: the lowest id per extension and per phone, and each branch's directory part
    _by_extension: dict[str, str] = field(default_factory=dict, repr=False)
    _by_phone: dict[str, str] = field(default_factory=dict, repr=False)
    _branches: dict[str, tuple[dict, list]] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, rows) -> People:
        people = cls(PEOPLE, {row.id: Person(row.id, row.branch_id, row.role, bool(row.on_shift), row.phone,
                                              row.extension) for row in rows}, time.monotonic())
        for person in sorted(people.by_id.values(), key=lambda p: p.id):
            if person.extension is not None:
                people._by_extension.setdefault(person.extension, person.id)
            if person.phone is not None:
                people._by_phone.setdefault(person.phone, person.id)
        return people

    def by_number(self, number: str | None, region: str) -> Person | None:
        """The active user whose extension or phone this is (the first by id, should two share one)."""
        if not number:
            return None
        phone = normal_phone(number, region)
        found = [uid for uid in (self._by_extension.get(number), self._by_phone.get(phone) if phone else None) if uid]
        return self.by_id[min(found)] if found else None

    def branch(self, branch_id: str) -> tuple[dict, list]:
        """``(users, managers)`` of a branch: its active users as the clients service reads them, and whom a new
        client goes to round robin: the managers on shift, who can take the call; if none is, every manager.
        The same objects for every event until the copy is dropped: read them, never change them."""
        found = self._branches.get(branch_id)
        if found is None:
            members = [p for p in self.by_id.values() if p.branch_id == branch_id]
            users = {p.id: {"role": p.role, "active": True, "on_shift": p.on_shift, "phone": p.phone,
                            "extension": p.extension} for p in members}
            managers = sorted(p.id for p in members if p.role == "manager" and p.on_shift) or sorted(
                p.id for p in members if p.role == "manager")
            found = self._branches[branch_id] = (users, managers)
        return found


_COLUMNS = (User.id, User.branch_id, User.role, User.on_shift, User.phone, User.extension)


def every_active_user(reader) -> People:
    return People.of(reader.execute(select(*_COLUMNS).where(User.active.is_(True))).all())


def people_for(reader, cache: UserCache | None) -> People:
    """Every active user: from memory, or read (and kept while the cache listens for changes)."""
    if cache is None or not cache.listening:
        return every_active_user(reader)
    people = cache.get(PEOPLE)
    if people is None:
        generation = cache.generation(PEOPLE)
        people = every_active_user(reader)
        cache.put(people, generation)
    return people


def directory(reader, caller: Caller, body: dict, region: str, cache: UserCache | None = None) -> dict:
    """``{branch_id, users, managers, user_id, machine}`` for ``clients.record_call_event``."""
    direction = body.get("direction")
    number = _text(body, "to" if direction == "in" else "from")
    # a branch named by someone who may not name it is refused by the clients service (403)
    branch_id = (body.get("branch_id") if isinstance(body.get("branch_id"), str) else None) or caller.branch_id
    named = body.get("user_id") if isinstance(body.get("user_id"), str) and is_uuid(body.get("user_id")) else None
    people = people_for(reader, cache)
    own = people.by_number(number, region)
    if branch_id is None and own is not None:
        branch_id = own.branch_id
    if branch_id is None and named is not None and named in people.by_id:
        branch_id = people.by_id[named].branch_id
    if branch_id is None or not is_uuid(branch_id):
        return {"branch_id": None, "users": {}, "managers": [], "user_id": None, "machine": is_key(caller)}
    users, managers = people.branch(branch_id)
    placing = own.id if own is not None and direction == "out" and own.id in users else None
    return {"branch_id": branch_id, "users": users, "managers": managers, "user_id": placing, "machine": is_key(caller)}
