"""The gateway's audit writer on SQLite: journal, batch, commit; a failed batch kept; a dead gateway's journal replayed."""

import os

import pytest
from eventlet.event import Event
from sqlalchemy import create_engine, insert, select
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import StaticPool

from crm_common.caller import Caller
from crm_common.clock import utcnow
from crm_common.config import Settings
from gateway import auditlog
from gateway.audit import Audit, Batch
from gateway.auditjournal import Journal
from gateway.auditrules import GENESIS
from gateway.models import AuditEntry, AuditHead, Base

MANAGER = Caller("u1", "manager", "b1")


class FakeDatabase:
    def __init__(self, engine):
        self.session_factory = self.reader_factory = sessionmaker(engine, expire_on_commit=False)

    def wake_relay(self):
        pass


@pytest.fixture
def db():
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    Base.metadata.create_all(engine)
    database = FakeDatabase(engine)
    with database.session_factory.begin() as session:
        session.execute(insert(AuditHead).values(id=1, seq=0, hash=GENESIS))
    yield database
    engine.dispose()


@pytest.fixture
def audit(db, tmp_path):
    unit = Audit()
    unit.settings, unit.on = Settings(), True
    unit.limits = auditlog.Limits(alert=0, cap=5)
    unit.blocked, unit.current, unit._signal, unit._db = {}, Batch(), Event(), db
    unit.journal = Journal(tmp_path)
    return unit


def logged(db) -> list[str]:
    with db.reader_factory() as session:
        return list(session.scalars(select(AuditEntry.ref_id).order_by(AuditEntry.seq)))


def test_an_entry_is_journaled_at_once_and_its_segment_goes_when_the_batch_is_committed(audit, db, tmp_path):
    audit.record(MANAGER, "read", "client", "c1", clients=["c1"])
    assert logged(db) == [] and os.path.getsize(audit.journal.segment.path) > 0

    assert audit._write(audit._take()) is True

    assert logged(db) == ["c1"]
    assert [p.name for p in tmp_path.iterdir()] == [audit.journal.segment.path.name]


def test_a_batch_the_database_refused_is_written_with_the_next_one(audit, db, tmp_path):
    audit.record(MANAGER, "read", "client", "c1", clients=["c1"])
    working = db.session_factory
    db.session_factory = lambda: (_ for _ in ()).throw(ConnectionError("database down"))
    assert audit._write(audit._take()) is False
    audit.record(MANAGER, "read", "client", "c2", clients=["c2"])
    assert len(list(tmp_path.iterdir())) == 2  # the failed batch's segment is kept, beside the open one

    db.session_factory = working
    assert audit._write(audit._take()) is True
    assert logged(db) == ["c1", "c2"]
    assert len(list(tmp_path.iterdir())) == 1


def test_the_journal_of_a_gateway_that_died_is_replayed_without_what_it_had_committed(audit, db, tmp_path):
    dead = Journal(tmp_path)
    committed = {"id": "e1", "user_id": "u9", "branch_id": "b1", "action": "read", "ref_type": "client",
                 "ref_id": "c1", "count": 1, "at": utcnow(), "request_id": None, "address": None}
    pending = {**committed, "id": "e2", "ref_id": "c2"}
    dead.append(committed, [("u9", "c1")])
    dead.append(pending, [("u9", "c2")])
    with db.session_factory.begin() as session:
        auditlog.flush(session, [committed], [("u9", "c1")], audit.limits, utcnow())
    os.close(dead.segment.fd)  # the process dies

    audit._replay_orphans()

    assert logged(db) == ["c1", "c2"]
    assert not dead.segment.path.exists()
    with db.reader_factory() as session:
        assert auditlog.verify(session)["ok"] is True
