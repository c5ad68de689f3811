"""The audit chain on PostgreSQL with several writers at once, as several gateway replicas write it."""

import threading
import uuid

from sqlalchemy import create_engine, delete, func, select
from sqlalchemy.orm import sessionmaker

from crm_common.clock import utcnow
from gateway import auditlog
from gateway.models import AuditEntry, ClientRead

WRITERS, BATCHES, PER_BATCH = 4, 15, 5
LIMITS = auditlog.Limits(alert=0, cap=1000)


def entry(user: str) -> dict:
    return {"id": str(uuid.uuid4()), "user_id": user, "branch_id": None, "action": "read", "ref_type": "client",
            "ref_id": str(uuid.uuid4()), "count": 1, "at": utcnow(), "request_id": None, "address": None}


def test_replicas_writing_at_once_take_turns_on_the_head_and_the_chain_stays_whole(migrated_databases):
    engine = create_engine(migrated_databases["gateway"], pool_size=WRITERS)
    sessions = sessionmaker(engine)
    with sessions() as session:
        before = session.scalar(select(func.count()).select_from(AuditEntry))
    tag, errors = str(uuid.uuid4())[:8], []
    start = threading.Barrier(WRITERS)

    def replica(number: int):
        # each replica serves its own users: nothing but the chain's head makes them wait for each other
        user = f"{tag}-{number}"
        try:
            start.wait()
            for _ in range(BATCHES):
                batch = [entry(user) for _ in range(PER_BATCH)]
                with sessions.begin() as session:
                    auditlog.flush(session, batch, [(user, f"c{i}") for i in range(PER_BATCH * 2)], LIMITS, utcnow())
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=replica, args=(number,)) for number in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    with sessions() as session:
        seqs = session.scalars(select(AuditEntry.seq).where(AuditEntry.user_id.like(f"{tag}-%"))).all()
        assert len(seqs) == WRITERS * BATCHES * PER_BATCH
        assert auditlog.verify(session) == {"ok": True, "checked": before + len(seqs), "first_bad": None}
        mine = ClientRead.user_id.like(f"{tag}-%")
        assert session.scalar(select(func.count()).select_from(ClientRead).where(mine)) == WRITERS * PER_BATCH * 2
        session.execute(delete(ClientRead).where(mine))
        session.commit()
    engine.dispose()
