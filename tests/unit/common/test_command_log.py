"""WorkerDatabase.write: every write runs once per request id, and its result is kept with it."""

import uuid
from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import StaticPool

from clients.models import Base, CommandLog, RoundRobinCursor
from crm_common.db import IDEMPOTENCY_CONTEXT_KEY, MESSAGE_ID_CONTEXT_KEY, Database, WorkerDatabase


class Provider(Database):
    """The real provider's bookkeeping on one in-memory SQLite database, without a nameko container."""

    def __init__(self, engine):
        super().__init__(Base)
        self.session_factory = sessionmaker(engine, expire_on_commit=False)
        self.reader_factory = self.session_factory
        self.held: list[str] = []

    def after_commit(self, worker_ctx, key):
        self.held.append(key)


@pytest.fixture
def provider():
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    Base.metadata.create_all(engine)
    yield Provider(engine)
    engine.dispose()


def worker(provider, method="create_client", **data):
    ctx = SimpleNamespace(data=data, service_name="clients", entrypoint=SimpleNamespace(method_name=method))
    return WorkerDatabase(provider, ctx)


def counted(db, result):
    """A command that writes a row (so a second run would show) and returns ``result``."""
    calls = []

    def command():
        calls.append(1)
        db.session.add(RoundRobinCursor(branch_id=str(uuid.uuid4()), last_owner_id=None))
        return result

    return command, calls


def log_rows(provider):
    with provider.session_factory() as session:
        return session.scalars(select(CommandLog)).all()


def test_a_write_repeated_under_one_idempotency_key_runs_once_and_answers_the_first_result(provider):
    first_db = worker(provider, **{IDEMPOTENCY_CONTEXT_KEY: "user:key:print"})
    first, first_calls = counted(first_db, {"id": "c-1"})
    again_db = worker(provider, **{IDEMPOTENCY_CONTEXT_KEY: "user:key:print"})
    again, again_calls = counted(again_db, {"id": "c-2"})

    assert first_db.write(first) == {"id": "c-1"}
    assert again_db.write(again) == {"id": "c-1"}

    assert (len(first_calls), len(again_calls)) == (1, 0)
    [row] = log_rows(provider)
    assert row.key == "clients.create_client:user:key:print" and row.result == {"id": "c-1"}


def test_a_write_without_an_idempotency_key_is_kept_under_its_request_message_id(provider):
    db = worker(provider, **{MESSAGE_ID_CONTEXT_KEY: "corr-1"})
    command, _ = counted(db, {"id": "c-1"})
    db.write(command)

    redelivered = worker(provider, **{MESSAGE_ID_CONTEXT_KEY: "corr-1"})
    command, calls = counted(redelivered, {"id": "other"})
    assert redelivered.write(command) == {"id": "c-1"}
    assert calls == []
    assert [row.key for row in log_rows(provider)] == ["clients.create_client:rpc:corr-1"]


def test_the_idempotency_key_wins_over_the_message_id(provider):
    db = worker(provider, **{IDEMPOTENCY_CONTEXT_KEY: "user:key:print", MESSAGE_ID_CONTEXT_KEY: "corr-1"})
    db.write(counted(db, {})[0])
    assert [row.key for row in log_rows(provider)] == ["clients.create_client:user:key:print"]


def test_one_request_id_names_a_different_command_in_each_method(provider):
    for method in ("create_client", "log_interaction"):
        db = worker(provider, method=method, **{IDEMPOTENCY_CONTEXT_KEY: "user:key:print"})
        db.write(counted(db, {"method": method})[0])
    assert sorted(row.result["method"] for row in log_rows(provider)) == ["create_client", "log_interaction"]


def test_a_failed_command_leaves_neither_its_writes_nor_its_key_so_a_retry_runs_it(provider):
    db = worker(provider, **{IDEMPOTENCY_CONTEXT_KEY: "k"})

    def failing():
        db.session.add(RoundRobinCursor(branch_id="b-1", last_owner_id=None))
        db.session.flush()
        raise ValueError("refused")

    with pytest.raises(ValueError):
        db.write(failing)
    assert log_rows(provider) == []

    retry = worker(provider, **{IDEMPOTENCY_CONTEXT_KEY: "k"})
    command, calls = counted(retry, {"id": "c-1"})
    assert retry.write(command) == {"id": "c-1"} and calls == [1]


def test_a_command_that_rolled_back_and_tried_again_inside_its_write_is_still_kept_once(provider):
    """As a touchpoint does after losing a race for a contact: its rollback also undid the claim."""
    db = worker(provider, **{IDEMPOTENCY_CONTEXT_KEY: "k"})

    def retrying():
        db.session.add(RoundRobinCursor(branch_id="lost", last_owner_id=None))
        db.session.flush()
        db.rollback()
        db.session.add(RoundRobinCursor(branch_id="won", last_owner_id=None))
        return {"id": "won"}

    assert db.write(retrying) == {"id": "won"}
    [row] = log_rows(provider)
    assert row.result == {"id": "won"}
    with provider.session_factory() as session:
        assert session.scalars(select(RoundRobinCursor.branch_id)).all() == ["won"]


def test_a_write_outside_any_request_is_not_logged(provider):
    db = worker(provider)
    db.write(counted(db, {})[0])
    assert log_rows(provider) == []


def test_the_command_log_is_written_in_the_transaction_of_the_write(provider):
    db = worker(provider, **{IDEMPOTENCY_CONTEXT_KEY: "k"})
    db.write(counted(db, {"id": "c-1"})[0])
    with provider.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(RoundRobinCursor)) == 1
        assert session.scalar(select(func.count()).select_from(CommandLog)) == 1


def test_the_hold_after_commit_hook_runs_only_after_a_write_that_committed(provider):
    db = worker(provider, **{IDEMPOTENCY_CONTEXT_KEY: "k"})
    db.write(counted(db, {})[0])
    assert provider.held == ["clients.create_client:k"]

    replay = worker(provider, **{IDEMPOTENCY_CONTEXT_KEY: "k"})
    replay.write(counted(replay, {})[0])
    assert provider.held == ["clients.create_client:k"], "a replayed result committed nothing"


def test_with_the_command_log_switched_off_for_a_measurement_writes_are_not_logged(provider):
    provider.command_log = False
    db = worker(provider, **{IDEMPOTENCY_CONTEXT_KEY: "k"})
    db.write(counted(db, {})[0])
    again = worker(provider, **{IDEMPOTENCY_CONTEXT_KEY: "k"})
    command, calls = counted(again, {})
    again.write(command)
    assert log_rows(provider) == [] and calls == [1]
