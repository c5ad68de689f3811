"""The people a telephony event is routed by: who has a number, the branch's directory, and that the gateway's
memory of them never outlives a change it has been told about."""

import uuid

import pytest

from crm_common.caller import Caller
from crm_common.testing.uow import FakeUnitOfWork
from gateway import identity, telephony
from gateway.apikeys import KeyCaller
from gateway.models import Base, Branch, User
from gateway.usercache import UserCache

ADMIN = Caller(str(uuid.uuid4()), "admin", None)


@pytest.fixture
def uow():
    with FakeUnitOfWork(Base) as unit:
        yield unit


def add_user(uow, branch_id, role="manager", active=True, on_shift=True, phone=None, extension=None, user_id=None):
    user = User(id=user_id or str(uuid.uuid4()), email=f"{uuid.uuid4().hex}@x.ru", name="U", password_hash="-",
                role=role, branch_id=branch_id, active=active, on_shift=on_shift, phone=phone, extension=extension)
    with uow.transaction():
        uow.session.add(user)
    return user.id


def listening_cache():
    cache = UserCache()
    cache.listening = True
    return cache


def incoming(to="100", **extra):
    return {"call_id": "c1", "event": "ringing", "direction": "in", "from": "+79161234567", "to": to, **extra}


def test_the_branch_directory_lists_its_active_users_and_the_managers_on_shift_for_round_robin(uow):
    north, south = str(uuid.uuid4()), str(uuid.uuid4())
    head = add_user(uow, north, role="head", extension="200")
    on = add_user(uow, north, extension="201")
    off = add_user(uow, north, on_shift=False, phone="+79160000002")
    add_user(uow, north, active=False, extension="203")
    add_user(uow, south, extension="201")
    key = KeyCaller(str(uuid.uuid4()), "head", north)

    found = telephony.directory(uow.session, key, incoming(), "RU")

    assert found["branch_id"] == north and found["machine"] is True and found["user_id"] is None
    assert set(found["users"]) == {head, on, off} and found["managers"] == [on]
    assert found["users"][off] == {"role": "manager", "active": True, "on_shift": False, "phone": "+79160000002",
                                   "extension": None}


def test_with_no_manager_on_shift_a_new_client_may_go_to_any_manager_of_the_branch(uow):
    north = str(uuid.uuid4())
    managers = sorted(add_user(uow, north, on_shift=False) for _ in range(2))
    assert telephony.directory(uow.session, KeyCaller("k", "head", north), incoming(), "RU")["managers"] == managers


def test_without_a_branch_the_call_goes_to_the_branch_of_the_user_whose_number_it_reaches(uow):
    north, south = str(uuid.uuid4()), str(uuid.uuid4())
    first, second = sorted(str(uuid.uuid4()) for _ in range(2))
    add_user(uow, north, phone="+79160000001", extension="300", user_id=second)
    add_user(uow, south, extension="300", user_id=first)
    add_user(uow, str(uuid.uuid4()), extension="555", active=False)

    assert telephony.directory(uow.session, ADMIN, incoming(to="8 916 000-00-01"), "RU")["branch_id"] == north
    assert telephony.directory(uow.session, ADMIN, incoming(to="300"), "RU")["branch_id"] == south  # first by id
    assert telephony.directory(uow.session, ADMIN, incoming(to="555"), "RU")["branch_id"] is None  # inactive


def test_an_outgoing_call_names_the_user_who_places_it_and_a_named_user_gives_the_branch(uow):
    north = str(uuid.uuid4())
    caller_id = add_user(uow, north, extension="201")
    outgoing = {"call_id": "c2", "event": "ringing", "direction": "out", "from": "201", "to": "+79161234567"}
    found = telephony.directory(uow.session, ADMIN, outgoing, "RU")
    assert found["branch_id"] == north and found["user_id"] == caller_id

    named = telephony.directory(uow.session, ADMIN, incoming(to="999", user_id=caller_id), "RU")
    assert named["branch_id"] == north and caller_id in named["users"]
    nobody = telephony.directory(uow.session, ADMIN, incoming(to="999", user_id=str(uuid.uuid4())), "RU")
    assert nobody == {"branch_id": None, "users": {}, "managers": [], "user_id": None, "machine": False}


def test_the_people_are_read_once_while_the_cache_listens_and_again_after_a_change_is_announced(uow):
    north = str(uuid.uuid4())
    add_user(uow, north, extension="201")
    cache = listening_cache()
    key = KeyCaller("k", "head", north)

    first = telephony.directory(uow.session, key, incoming(), "RU", cache)
    later = add_user(uow, north, extension="202")  # written behind the cache's back: not yet seen
    assert telephony.directory(uow.session, key, incoming(), "RU", cache)["users"] == first["users"]

    cache.forget(telephony.PEOPLE)  # what the notification does on every gateway
    assert later in telephony.directory(uow.session, key, incoming(), "RU", cache)["users"]


def test_a_change_announced_while_the_people_were_being_read_keeps_that_read_out_of_memory(uow):
    north = str(uuid.uuid4())
    add_user(uow, north)
    cache = listening_cache()
    before_read = cache.generation(telephony.PEOPLE)
    people = telephony.every_active_user(uow.session)
    cache.forget(telephony.PEOPLE)
    cache.put(people, before_read)
    assert cache.get(telephony.PEOPLE) is None


def test_without_a_listening_cache_every_event_reads_the_users(uow):
    north = str(uuid.uuid4())
    cache = UserCache()  # SQLite, or the listener is down
    key = KeyCaller("k", "head", north)
    assert telephony.directory(uow.session, key, incoming(), "RU", cache)["users"] == {}
    added = add_user(uow, north)
    assert added in telephony.directory(uow.session, key, incoming(), "RU", cache)["users"]


@pytest.mark.parametrize("change", [{"on_shift": False}, {"extension": "299"}, {"phone": "+79160000009"},
                                    {"active": False}, {"role": "head"}])
def test_each_change_the_directory_shows_is_announced_and_others_are_not(uow, monkeypatch, change):
    announced = []
    monkeypatch.setattr(identity, "notify_people_changed", lambda session: announced.append(True))
    branch = Branch(id=str(uuid.uuid4()), name="North", code=uuid.uuid4().hex[:8])
    with uow.transaction():
        uow.session.add(branch)
    user_id = add_user(uow, branch.id, extension="201")

    with uow.transaction():
        identity.update_user(uow, ADMIN, user_id, {"name": "Another name"})
    assert announced == []
    with uow.transaction():
        identity.update_user(uow, ADMIN, user_id, change)
    assert announced == [True]


def test_a_new_user_is_announced(uow, monkeypatch):
    announced = []
    monkeypatch.setattr(identity, "notify_people_changed", lambda session: announced.append(True))
    monkeypatch.setattr(identity, "hash_password", lambda password: "hashed")
    branch = Branch(id=str(uuid.uuid4()), name="North", code=uuid.uuid4().hex[:8])
    with uow.transaction():
        uow.session.add(branch)
    with uow.transaction():
        identity.create_user(uow, ADMIN, {"email": "anna@example.ru", "name": "Анна", "password": "anna-pass-1",
                                          "role": "manager", "branch_id": branch.id})
    assert announced == [True]
