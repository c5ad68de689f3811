"""Offboarding in the gateway: who may offboard whom, the request's transaction, and the saga's runner with
steps that answer, fail for a while, or fail for good (services replaced by functions)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest

from crm_common.caller import Caller
from crm_common.clock import utcnow
from crm_common.errors import Conflict, Forbidden, NotFound, Unavailable, ValidationError
from crm_common.testing.uow import FakeUnitOfWork
from gateway import offboarding
from gateway.models import Base, Offboarding, User

NORTH, SOUTH = str(uuid.uuid4()), str(uuid.uuid4())


def person(role="manager", branch=NORTH, active=True, **extra):
    return SimpleNamespace(id=str(uuid.uuid4()), role=role, branch_id=branch, active=active, **extra)


HEAD, ADMIN = Caller(str(uuid.uuid4()), "head", NORTH), Caller(str(uuid.uuid4()), "admin", None)


@pytest.mark.parametrize("caller, user, running, offboarded, error", [
    (Caller(str(uuid.uuid4()), "manager", NORTH), person(), False, False, Forbidden),
    (HEAD, person("head"), False, False, Forbidden),
    (ADMIN, person("admin", None), False, False, Conflict),
    (HEAD, person(), True, False, Conflict),
    (HEAD, person(), False, True, Conflict),
])
def test_a_user_that_may_not_be_offboarded_now_is_refused(caller, user, running, offboarded, error):
    with pytest.raises(error) as refused:
        offboarding.check_user(caller, user, running, offboarded)
    if error is Conflict:
        assert refused.value.fields["id"]


def test_nobody_offboards_themself_and_an_admin_offboards_a_head():
    me = person("head")
    with pytest.raises(Conflict):
        offboarding.check_user(Caller(me.id, "head", NORTH), SimpleNamespace(**{**vars(me), "role": "manager"}),
                               False, False)
    offboarding.check_user(ADMIN, person("head"), False, False)


@pytest.mark.parametrize("target, message", [
    (None, "No such user."),
    ("same", "Must be another user"),
    (person(branch=SOUTH), "same branch"),
    (person(active=False), "active"),
])
def test_the_records_go_only_to_another_active_user_of_the_branch(target, message):
    user = person()
    with pytest.raises(ValidationError) as refused:
        offboarding.check_target(user, user if target == "same" else target)
    assert message in refused.value.fields["to_user_id"][0]


@pytest.fixture
def uow():
    with FakeUnitOfWork(Base) as unit:
        yield unit


def add_user(uow, role="manager", branch=NORTH, active=True) -> SimpleNamespace:
    now = utcnow()
    user = User(id=str(uuid.uuid4()), email=f"{uuid.uuid4().hex[:8]}@t.ru", name="Анна", password_hash="x", role=role,
                branch_id=branch, active=active, token_version=1, on_shift=True, created_at=now, updated_at=now)
    uow.session.add(user)
    uow.commit()
    return SimpleNamespace(id=user.id)


def test_starting_deactivates_the_user_ends_their_tokens_and_records_a_running_saga(uow):
    leaving, heir = add_user(uow), add_user(uow)

    saga = uow.call(offboarding.start, HEAD, leaving.id, {"to_user_id": heir.id})

    stored = uow.read(lambda s: s.get(User, leaving.id))
    assert (stored.active, stored.token_version) == (False, 2)
    assert (saga["status"], saga["step"], saga["clients"], saga["to_user_id"]) == ("running", "clients", 0, heir.id)
    assert [(name, p["changed"]) for name, p in uow.take_events()] == [("user_updated", ["active"])]
    with pytest.raises(Conflict):
        uow.call(offboarding.start, HEAD, leaving.id, {"to_user_id": heir.id})


def test_a_refused_start_changes_nothing(uow):
    leaving, retired = add_user(uow), add_user(uow, active=False)
    stranger = add_user(uow, branch=SOUTH)

    for target in (retired.id, stranger.id, leaving.id):
        with pytest.raises(ValidationError):
            uow.call(offboarding.start, HEAD, leaving.id, {"to_user_id": target})
    with pytest.raises(NotFound):
        uow.call(offboarding.start, HEAD, stranger.id, {"to_user_id": leaving.id})

    assert uow.read(lambda s: s.get(User, leaving.id)).active is True
    assert uow.read(lambda s: s.query(Offboarding).count()) == 0 and uow.events == []


class Steps:
    """Services holding ``sizes[step]`` records, moved in batches as ``crm_common.transfers`` moves them (a short
    batch ends the step), after failing ``outages[step]`` times; ``broken`` fails for good."""

    def __init__(self, sizes: dict, outages: dict | None = None, broken: str | None = None):
        self.sizes, self.outages, self.broken = sizes, dict(outages or {}), broken
        self.moved = {step: 0 for step in sizes}
        self.calls: list[tuple[str, int]] = []

    def step(self, name):
        def call(transfer, limit):
            self.calls.append((name, limit))
            if self.outages.get(name):
                self.outages[name] -= 1
                raise Unavailable(f"service '{name}' did not answer")
            if name == self.broken:
                raise RuntimeError("a bug")
            batch = min(limit, self.sizes[name] - self.moved[name])
            self.moved[name] += batch
            return {"moved": self.moved[name], "done": batch < limit}
        return call

    def all(self):
        return {name: self.step(name) for name in self.sizes}


def started(uow) -> str:
    return uow.call(offboarding.start, HEAD, add_user(uow).id, {"to_user_id": add_user(uow).id})["id"]


def run(uow, steps, holder="gw-1"):
    return offboarding.run_due(uow, holder, steps.all(), batch=2, lease_s=60, retry_s=5)


def saga_of(uow, saga_id) -> Offboarding:
    return uow.read(lambda s: s.get(Offboarding, saga_id))


def test_the_saga_runs_every_step_in_batches_and_records_the_counts(uow):
    saga_id = started(uow)
    steps = Steps({"clients": 3, "deals": 4, "tasks": 0})

    assert run(uow, steps) is True
    assert run(uow, steps) is False, "nothing left to run"

    saga = saga_of(uow, saga_id)
    assert (saga.status, saga.step, saga.clients, saga.deals, saga.tasks) == ("done", None, 3, 4, 0)
    assert saga.finished_at is not None and saga.lease_owner is None
    assert [name for name, _ in steps.calls] == ["clients"] * 2 + ["deals"] * 3 + ["tasks"]


def test_a_step_whose_service_does_not_answer_waits_and_continues_where_it_stopped(uow):
    saga_id = started(uow)
    steps = Steps({"clients": 1, "deals": 1, "tasks": 1}, outages={"deals": 1})

    run(uow, steps)
    saga = saga_of(uow, saga_id)
    assert (saga.status, saga.step, saga.clients, saga.attempts) == ("running", "deals", 1, 1)
    assert "deals" in saga.error and saga.lease_owner is None
    assert run(uow, steps, holder="gw-2") is False, "not before the retry time"

    uow.session.get(Offboarding, saga_id).lease_until = utcnow() - timedelta(seconds=1)
    uow.commit()
    run(uow, steps, holder="gw-2")
    saga = saga_of(uow, saga_id)
    assert (saga.status, saga.clients, saga.deals, saga.tasks, saga.error) == ("done", 1, 1, 1, None)


def test_a_saga_held_by_a_live_gateway_is_left_to_it_and_taken_over_when_its_lease_runs_out(uow):
    saga_id = started(uow)
    with uow.transaction() as session:
        offboarding._claim(session, "gw-dead", lease_s=60)
    assert run(uow, Steps({"clients": 1, "deals": 1, "tasks": 1})) is False

    uow.session.get(Offboarding, saga_id).lease_until = utcnow() - timedelta(seconds=1)
    uow.commit()
    assert run(uow, Steps({"clients": 1, "deals": 1, "tasks": 1})) is True
    assert saga_of(uow, saga_id).status == "done"


def test_a_step_that_fails_for_a_reason_of_its_own_fails_the_saga(uow):
    saga_id = started(uow)

    run(uow, Steps({"clients": 1, "deals": 1, "tasks": 1}, broken="deals"))

    saga = saga_of(uow, saga_id)
    assert (saga.status, saga.step, saga.clients) == ("failed", "deals", 1)
    assert "a bug" in saga.error and saga.finished_at is not None
