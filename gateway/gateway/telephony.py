"""What the gateway tells the clients service about people for a telephony event (decision 7: the gateway owns
users and vouches for them): the call's branch, the branch's active users with their numbers and shift, the
managers a new client may go to, and who places an outgoing call.

The branch is the key's (or the user's); else the one the body names (an administrator, or a key of no
branch); else the branch of the user whose extension or phone the call reaches (incoming) or comes from
(outgoing); else that of the ``user_id`` named. Without one, the clients service finds the call by its id
alone, and refuses a ringing (422).
"""

from __future__ import annotations

import phonenumbers
from sqlalchemy import or_, select

from crm_common.caller import Caller
from crm_common.schemas import is_uuid
from gateway.apikeys import is_key
from gateway.models import User


def normal_phone(raw: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _text(body: dict, name: str) -> str | None:
    value = body.get(name)
    return value.strip() if isinstance(value, str) and value.strip() else None


def user_by_number(reader, number: str | None, region: str):
    """The active user whose extension or phone this is (the first by id, should two share one)."""
    if not number:
        return None
    conditions = [User.extension == number]
    phone = normal_phone(number, region)
    if phone:
        conditions.append(User.phone == phone)
    query = select(User.id, User.branch_id).where(User.active.is_(True), or_(*conditions)).order_by(User.id).limit(1)
    return reader.execute(query).first()


def branch_users(reader, branch_id: str) -> dict[str, dict]:
    rows = reader.execute(
        select(User.id, User.role, User.on_shift, User.phone, User.extension)
        .where(User.branch_id == branch_id, User.active.is_(True))
    ).all()
    return {row.id: {"role": row.role, "active": True, "on_shift": row.on_shift, "phone": row.phone,
                     "extension": row.extension} for row in rows}


def directory(reader, caller: Caller, body: dict, region: str) -> dict:
    """``{branch_id, users, managers, user_id, machine}`` for ``clients.record_call_event``."""
    direction = body.get("direction")
    own = user_by_number(reader, _text(body, "to" if direction == "in" else "from"), region)
    # a branch named by someone who may not name it is refused by the clients service (403)
    branch_id = (body.get("branch_id") if isinstance(body.get("branch_id"), str) else None) or caller.branch_id
    if branch_id is None and own is not None:
        branch_id = own.branch_id
    named = body.get("user_id")
    if branch_id is None and isinstance(named, str) and is_uuid(named):
        row = reader.execute(select(User.branch_id).where(User.id == named, User.active.is_(True))).first()
        branch_id = row.branch_id if row else None
    if branch_id is None or not is_uuid(branch_id):
        return {"branch_id": None, "users": {}, "managers": [], "user_id": None, "machine": is_key(caller)}
    users = branch_users(reader, branch_id)
    # a new client goes round robin to the managers on shift, who can take the call; if none is, to every manager
    managers = sorted(uid for uid, u in users.items() if u["role"] == "manager" and u["on_shift"]) or sorted(
        uid for uid, u in users.items() if u["role"] == "manager")
    placing = own.id if own is not None and direction == "out" and own.id in users else None
    return {"branch_id": branch_id, "users": users, "managers": managers, "user_id": placing, "machine": is_key(caller)}
