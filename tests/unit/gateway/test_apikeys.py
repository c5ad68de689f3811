"""API keys: what is kept, how a request presents one, what a key may do, and that a revoked key stops at once."""

import uuid
from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from crm_common.caller import Caller
from crm_common.errors import Forbidden, Unauthorized, ValidationError
from crm_common.testing.uow import FakeUnitOfWork
from gateway import apikeys
from gateway.models import ApiKey, Base
from gateway.usercache import UserCache

ADMIN = Caller(str(uuid.uuid4()), "admin", None)


def request_with(headers):
    return SimpleNamespace(headers=headers)


def listening_cache():
    cache = UserCache()
    cache.listening = True
    return cache


def test_a_new_key_is_long_random_and_kept_only_as_its_sha256():
    key = apikeys.new_key()

    assert apikeys.KEY_PATTERN.fullmatch(key) and key != apikeys.new_key()
    assert len(apikeys.key_hash(key)) == 64 and key not in apikeys.key_hash(key)


@pytest.mark.parametrize(("headers", "found"), [
    ({"X-Api-Key": "crm_abc"}, "crm_abc"),
    ({"Authorization": "Bearer crm_abc"}, "crm_abc"),
    ({"Authorization": "bearer  crm_abc "}, "crm_abc"),
    ({"Authorization": "Bearer eyJhbGciOi.jwt.token"}, None),
    ({}, None),
])
def test_a_key_is_read_from_x_api_key_or_a_bearer_token_with_its_prefix(headers, found):
    assert apikeys.presented_key(request_with(headers)) == found


def key_caller(scopes=("clients:read",), branch="b1"):
    state = apikeys.KeyState("key:x", str(uuid.uuid4()), "k", branch, tuple(scopes), False, 0.0)
    return apikeys.caller_of(state)


def test_a_key_of_a_branch_acts_as_its_head_and_one_of_no_branch_as_an_administrator():
    assert key_caller(branch="b1").role == "head" and key_caller(branch=None).role == "admin"
    assert set(key_caller().dump()) == {"id", "role", "branch_id"}  # the scopes stay in the gateway


def test_a_key_may_use_a_route_of_one_of_its_scopes_whatever_its_roles_say():
    apikeys.check_access(key_caller(["telephony:write"]), ("admin",), ("telephony:write",))
    with pytest.raises(Forbidden):
        apikeys.check_access(key_caller(["clients:read"]), None, ("telephony:write",))
    with pytest.raises(Forbidden):
        apikeys.check_access(key_caller(["clients:read"]), None, None)  # a route naming no scope takes no key
    apikeys.check_access(Caller("u", "manager", "b1"), None, ("clients:read",))
    with pytest.raises(Forbidden):
        apikeys.check_access(Caller("u", "manager", "b1"), ("admin",), ("telephony:write",))


@pytest.fixture
def uow():
    with FakeUnitOfWork(Base) as unit:
        yield unit


def test_an_unknown_or_repeated_scope_is_refused(uow):
    for scopes in (["telephony:write", "everything"], ["deals:read", "deals:read"], []):
        with pytest.raises(ValidationError):
            apikeys.create_key(uow, ADMIN, {"name": "k", "scopes": scopes})


def test_a_revoked_key_is_refused_at_once_even_while_cached():
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    session = sessionmaker(engine)()
    key = apikeys.new_key()
    row = ApiKey(id=str(uuid.uuid4()), name="pbx", prefix=key[:10], key_hash=apikeys.key_hash(key), branch_id="b1",
                 scopes=["telephony:write"])
    session.add(row)
    session.commit()
    cache = listening_cache()
    keys = apikeys.KeyAuthenticator(cache)

    caller = keys.authenticate(session, key)
    assert caller.id == row.id and caller.scopes == {"telephony:write"} and cache.get(apikeys.cache_id(row.key_hash))
    row.revoked_at = row.created_at
    session.commit()
    cache.forget(apikeys.cache_id(row.key_hash))  # what the notification does on every gateway
    with pytest.raises(Unauthorized):
        keys.authenticate(session, key)
    for bad in ("crm_short", "crm_" + "A" * 43, "nope"):
        with pytest.raises(Unauthorized):
            keys.authenticate(session, bad)
