"""Identity use cases: the first administrator, login, branches and users, and who may manage whom."""

from __future__ import annotations

import logging

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from crm_common.caller import Caller
from crm_common.clock import utcnow
from crm_common.config import Settings
from crm_common.contracts.identity import (
    BranchCreateSchema,
    BranchSchema,
    LoginSchema,
    UserCreateSchema,
    UserQuerySchema,
    UserSchema,
    UserUpdateSchema,
)
from crm_common.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized, ValidationError
from crm_common.events import validate_event
from crm_common.exports import check_export_args, export_page
from crm_common.pagination import SortKey, paginate
from crm_common.schemas import PageQuerySchema, is_uuid, load_or_raise, new_id
from gateway import throttle
from gateway.auth import hash_password, issue_token, notify_people_changed, notify_user_changed, verify_password
from gateway.models import Branch, OutboxMessage, User

log = logging.getLogger(__name__)

branch_out = BranchSchema()
user_out = UserSchema()
USER_KEYS = [SortKey(User.created_at, True, "datetime"), SortKey(User.id, True)]
BRANCH_KEYS = [SortKey(Branch.created_at, True, "datetime"), SortKey(Branch.id, True)]


class UserNotFound(NotFound):
    def __init__(self, message="user not found", fields=None, details=None):
        super().__init__(message, fields, details)


class BranchNotFound(NotFound):
    def __init__(self, message="branch not found", fields=None, details=None):
        super().__init__(message, fields, details)


def bootstrap_admin(session, settings: Settings) -> User | None:
    """Create the first administrator from CRM_ADMIN_EMAIL / CRM_ADMIN_PASSWORD if there is no user yet."""
    if session.scalar(select(func.count()).select_from(User)):
        return None
    now = utcnow()
    admin = User(
        id=new_id(), email=settings.admin_email.lower(), name=settings.admin_name,
        password_hash=hash_password(settings.admin_password), role="admin", branch_id=None,
        active=True, on_shift=True, can_export=False, created_at=now, updated_at=now,
    )
    session.add(admin)
    notify_people_changed(session)
    # announced like any other user, so services that keep a copy of users (tasks: who the admins are) hear of it
    payload = validate_event("user_created", {"branch_id": None, "actor_id": None, "user": user_out.dump(admin)})
    session.add(OutboxMessage(event_id=payload["event_id"], event_type="user_created", payload=payload))
    try:
        session.commit()
    except IntegrityError:  # another gateway replica did it first
        session.rollback()
        return None
    log.info("created the first administrator %s", admin.email)
    return admin


def login(uow, settings: Settings, raw: dict, address: str = "unknown") -> dict:
    """The attempt is counted before the password is checked (gateway/throttle.py), so however many logins
    arrive at once, at most the limit of passwords is checked per email and per address in a window.
    No transaction stays open while argon2 works (tens of milliseconds)."""
    data = load_or_raise(LoginSchema, raw)
    email = data["email"]
    attempt = throttle.reserve(uow.session, settings, email, address)
    user = uow.reader.scalars(select(User).where(User.email == email)).first()
    if not verify_password(user.password_hash if user else None, data["password"]) or not user.active:
        raise Unauthorized("wrong email or password, or the account is deactivated")
    throttle.succeeded(uow.session, attempt)
    token, expires_in = issue_token(settings, user)
    return {"access_token": token, "token_type": "bearer", "expires_in": expires_in}


# ---- branches

def create_branch(uow, caller: Caller, raw: dict) -> dict:
    if not caller.is_admin:
        raise Forbidden("only an administrator creates branches")
    data = load_or_raise(BranchCreateSchema, raw)
    session = uow.session
    code = data["code"].upper()
    if session.scalars(select(Branch).where(Branch.code == code)).first():
        raise Conflict("a branch with this code exists", fields={"code": ["Already used by another branch."]})
    branch = Branch(id=new_id(), name=data["name"], code=code, created_at=utcnow())
    session.add(branch)
    try:
        session.flush()
    except IntegrityError:
        uow.rollback()
        raise Conflict("a branch with this code exists", fields={"code": ["Already used by another branch."]}) from None
    out = branch_out.dump(branch)
    uow.emit("branch_created", {"branch_id": branch.id, "actor_id": caller.id, "branch": out})
    return out


def list_branches(session, caller: Caller, raw: dict) -> dict:
    page = load_or_raise(PageQuerySchema, raw, BadRequest)
    query = select(Branch)
    if not caller.is_admin:
        query = query.where(Branch.id == caller.branch_id)
    return paginate(session, query, BRANCH_KEYS, page["cursor"], page["limit"], branch_out.dump)


def get_branch(session, caller: Caller, branch_id: str) -> dict:
    branch = session.get(Branch, branch_id) if is_uuid(branch_id) else None
    if branch is None or not (caller.is_admin or caller.branch_id == branch.id):
        raise BranchNotFound()
    return branch_out.dump(branch)


def branch_exists(session, branch_id) -> bool:
    return isinstance(branch_id, str) and is_uuid(branch_id) and session.get(Branch, branch_id) is not None


def require_branch(session, branch_id, field: str = "branch_id") -> None:
    if not branch_exists(session, branch_id):
        raise ValidationError("no such branch", fields={field: ["No such branch."]})


# ---- users

def _visible_user(session, caller: Caller, user_id: str) -> User:
    user = session.get(User, user_id) if is_uuid(user_id) else None
    if user is None or not (caller.is_admin or user.branch_id == caller.branch_id):
        raise UserNotFound()
    return user


def get_user(session, caller: Caller, user_id: str) -> dict:
    return user_out.dump(_visible_user(session, caller, user_id))


def list_users(session, caller: Caller, raw: dict) -> dict:
    filters = load_or_raise(UserQuerySchema, raw, BadRequest)
    query = select(User)
    if not caller.is_admin:
        query = query.where(User.branch_id == caller.branch_id)
    if filters.get("branch_id"):
        query = query.where(User.branch_id == filters["branch_id"])
    if filters.get("role"):
        query = query.where(User.role == filters["role"])
    if "active" in filters:
        query = query.where(User.active == filters["active"])
    if filters.get("q"):
        pattern = f"%{filters['q'].lower()}%"
        query = query.where(or_(func.lower(User.name).like(pattern), User.email.like(pattern)))
    return paginate(session, query, USER_KEYS, filters["cursor"], filters["limit"], user_out.dump)


def _check_role_and_branch(session, caller: Caller, role: str, branch_id: str | None) -> None:
    if caller.is_manager:
        raise Forbidden("a manager cannot manage users")
    if caller.is_head and (role != "manager" or branch_id != caller.branch_id):
        raise Forbidden("a head of sales may only manage managers of their own branch")
    if role != "admin":
        if not branch_id:
            raise ValidationError("branch required", fields={"branch_id": ["Required for a head or manager."]})
        require_branch(session, branch_id)
    elif branch_id:
        require_branch(session, branch_id)


def create_user(uow, caller: Caller, raw: dict) -> dict:
    data = load_or_raise(UserCreateSchema, raw)
    password_hash = hash_password(data["password"])  # before the session holds a connection
    session = uow.session
    if caller.is_head and data["branch_id"] is None:
        data["branch_id"] = caller.branch_id
    _check_role_and_branch(session, caller, data["role"], data["branch_id"])
    email = data["email"]
    if session.scalars(select(User).where(User.email == email)).first():
        raise Conflict("this email is taken", fields={"email": ["Already used by another user."]})
    now = utcnow()
    user = User(
        id=new_id(), email=email, name=data["name"], password_hash=password_hash,
        role=data["role"], branch_id=data["branch_id"], active=True, created_at=now, updated_at=now,
        phone=data["phone"], extension=data["extension"], on_shift=data["on_shift"], can_export=False,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError:
        uow.rollback()
        raise Conflict("this email is taken", fields={"email": ["Already used by another user."]}) from None
    notify_people_changed(session)
    out = user_out.dump(user)
    uow.emit("user_created", {"branch_id": user.branch_id, "actor_id": caller.id, "user": out})
    return out


def update_user(uow, caller: Caller, user_id: str, raw: dict) -> dict:
    changes = load_or_raise(UserUpdateSchema, raw)
    session = uow.session
    user = _visible_user(session, caller, user_id)
    is_self = user.id == caller.id
    if caller.is_manager or (caller.is_head and is_self):
        if not is_self or set(changes) - SELF_SERVICE:
            raise Forbidden("you may change only your own name, password, phone, extension and shift")
    elif caller.is_head:
        if user.role != "manager":
            raise Forbidden("a head of sales may only manage managers of their own branch")
    if set(changes) & {"role", "branch_id"}:
        _check_role_and_branch(
            session, caller, changes.get("role", user.role), changes.get("branch_id", user.branch_id)
        )
    _check_can_export(caller, user, changes)
    if is_self and changes.get("active") is False:
        raise Conflict("you cannot deactivate yourself", fields={"active": ["You cannot deactivate yourself."]})
    if user.role == "admin" and (changes.get("active") is False or changes.get("role", "admin") != "admin"):
        _keep_an_admin(session, user)
    # only once the caller may make the change: hashing costs tens of milliseconds of a shared thread pool
    new_hash = hash_password(changes["password"]) if "password" in changes else None

    changed = []
    for name in ("name", "role", "branch_id", "active", "phone", "extension", "on_shift", "can_export"):
        if name in changes and changes[name] != getattr(user, name):
            setattr(user, name, changes[name])
            changed.append(name)
    if user.can_export and user.role != "head":  # a head moved to another role does not keep the grant
        user.can_export = False
        changed.append("can_export")
    if "password" in changes:
        user.password_hash = new_hash
        changed.append("password")
    if {"password", "active", "role", "branch_id"} & set(changed):
        user.token_version += 1  # every token issued before stops working now
        notify_user_changed(session, user.id)
    if DIRECTORY_FIELDS & set(changed):
        notify_people_changed(session)
    if not changed:
        return user_out.dump(user)
    user.updated_at = utcnow()
    session.flush()
    out = user_out.dump(user)
    public_changes = [c for c in changed if c != "password"]
    uow.emit("user_updated", {"branch_id": user.branch_id, "actor_id": caller.id, "user": out, "changed": public_changes})
    return out


def _check_can_export(caller: Caller, user: User, changes: dict) -> None:
    """Only an administrator grants exports, and only to a head (an administrator always may export)."""
    if "can_export" not in changes:
        return
    if not caller.is_admin:
        raise Forbidden("only an administrator grants or withdraws exports")
    if changes["can_export"] and changes.get("role", user.role) != "head":
        raise ValidationError("only a head of sales can be granted exports",
                              fields={"can_export": ["Only a head can hold it (administrators always may export)."]})


# what anyone may change of their own account: a manager switches their shift and keeps their numbers
SELF_SERVICE = {"name", "password", "phone", "extension", "on_shift"}
# what the gateway's telephony directory shows of a user (gateway/telephony.py): a change tells every gateway
DIRECTORY_FIELDS = {"active", "role", "branch_id", "phone", "extension", "on_shift"}


def _keep_an_admin(session, user: User) -> None:
    others = session.scalar(
        select(func.count()).select_from(User).where(User.role == "admin", User.active.is_(True), User.id != user.id)
    )
    if not others:
        raise Conflict("the last active administrator cannot be removed", fields={"active": ["Last administrator."]})


def directory(session, user_ids) -> dict:
    """What the gateway vouches for about some users, for services that check owners."""
    ids = [u for u in user_ids if isinstance(u, str) and is_uuid(u)]
    if not ids:
        return {"users": {}}
    users = session.scalars(select(User).where(User.id.in_(ids))).all()
    return {"users": {u.id: {"branch_id": u.branch_id, "role": u.role, "active": u.active} for u in users}}


def active_managers(session, branch_id: str | None) -> list[str]:
    if not branch_id or not is_uuid(str(branch_id)):
        return []
    query = select(User.id).where(User.branch_id == branch_id, User.role == "manager", User.active.is_(True))
    return list(session.scalars(query).all())


def users_by_email(session, branch_id: str, emails) -> dict[str, str]:
    """``{email: user id}`` of the active users of a branch among these emails (lower case)."""
    wanted = {e.strip().lower() for e in emails if isinstance(e, str) and e.strip()}
    if not wanted:
        return {}
    query = select(User.email, User.id).where(User.email.in_(wanted), User.branch_id == branch_id, User.active.is_(True))
    return dict(session.execute(query).all())
EXPORT_KINDS = ("users", "branches")


def export(session, kind, cursor, limit) -> dict:
    """Users and branches as ``user_created`` and ``branch_created`` carry them (``crm_common.exports``)."""
    limit = check_export_args(EXPORT_KINDS, kind, cursor, limit)
    if kind == "users":
        return export_page(session, User, cursor, limit, lambda rows: [user_out.dump(u) for u in rows])
    return export_page(session, Branch, cursor, limit, lambda rows: [branch_out.dump(b) for b in rows])
