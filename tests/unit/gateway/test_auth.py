"""Bearer tokens: issued, read back, refused when expired, tampered with or malformed."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import jwt
import pytest
from werkzeug.test import EnvironBuilder

from crm_common.config import Settings
from crm_common.errors import Unauthorized
from gateway.auth import ALGORITHM, bearer_token, hash_password, issue_token, read_token, verify_password

SETTINGS = Settings(secret_key="test-secret-key-0123456789abcdef-xyz", token_ttl_s=600)
USER = SimpleNamespace(id="6f1c2b4e-0d1a-4c3b-9e6f-1a2b3c4d5e6f", token_version=3)


def request_with(headers):
    return EnvironBuilder(path="/api/v1/me", headers=headers).get_request()


def test_an_issued_token_reads_back_as_its_user_and_version():
    token, expires_in = issue_token(SETTINGS, USER)

    claims = read_token(SETTINGS, token)

    assert expires_in == 600
    assert (claims["sub"], claims["ver"]) == (USER.id, 3)
    assert claims["exp"] - claims["iat"] == 600


def test_an_expired_token_is_unauthorized():
    expired = Settings(secret_key=SETTINGS.secret_key, token_ttl_s=-1)
    token, _ = issue_token(expired, USER)

    with pytest.raises(Unauthorized, match="expired"):
        read_token(SETTINGS, token)


def tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    return ".".join([header, payload, ("A" if signature[0] != "A" else "B") + signature[1:]])


def forged_claims(token: str) -> str:
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["sub"] = "someone-else"
    forged = jwt.encode(claims, "another-secret-key-0123456789abcdef", algorithm=ALGORITHM)
    header, payload, _ = forged.split(".")
    return ".".join([header, payload, token.split(".")[2]])


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(tamper, id="changed-signature"),
        pytest.param(forged_claims, id="changed-claims"),
        pytest.param(lambda token: token[:-5], id="truncated"),
        pytest.param(lambda token: "not.a.token", id="garbage"),
        pytest.param(lambda token: "", id="empty"),
    ],
)
def test_a_tampered_token_is_unauthorized(spoil):
    token, _ = issue_token(SETTINGS, USER)

    with pytest.raises(Unauthorized, match="not valid"):
        read_token(SETTINGS, spoil(token))


def test_a_token_signed_with_another_key_is_unauthorized():
    other = Settings(secret_key="another-secret-key-0123456789abcdef")
    token, _ = issue_token(other, USER)

    with pytest.raises(Unauthorized):
        read_token(SETTINGS, token)


def test_a_token_without_a_version_is_unauthorized():
    now = datetime.now(UTC)
    token = jwt.encode({"sub": USER.id, "exp": now + timedelta(minutes=5)}, SETTINGS.secret_key, algorithm=ALGORITHM)

    with pytest.raises(Unauthorized):
        read_token(SETTINGS, token)


def test_an_unsigned_token_is_unauthorized():
    now = datetime.now(UTC)
    token = jwt.encode({"sub": USER.id, "ver": 3, "exp": now + timedelta(minutes=5)}, None, algorithm="none")

    with pytest.raises(Unauthorized):
        read_token(SETTINGS, token)


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer abc.def.ghi", "abc.def.ghi"), ("bearer abc.def.ghi", "abc.def.ghi"), ("Bearer   abc  ", "abc")],
)
def test_the_bearer_token_is_read_from_the_authorization_header(header, token):
    assert bearer_token(request_with({"Authorization": header})) == token


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="missing"),
        pytest.param({"Authorization": ""}, id="empty-header"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, id="wrong-scheme"),
        pytest.param({"Authorization": "Token abc"}, id="other-scheme"),
        pytest.param({"Authorization": "Bearer"}, id="no-token"),
        pytest.param({"Authorization": "Bearer    "}, id="blank-token"),
        pytest.param({"Authorization": "abc.def.ghi"}, id="token-without-scheme"),
    ],
)
def test_a_missing_or_malformed_authorization_header_is_unauthorized(headers):
    with pytest.raises(Unauthorized):
        bearer_token(request_with(headers))


def test_a_hashed_password_verifies_only_with_the_same_password():
    password_hash = hash_password("s3cret-pass")

    assert password_hash != "s3cret-pass"
    assert verify_password(password_hash, "s3cret-pass") is True
    assert verify_password(password_hash, "s3cret-pass ") is False


@pytest.mark.parametrize("password_hash", [None, "", "not-an-argon2-hash"])
def test_a_missing_or_broken_hash_never_verifies(password_hash):
    assert verify_password(password_hash, "not-a-real-password") is False
