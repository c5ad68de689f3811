"""The audit log's rules: the hash chain finds edited, deleted and cut-off entries; the bulk-read window."""

from datetime import UTC, datetime, timedelta, timezone

from gateway.auditrules import (
    GENESIS,
    WINDOW,
    ChainCheck,
    alert_due,
    capped,
    chain,
    entry_hash,
    released_at,
)

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def entries(n: int) -> list[dict]:
    return [{"id": f"e{i}", "user_id": "u1", "branch_id": "b1", "action": "read", "ref_type": "client",
             "ref_id": f"c{i}", "count": 1, "at": NOW + timedelta(seconds=i), "request_id": f"r{i}", "address": None}
            for i in range(1, n + 1)]


def check(rows: list[dict], head: tuple[int, str]):
    checker = ChainCheck()
    for row in rows:
        if not checker.feed(row):
            break
    return checker.finish(*head), checker.checked


def test_entries_are_numbered_after_the_head_and_each_links_to_the_one_before():
    first = chain(entries(2), 0, GENESIS)
    more = chain(entries(3)[2:], first[-1]["seq"], first[-1]["hash"])
    rows = first + more
    assert [r["seq"] for r in rows] == [1, 2, 3]
    assert rows[0]["prev_hash"] == GENESIS and rows[1]["prev_hash"] == rows[0]["hash"]
    assert rows[2]["prev_hash"] == rows[1]["hash"]
    assert check(rows, (3, rows[-1]["hash"])) == (None, 3)


def test_the_hash_covers_every_field_and_the_previous_hash():
    row = chain(entries(1), 0, GENESIS)[0]
    for name, other in (("user_id", "u2"), ("action", "list"), ("ref_id", "c9"), ("count", 2), ("seq", 5),
                        ("at", NOW + timedelta(microseconds=1)), ("address", "10.0.0.1")):
        assert entry_hash({**row, name: other}, row["prev_hash"]) != row["hash"], name
    assert entry_hash(row, "f" * 64) != row["hash"]


def test_the_same_moment_in_another_offset_hashes_the_same():
    row = chain(entries(1), 0, GENESIS)[0]
    moscow = row["at"].astimezone(timezone(timedelta(hours=3)))
    assert entry_hash({**row, "at": moscow}, GENESIS) == row["hash"]
    assert entry_hash({**row, "at": row["at"].replace(tzinfo=None)}, GENESIS) == row["hash"]  # SQLite's naive UTC


def test_an_edited_entry_is_found_by_its_hash():
    rows = chain(entries(4), 0, GENESIS)
    rows[1] = {**rows[1], "ref_id": "someone-else"}
    flaw, checked = check(rows, (4, rows[-1]["hash"]))
    assert (flaw.id, flaw.reason, checked) == ("e2", "hash_mismatch", 2)


def test_an_entry_edited_with_its_hash_recomputed_breaks_the_next_link():
    rows = chain(entries(3), 0, GENESIS)
    edited = {**rows[0], "count": 7}
    rows[0] = {**edited, "hash": entry_hash(edited, GENESIS)}
    flaw, _ = check(rows, (3, rows[-1]["hash"]))
    assert (flaw.id, flaw.reason) == ("e2", "broken_link")


def test_a_deleted_entry_is_found_at_the_gap():
    rows = chain(entries(4), 0, GENESIS)
    del rows[1]
    flaw, _ = check(rows, (4, rows[-1]["hash"]))
    assert (flaw.id, flaw.reason) == ("e3", "sequence_gap")


def test_entries_cut_off_the_end_are_found_by_the_head():
    rows = chain(entries(4), 0, GENESIS)
    flaw, checked = check(rows[:2], (4, rows[-1]["hash"]))
    assert (flaw.id, flaw.reason, checked) == ("e2", "head_mismatch", 2)
    assert check([], (0, GENESIS)) == (None, 0)


def test_the_alarm_goes_off_past_the_threshold_and_once_per_window():
    assert not alert_due(200, 200, None, NOW)
    assert alert_due(201, 200, None, NOW)
    assert not alert_due(500, 200, NOW - timedelta(minutes=59), NOW)
    assert alert_due(500, 200, NOW - WINDOW, NOW)
    assert not alert_due(10_000, 0, None, NOW)  # 0: off


def test_reads_stop_at_the_cap_and_resume_when_enough_old_reads_left_the_window():
    assert not capped(499, 500) and capped(500, 500) and capped(520, 500) and not capped(10_000, 0)
    reads = [NOW - timedelta(minutes=50) + timedelta(seconds=i) for i in range(5)]
    assert released_at(reads, 6) is None
    # five reads and a cap of three: the count is under the cap once the three oldest have left
    assert released_at(reads, 3) == reads[2] + WINDOW
    assert released_at(reads, 5) == reads[0] + WINDOW
