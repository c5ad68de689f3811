"""Who is calling, and what they may see and where their records go."""

import pytest
from sqlalchemy import String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.pool import StaticPool

from crm_common.caller import Caller
from crm_common.errors import BadRequest, Forbidden, ValidationError

ADMIN = Caller("admin-1", "admin", None)
HEAD = Caller("head-1", "head", "north")
MANAGER = Caller("manager-1", "manager", "north")


@pytest.mark.parametrize(
    "data",
    [
        {"id": "u1", "role": "admin", "branch_id": None},
        {"id": "u1", "role": "admin"},
        {"id": "u1", "role": "head", "branch_id": "north"},
        {"id": "u1", "role": "manager", "branch_id": "north"},
    ],
)
def test_a_caller_is_loaded_from_what_the_gateway_sends(data):
    caller = Caller.load(data)

    assert caller.dump() == {"id": "u1", "role": data["role"], "branch_id": data.get("branch_id")}


def test_a_caller_object_is_taken_as_it_is():
    assert Caller.load(HEAD) is HEAD


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(None, id="nothing"),
        pytest.param("admin", id="a-string"),
        pytest.param(42, id="a-number"),
        pytest.param([], id="a-list"),
        pytest.param({}, id="empty"),
        pytest.param({"id": "u1"}, id="no-role"),
        pytest.param({"role": "admin"}, id="no-id"),
        pytest.param({"id": None, "role": "admin"}, id="null-id"),
        pytest.param({"id": "", "role": "admin"}, id="empty-id"),
        pytest.param({"id": "u1", "role": "boss", "branch_id": "north"}, id="unknown-role"),
    ],
)
def test_a_missing_or_malformed_caller_is_a_bad_request(data):
    with pytest.raises(BadRequest):
        Caller.load(data)


@pytest.mark.parametrize("role", ["head", "manager"])
def test_a_head_or_manager_without_a_branch_is_forbidden(role):
    with pytest.raises(Forbidden):
        Caller.load({"id": "u1", "role": role, "branch_id": None})


@pytest.mark.parametrize(
    ("caller", "branch_id", "owner_id", "visible"),
    [
        (ADMIN, "north", "anyone", True),
        (ADMIN, "south", None, True),
        (HEAD, "north", "manager-1", True),
        (HEAD, "north", None, True),
        (HEAD, "south", "head-1", False),
        (MANAGER, "north", "manager-1", True),
        (MANAGER, "north", "manager-2", False),
        (MANAGER, "north", None, False),
        (MANAGER, "south", "manager-1", False),
    ],
)
def test_who_can_see_a_record(caller, branch_id, owner_id, visible):
    assert caller.can_see(branch_id, owner_id) is visible


class Base(DeclarativeBase):
    pass


class Record(Base):
    __tablename__ = "records"

    id: Mapped[str] = mapped_column(String(8), primary_key=True)
    branch_id: Mapped[str] = mapped_column(String(8))
    owner_id: Mapped[str | None] = mapped_column(String(16))


RECORDS = {
    "n-own": ("north", "manager-1"),
    "n-other": ("north", "manager-2"),
    "n-head": ("north", "head-1"),
    "n-none": ("north", None),
    "s-own": ("south", "manager-1"),
    "s-other": ("south", "manager-9"),
}


@pytest.fixture(scope="module")
def session():
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add_all(Record(id=i, branch_id=b, owner_id=o) for i, (b, o) in RECORDS.items())
        session.commit()
        yield session
    engine.dispose()


@pytest.mark.parametrize(
    ("caller", "expected"),
    [
        (ADMIN, set(RECORDS)),
        (HEAD, {"n-own", "n-other", "n-head", "n-none"}),
        (MANAGER, {"n-own"}),
        (Caller("manager-1", "manager", None), set()),
        (Caller("head-1", "head", None), set()),
    ],
)
def test_the_visibility_condition_selects_exactly_what_the_caller_may_see(session, caller, expected):
    assert set(session.scalars(select(Record.id).where(caller.visibility(Record)))) == expected


@pytest.mark.parametrize("caller", [ADMIN, HEAD, MANAGER, Caller("manager-2", "manager", "south")])
def test_the_visibility_condition_agrees_with_can_see(session, caller):
    allowed = {record_id for record_id, (branch, owner) in RECORDS.items() if caller.can_see(branch, owner)}

    assert set(session.scalars(select(Record.id).where(caller.visibility(Record)))) == allowed


@pytest.mark.parametrize(
    ("caller", "requested", "branch"),
    [
        (ADMIN, "south", "south"),
        (Caller("admin-2", "admin", "north"), None, "north"),
        (Caller("admin-2", "admin", "north"), "south", "south"),
        (HEAD, None, "north"),
        (HEAD, "north", "north"),
        (MANAGER, None, "north"),
    ],
)
def test_a_new_record_goes_to_the_callers_branch_or_the_one_an_admin_names(caller, requested, branch):
    assert caller.target_branch(requested) == branch


def test_an_admin_without_a_branch_must_name_one():
    with pytest.raises(ValidationError) as error:
        ADMIN.target_branch(None)

    assert "branch_id" in error.value.fields


@pytest.mark.parametrize("caller", [HEAD, MANAGER])
def test_only_an_admin_may_act_in_another_branch(caller):
    with pytest.raises(Forbidden):
        caller.target_branch("south")
