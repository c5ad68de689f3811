"""Passwords (argon2), bearer tokens (JWT) and the per-request identity check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from eventlet import tpool
from nameko.extensions import DependencyProvider
from sqlalchemy import select

from crm_common.caller import Caller
from crm_common.config import Settings
from crm_common.errors import Unauthorized

_hasher = PasswordHasher()
ALGORITHM = "HS256"
# verified against when the email is unknown, so both cases take the same time
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    # argon2 releases the GIL: hashing in a real thread keeps the other requests moving
    return tpool.execute(_hasher.hash, password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return tpool.execute(_hasher.verify, password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def issue_token(settings: Settings, user) -> tuple[str, int]:
    now = datetime.now(UTC)
    claims = {
        "sub": user.id,
        "ver": user.token_version,
        "iat": now,
        "exp": now + timedelta(seconds=settings.token_ttl_s),
    }
    return jwt.encode(claims, settings.secret_key, algorithm=ALGORITHM), settings.token_ttl_s


def read_token(settings: Settings, token: str) -> dict:
    try:
        claims = jwt.decode(
            token, settings.secret_key, algorithms=[ALGORITHM], options={"require": ["sub", "exp", "ver"]}
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the token has expired; log in again") from None
    except jwt.PyJWTError:
        raise Unauthorized("the token is not valid") from None
    return claims


def bearer_token(request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise Unauthorized("an Authorization: Bearer <token> header is required")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    return token.strip()


class Authenticator:
    def __init__(self, settings: Settings, worker_ctx):
        self.settings = settings
        self.worker_ctx = worker_ctx

    def authenticate(self, request) -> Caller:
        """The caller behind the request's bearer token; a deactivated user's tokens fail at once."""
        from gateway.models import User

        claims = read_token(self.settings, bearer_token(request))
        # four columns in autocommit: one round trip, no ORM object, no transaction left open while the
        # route waits on services
        row = self.worker_ctx.service.db.reader.execute(
            select(User.id, User.role, User.branch_id, User.active, User.token_version).where(User.id == str(claims["sub"]))
        ).first()
        if row is None or not row.active or row.token_version != claims["ver"]:
            raise Unauthorized("the token is no longer valid")
        return Caller(id=row.id, role=row.role, branch_id=row.branch_id)


class Auth(DependencyProvider):
    """``auth = Auth()``: ``self.auth.authenticate(request)`` in the route wrapper."""

    def setup(self):
        self.settings = Settings.from_config(self.container.config)

    def get_dependency(self, worker_ctx):
        return Authenticator(self.settings, worker_ctx)
