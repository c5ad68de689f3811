"""A batch of the audit writer on SQLite: chained after the head, counted in the window, alarm and cap decided."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, insert, select
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import StaticPool

from crm_common.caller import Caller
from crm_common.errors import Forbidden
from gateway import auditlog
from gateway.auditrules import GENESIS
from gateway.models import AuditEntry, AuditHead, Base, ClientRead, OutboxMessage, User

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
LIMITS = auditlog.Limits(alert=3, cap=5)


@pytest.fixture
def sessions():
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    Base.metadata.create_all(engine)
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory.begin() as session:
        session.execute(insert(AuditHead).values(id=1, seq=0, hash=GENESIS))
        session.add(User(id="u1", email="m@x.test", name="Мария", password_hash="-", role="manager", branch_id="b1"))
    yield factory
    engine.dispose()


def entry(user="u1", action="read", ref_id="c1", count=1, branch="b1"):
    return {"id": str(uuid.uuid4()), "user_id": user, "branch_id": branch, "action": action,
            "ref_type": "client", "ref_id": ref_id, "count": count, "at": NOW, "request_id": "r", "address": None}


def write(sessions, entries, reads, now=NOW, limits=LIMITS):
    with sessions.begin() as session:
        return auditlog.flush(session, entries, reads, limits, now)


def test_batches_are_chained_one_after_another_and_the_check_passes(sessions):
    write(sessions, [entry(ref_id="c1"), entry(ref_id="c2")], [("u1", "c1"), ("u1", "c2")])
    write(sessions, [entry(action="list", ref_id=None, count=2)], [("u1", "c1"), ("u1", "c3")])
    with sessions() as session:
        assert [e.seq for e in session.scalars(select(AuditEntry).order_by(AuditEntry.seq))] == [1, 2, 3]
        assert auditlog.verify(session) == {"ok": True, "checked": 3, "first_bad": None}
        # a client read again counts once
        assert len(session.scalars(select(ClientRead)).all()) == 3


def test_a_client_read_again_within_a_minute_keeps_its_recorded_time_and_later_moves_to_the_new_read(sessions):
    write(sessions, [entry()], [("u1", "c1")])
    write(sessions, [entry()], [("u1", "c1")], now=NOW + timedelta(seconds=50))
    with sessions() as session:
        assert session.scalar(select(ClientRead.read_at)) == NOW
    write(sessions, [entry()], [("u1", "c1")], now=NOW + timedelta(minutes=2))
    with sessions() as session:
        assert session.scalar(select(ClientRead.read_at)) == NOW + timedelta(minutes=2)


def test_the_alarm_is_one_event_per_window_and_the_cap_blocks_until_old_reads_leave(sessions):
    early = NOW - timedelta(minutes=30)
    write(sessions, [entry()], [("u1", f"c{i}") for i in range(3)], now=early)  # 3: at the alarm, not past it
    first = write(sessions, [entry()], [("u1", "c3")])  # 4 distinct: past it
    again = write(sessions, [entry()], [("u1", "c4")])  # 5: at the cap
    with sessions() as session:
        events = session.scalars(select(OutboxMessage)).all()
    assert (first.alerts, again.alerts, len(events)) == (1, 0, 1)
    payload = events[0].payload
    assert (payload["user"], payload["count"], payload["threshold"], payload["branch_id"]) == (
        {"id": "u1", "name": "Мария", "role": "manager"}, 4, 3, "b1")
    # the first of the five reads to leave the window is one of the three made half an hour earlier
    assert again.blocked == {"u1": early + timedelta(hours=1)}
    later = write(sessions, [entry()], [("u2", "c1")], now=NOW + timedelta(minutes=31))
    assert later.blocked == {}
    # an hour after the first alarm it goes off again for new reads past the threshold
    hour_later = NOW + timedelta(minutes=61)
    assert write(sessions, [entry()], [("u1", f"d{i}") for i in range(4)], now=hour_later).alerts == 1
    with sessions() as session:
        assert auditlog.purge_reads(session, hour_later) == 5  # the reads of the first hour


def test_a_head_lists_their_branch_and_an_admin_everyone_newest_first(sessions):
    write(sessions, [entry(user="u1", ref_id="c1"), entry(user="u9", ref_id="c2", branch="b2"),
                     entry(user="u1", action="login", ref_id="u1")], [])
    with sessions() as session:
        query = {"cursor": None, "limit": 50}
        head = auditlog.list_entries(session, Caller("h1", "head", "b1"), query)
        admin = auditlog.list_entries(session, Caller("a1", "admin", None), {**query, "action": "read"})
        with pytest.raises(Forbidden):
            auditlog.list_entries(session, Caller("m1", "manager", "b1"), query)
    assert [e["action"] for e in head["items"]] == ["login", "read"]
    assert [e["ref_id"] for e in admin["items"]] == ["c2", "c1"]
