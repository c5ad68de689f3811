"""API keys: machines (the telephone exchange, the website's forms) calling the API without a user's password.

A key is ``crm_`` and 43 random URL-safe characters (256 bits), shown once when it is made; the gateway keeps
only its SHA-256. It is sent as ``Authorization: Bearer crm_...`` or ``X-Api-Key: crm_...``; the prefix tells it
from a user's token. A key acts as a machine caller of its branch (as a head sees it: the whole branch), or of
every branch when it has none (as an administrator sees them), but may call only the routes that accept one of
its scopes (``@api(..., scopes=(...))``); a route that names no scope refuses every key (403).

Revoking a key works at once on every gateway: the key's state is cached like users' (``gateway/usercache.py``)
under ``key:<sha256>``, and a revocation notifies every gateway on the same channel in its transaction.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass, field

from sqlalchemy import select, update

from crm_common.caller import Caller
from crm_common.clock import utcnow
from crm_common.contracts.integrations import KEY_PREFIX, ApiKeyCreateSchema, ApiKeyQuerySchema, ApiKeySchema
from crm_common.errors import BadRequest, Forbidden, NotFound, Unauthorized
from crm_common.pagination import SortKey, paginate
from crm_common.schemas import is_uuid, load_or_raise, new_id
from gateway import identity
from gateway.models import ApiKey

KEY_PATTERN = re.compile(rf"{KEY_PREFIX}[A-Za-z0-9_-]{{43}}")
API_KEY_HEADER = "X-Api-Key"
SHOWN_PREFIX = 10  # "crm_" and six characters: enough to tell keys apart in a list, nothing to guess from
LAST_USED_EVERY_S = 60.0
KEY_SORT = [SortKey(ApiKey.created_at, True, "datetime"), SortKey(ApiKey.id, True)]

key_out = ApiKeySchema()


class ApiKeyNotFound(NotFound):
    """API key not found"""


@dataclass(frozen=True)
class KeyCaller(Caller):
    """A caller authenticated by an API key. Services see it as a head of the key's branch, or an administrator
    for a key of no branch (``dump()`` is what travels); the gateway also knows its scopes."""

    scopes: frozenset = field(default_factory=frozenset)
    name: str = ""

    def dump(self) -> dict:
        return {"id": self.id, "role": self.role, "branch_id": self.branch_id}


@dataclass(frozen=True)
class KeyState:
    """What the gateway remembers of a key between requests, kept in the users' cache under ``key:<sha256>``."""

    id: str
    key_id: str
    name: str
    branch_id: str | None
    scopes: tuple[str, ...]
    revoked: bool
    cached_at: float


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    """SHA-256, unkeyed: the key is 256 random bits, so its hash cannot be reversed by guessing, and a fast hash
    keeps a request's cost at one dictionary look-up (decisions.md 49)."""
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def cache_id(digest: str) -> str:
    return f"key:{digest}"


def presented_key(request) -> str | None:
    """The API key a request carries (``X-Api-Key``, or a bearer token starting ``crm_``), else None."""
    given = request.headers.get(API_KEY_HEADER)
    if given is not None:
        return given.strip()
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token.startswith(KEY_PREFIX):
        return token
    return None


def caller_of(state: KeyState) -> KeyCaller:
    role = "head" if state.branch_id else "admin"
    return KeyCaller(id=state.key_id, role=role, branch_id=state.branch_id, scopes=frozenset(state.scopes),
                     name=state.name)


class KeyAuthenticator:
    """Authenticates keys for one gateway process; ``cache`` is its ``UserCache``."""

    def __init__(self, cache):
        self.cache = cache
        self._last_used: dict[str, float] = {}

    def authenticate(self, reader, key: str) -> KeyCaller:
        if not KEY_PATTERN.fullmatch(key):
            raise Unauthorized("malformed API key: it is crm_ and 43 characters")
        digest = key_hash(key)
        state = self.cache.get(cache_id(digest))
        if state is None:
            generation = self.cache.generation(cache_id(digest))
            row = reader.execute(
                select(ApiKey.id, ApiKey.name, ApiKey.branch_id, ApiKey.scopes, ApiKey.revoked_at)
                .where(ApiKey.key_hash == digest)
            ).first()
            if row is None:
                raise Unauthorized("unknown API key")
            state = KeyState(cache_id(digest), row.id, row.name, row.branch_id, tuple(row.scopes or ()),
                             row.revoked_at is not None, time.monotonic())
            self.cache.put(state, generation)
        if state.revoked:
            raise Unauthorized("this API key has been revoked")
        self._touch(reader, state.key_id)
        return caller_of(state)

    def _touch(self, reader, key_id: str) -> None:
        """``last_used_at``, written at most once a minute per key and process: it shows keys nobody uses."""
        now = time.monotonic()
        if now - self._last_used.get(key_id, -LAST_USED_EVERY_S) < LAST_USED_EVERY_S:
            return
        self._last_used[key_id] = now
        reader.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=utcnow()))


def check_access(caller: Caller, roles: tuple[str, ...] | None, scopes: tuple[str, ...] | None) -> None:
    """A key may use a route that accepts one of its scopes (whatever ``roles`` says); a user needs the role."""
    if isinstance(caller, KeyCaller):
        if not scopes:
            raise Forbidden("API keys may not use this route")
        if not caller.scopes & set(scopes):
            raise Forbidden(f"this needs an API key with the scope {' or '.join(scopes)}")
        return
    if roles and caller.role not in roles:
        raise Forbidden(f"this needs the role {' or '.join(roles)}")


def is_key(caller: Caller) -> bool:
    return isinstance(caller, KeyCaller)


# ---- managing keys (administrators)

def _only_admins(caller: Caller) -> None:
    if not caller.is_admin or is_key(caller):
        raise Forbidden("only an administrator manages API keys")


def create_key(uow, caller: Caller, raw: dict) -> dict:
    """A new key; the answer is the only place the key itself ever appears."""
    _only_admins(caller)
    data = load_or_raise(ApiKeyCreateSchema, raw)
    if data["branch_id"] is not None:
        identity.require_branch(uow.session, data["branch_id"])
    key = new_key()
    row = ApiKey(id=new_id(), name=data["name"], prefix=key[:SHOWN_PREFIX], key_hash=key_hash(key),
                 branch_id=data["branch_id"], scopes=list(data["scopes"]), created_by=caller.id, created_at=utcnow())
    uow.session.add(row)
    uow.session.flush()
    return {**key_out.dump(row), "key": key}


def list_keys(session, caller: Caller, raw: dict) -> dict:
    _only_admins(caller)
    filters = load_or_raise(ApiKeyQuerySchema, raw, BadRequest)
    query = select(ApiKey)
    if "revoked" in filters:
        query = query.where(ApiKey.revoked_at.is_not(None) if filters["revoked"] else ApiKey.revoked_at.is_(None))
    return paginate(session, query, KEY_SORT, filters["cursor"], filters["limit"], key_out.dump)


def revoke_key(uow, caller: Caller, key_id: str) -> tuple[dict, str]:
    """Revoke now (again: no change); every gateway forgets the key when this commits. Returns the key and the
    cache id this process must forget too."""
    _only_admins(caller)
    row = uow.session.get(ApiKey, key_id, with_for_update=True) if is_uuid(key_id) else None
    if row is None:
        raise ApiKeyNotFound()
    if row.revoked_at is None:
        from gateway.auth import notify_user_changed

        row.revoked_at = utcnow()
        notify_user_changed(uow.session, cache_id(row.key_hash))
    uow.session.flush()
    return key_out.dump(row), cache_id(row.key_hash)
