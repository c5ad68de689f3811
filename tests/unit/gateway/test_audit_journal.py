"""The audit journal: lines survive the process, a dead process's segment is replayed, a live one's is not."""

import os
from datetime import UTC, datetime

from gateway.auditjournal import SUFFIX, Journal

AT = datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=UTC)


def entry(n: int) -> dict:
    return {"id": f"e{n}", "user_id": "u1", "branch_id": "b1", "action": "list", "ref_type": "client",
            "ref_id": None, "count": 2, "at": AT, "request_id": "r", "address": "10.0.0.1"}


def test_a_segment_left_by_a_process_that_died_is_replayed_with_its_reads(tmp_path):
    dead = Journal(tmp_path)
    dead.append(entry(1), [("u1", "c1"), ("u1", "c2")])
    dead.append(entry(2), [])
    os.close(dead.segment.fd)  # what the kernel does when the process dies: the lock goes, the lines stay

    alive = Journal(tmp_path)
    found = list(alive.orphans())

    assert len(found) == 1
    segment, records = found[0]
    assert records == [(entry(1), [("u1", "c1"), ("u1", "c2")]), (entry(2), [])]
    segment.release(delete=True)
    assert list(alive.orphans()) == []
    assert [p.name for p in tmp_path.iterdir()] == [alive.segment.path.name]


def test_the_segments_of_a_live_process_and_of_a_batch_being_written_are_left_alone(tmp_path):
    other = Journal(tmp_path)
    other.append(entry(1), [])
    writing = other.rotate()  # the batch's segment, locked until it is committed
    other.append(entry(2), [])

    assert list(Journal(tmp_path).orphans()) == []
    writing.release(delete=True)
    assert not writing.path.exists()


def test_a_line_cut_short_by_the_crash_is_skipped(tmp_path):
    dead = Journal(tmp_path)
    dead.append(entry(1), [("u1", "c1")])
    os.write(dead.segment.fd, b'{"entry": {"id": "e2", "at"')
    os.close(dead.segment.fd)

    (segment, records), = Journal(tmp_path).orphans()
    assert [e["id"] for e, _ in records] == ["e1"]
    segment.release(delete=True)


def test_a_stopping_process_deletes_an_empty_segment_and_keeps_one_with_lines(tmp_path):
    empty, full = Journal(tmp_path), Journal(tmp_path)
    full.append(entry(1), [])
    empty.close()
    full.close()
    assert [p.suffix for p in tmp_path.iterdir()] == [SUFFIX]
    assert not empty.segment.path.exists() and full.segment.path.exists()
