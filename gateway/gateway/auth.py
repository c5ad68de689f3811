"""Passwords (argon2), bearer tokens (JWT) and the per-request identity check."""

from __future__ import annotations

import functools
import hashlib
import time
from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from eventlet import tpool
from nameko.extensions import DependencyProvider
from sqlalchemy import delete, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from crm_common.caller import Caller
from crm_common.clock import utcnow
from crm_common.config import Settings, signing_key
from crm_common.errors import Unauthorized
from crm_common.schemas import new_id
from gateway.models import RevokedToken, User
from gateway.usercache import CHANNEL, PEOPLE, UserCache, UserState

_hasher = PasswordHasher()
ALGORITHM = "HS256"


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the email is unknown, so both cases take the same time (made on first use,
    not at import: hashing costs tens of milliseconds)."""
    return _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    # argon2 releases the GIL: hashing in a real thread keeps the other requests moving
    return tpool.execute(_hasher.hash, password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        against = password_hash or tpool.execute(_dummy_hash)  # made once, in the pool like every hash
        return tpool.execute(_hasher.verify, against, password) and bool(password_hash)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def issue_token(settings: Settings, user) -> tuple[str, int]:
    now = datetime.now(UTC)
    claims = {
        "sub": user.id,
        "ver": user.token_version,
        "jti": new_id(),  # what POST /auth/logout revokes
        "iat": now,
        "exp": now + timedelta(seconds=settings.token_ttl_s),
    }
    return jwt.encode(claims, signing_key(settings), algorithm=ALGORITHM), settings.token_ttl_s


def read_token(settings: Settings, token: str) -> dict:
    try:
        claims = jwt.decode(
            token, signing_key(settings), algorithms=[ALGORITHM], options={"require": ["sub", "exp", "ver"]}
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the token has expired; log in again") from None
    except jwt.PyJWTError:
        raise Unauthorized("the token is not valid") from None
    return claims


def token_id(claims: dict, token: str) -> str:
    """The id logging out revokes: the token's ``jti``, or for a token issued before tokens had one, its SHA-256."""
    jti = claims.get("jti")
    return str(jti)[:64] if jti else hashlib.sha256(token.encode()).hexdigest()


def bearer_token(request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise Unauthorized("an Authorization: Bearer <token> header is required")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    return token.strip()


class Authenticator:
    def __init__(self, settings: Settings, worker_ctx, cache: UserCache, keys=None):
        self.settings = settings
        self.worker_ctx = worker_ctx
        self.cache = cache
        self.keys = keys

    def authenticate(self, request) -> Caller:
        """The caller behind the request's bearer token (or API key); a deactivated user's tokens, and a revoked
        key, fail at once."""
        from gateway import apikeys  # imported here: apikeys uses this module

        key = apikeys.presented_key(request)
        if key is not None:
            return self.keys.authenticate(self.worker_ctx.service.db.reader, key)
        token = bearer_token(request)
        claims = read_token(self.settings, token)
        user = self._user(str(claims["sub"]))
        if user is None or not user.active or user.token_version != claims["ver"]:
            raise Unauthorized("the token is no longer valid")
        if token_id(claims, token) in user.revoked:
            raise Unauthorized("the token was ended by logging out; log in again")
        return Caller(id=user.id, role=user.role, branch_id=user.branch_id)

    def revoke(self, session, request, caller: Caller) -> None:
        """End the bearer token of ``request`` (the caller's own): recorded until it would expire, and every
        gateway told to forget the user when the transaction commits; the caller then calls ``forget``."""
        token = bearer_token(request)
        claims = read_token(self.settings, token)
        jti = token_id(claims, token)
        if session.get(RevokedToken, jti) is None:
            expires = datetime.fromtimestamp(int(claims["exp"]), UTC)
            session.add(RevokedToken(jti=jti, user_id=caller.id, expires_at=expires))
            try:
                session.flush()
            except IntegrityError:  # the same token logged out at the same moment: that logout did it all
                session.rollback()
                return
        notify_user_changed(session, caller.id)

    def forget(self, user_id: str) -> None:
        """This process drops what it knows of the user at once; other gateways learn it from the notification."""
        self.cache.forget(user_id)

    def _user(self, user_id: str) -> UserState | None:
        cached = self.cache.get(user_id)
        if cached is not None:
            return cached
        generation = self.cache.generation(user_id)
        # four columns in autocommit: one round trip, no ORM object, no transaction left open while the
        # route waits on services
        row = self.worker_ctx.service.db.reader.execute(
            select(User.id, User.role, User.branch_id, User.active, User.token_version).where(User.id == user_id)
        ).first()
        if row is None:
            return None
        revoked = self.worker_ctx.service.db.reader.scalars(
            select(RevokedToken.jti).where(RevokedToken.user_id == user_id, RevokedToken.expires_at > utcnow())
        ).all()
        state = UserState(row.id, row.role, row.branch_id, row.active, row.token_version, time.monotonic(),
                          frozenset(revoked))
        self.cache.put(state, generation)
        return state


class Auth(DependencyProvider):
    """``auth = Auth()``: ``self.auth.authenticate(request)`` in the route wrapper.

    On PostgreSQL it keeps users' authentication state in a ``UserCache`` that notifications keep exact.
    """

    def setup(self):
        self.settings = Settings.from_config(self.container.config)
        signing_key(self.settings)  # generated (or found wrong) at start, not at the first login
        self.cache = UserCache()
        from gateway.apikeys import KeyAuthenticator

        self.keys = KeyAuthenticator(self.cache)  # keys' state shares the users' cache and its notifications

    def start(self):
        # LISTEN needs a server session of its own: never through a transaction-pooling PgBouncer
        url = make_url(self.settings.direct_database_url_for(self.container.service_name))
        if url.get_backend_name() == "postgresql":
            dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
            self.container.spawn_managed_thread(lambda: self.cache.listen(dsn))

    def stop(self):
        self.cache.stop()

    def get_dependency(self, worker_ctx):
        return Authenticator(self.settings, worker_ctx, self.cache, self.keys)


def notify_user_changed(session, user_id: str) -> None:
    """Tell every gateway to forget what it knows of this user, when the transaction commits."""
    if session.bind.dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, :user_id)"), {"channel": CHANNEL, "user_id": user_id})


def notify_people_changed(session) -> None:
    """Tell every gateway, when the transaction commits, that what the telephony directory shows of the users
    changed (gateway/telephony.py): a new user, or one's active flag, role, branch, phone, extension or shift. The
    directory is a cache entry like a user's, under the id ``PEOPLE``."""
    notify_user_changed(session, PEOPLE)


def purge_revoked_tokens(session) -> int:
    """Forget revoked tokens that have expired anyway (they fail on their ``exp``)."""
    removed = session.execute(delete(RevokedToken).where(RevokedToken.expires_at <= utcnow())).rowcount
    session.commit()
    return removed
