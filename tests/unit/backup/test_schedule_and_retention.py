"""The schedule's ticks, staleness, retention and off-site targets: pure rules."""

from datetime import UTC, datetime, timedelta

import pytest

from backup.domain import (
    Kept,
    Retention,
    archive_for,
    archive_name,
    backups_to_keep,
    check_schedule,
    due_tick,
    freshness,
    mismatches,
    next_tick,
    parse_targets,
    period,
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_the_due_tick_of_a_daily_schedule_is_today_at_three_once_three_has_passed():
    assert due_tick("0 3 * * *", at("2026-05-10 03:00:00")) == at("2026-05-10 03:00:00")
    assert due_tick("0 3 * * *", at("2026-05-10 14:30:00")) == at("2026-05-10 03:00:00")
    assert due_tick("0 3 * * *", at("2026-05-10 02:59:59")) == at("2026-05-09 03:00:00")


def test_the_next_tick_and_the_period_follow_the_expression():
    assert next_tick("0 3 * * *", at("2026-05-10 03:00:00")) == at("2026-05-11 03:00:00")
    assert period("0 3 * * *", at("2026-05-10 12:00:00")) == timedelta(days=1)
    assert period("*/15 * * * *", at("2026-05-10 12:07:00")) == timedelta(minutes=15)
    assert period("* * * * * */3", at("2026-05-10 12:07:01")) == timedelta(seconds=3)


def test_a_schedule_that_is_not_a_cron_expression_is_refused():
    with pytest.raises(ValueError, match="CRM_BACKUP_SCHEDULE"):
        check_schedule("every night")
    with pytest.raises(ValueError):
        check_schedule("")
    assert check_schedule(" 0 3 * * * ") == "0 3 * * *"


def test_a_verified_backup_turns_stale_after_two_schedule_periods():
    verified = at("2026-05-10 03:00:00")

    fresh = freshness(verified, at("2026-01-01 00:00:00"), "0 3 * * *", at("2026-05-11 12:00:00"))
    stale = freshness(verified, at("2026-01-01 00:00:00"), "0 3 * * *", at("2026-05-12 03:00:01"))

    assert not fresh.stale and fresh.age_s == 33 * 3600
    assert stale.stale and stale.stale_after == at("2026-05-12 03:00:00")


def test_a_new_installation_is_not_stale_until_two_periods_after_its_first_start():
    first = at("2026-05-10 10:00:00")

    assert not freshness(None, first, "0 3 * * *", at("2026-05-12 09:59:00")).stale
    late = freshness(None, first, "0 3 * * *", at("2026-05-12 10:01:00"))
    assert late.stale and late.age_s is None


def daily(days: int, start="2026-01-01 03:00:00", verified=True) -> list[Kept]:
    first = at(start)
    return [Kept(f"b{i:03d}", first + timedelta(days=i), verified) for i in range(days)]


def test_keep_last_alone_keeps_the_newest_backups():
    backups = daily(10)

    kept = backups_to_keep(backups, Retention(keep_last=3, keep_daily=0, keep_weekly=0, keep_monthly=0))

    assert kept == {"b009", "b008", "b007"}


def test_daily_rules_keep_the_newest_backup_of_each_day():
    first = at("2026-03-01 01:00:00")
    backups = [Kept(f"b{i}", first + timedelta(hours=6 * i), True) for i in range(12)]  # four a day, three days

    kept = backups_to_keep(backups, Retention(keep_last=0, keep_daily=2, keep_weekly=0, keep_monthly=0))

    assert kept == {"b11", "b7"}


def test_grandfather_father_son_keeps_what_any_rule_keeps():
    backups = daily(120)  # 2026-01-01 .. 2026-04-30

    kept = backups_to_keep(backups, Retention(keep_last=2, keep_daily=3, keep_weekly=2, keep_monthly=3))

    newest_days = {"b119", "b118", "b117"}
    # ISO weeks: the newest backup of this week (Thursday 30 April) and of the week before (Sunday 26 April)
    weeks = {"b119", "b115"}
    months = {"b119", "b089", "b058"}  # 30 April, 31 March, 28 February
    assert kept == newest_days | weeks | months


def test_the_newest_verified_backup_is_never_pruned_even_if_no_rule_keeps_it():
    backups = daily(5, verified=False)
    backups[1] = Kept("b001", backups[1].started_at, True)

    kept = backups_to_keep(backups, Retention(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0))

    assert kept == {"b004", "b001"}


def test_every_rule_at_zero_keeps_only_the_newest_verified_backup():
    assert backups_to_keep(daily(4), Retention(0, 0, 0, 0)) == {"b003"}


def test_offsite_targets_are_split_on_commas_but_rclone_connection_strings_keep_theirs():
    raw = "/mnt/usb/crm, offsite:crm/backups,:sftp,host=10.0.0.5,port=2222,user=crm:backups , ./local"

    assert parse_targets(raw) == ["/mnt/usb/crm", "offsite:crm/backups", ":sftp,host=10.0.0.5,port=2222,user=crm:backups",
                                  "./local"]
    assert parse_targets("") == []


def test_an_archive_is_found_by_its_backup_id_among_the_names_on_a_target():
    backup_id = "2b1f0c4e-8d7a-4f61-9c3e-5a6b7c8d9e0f"
    name = archive_name(backup_id, at("2026-05-10 03:00:00"))

    assert name == f"crm-backup-20260510T030000Z-{backup_id}.crmbak"
    assert archive_for(["notes.txt", name, "crm-backup-x.crmbak"], backup_id) == name
    assert archive_for([name], "00000000-0000-0000-0000-000000000000") is None


def test_a_restore_matches_its_capture_only_when_every_table_has_the_same_rows_and_content():
    captured = {"clients": {"tables": {"clients": 3, "outbox": 1}, "checksums": {"clients": "10", "outbox": "7"}}}
    same = {"clients": {"tables": {"clients": 3, "outbox": 1}, "checksums": {"clients": "10", "outbox": "7"}}}
    changed = {"clients": {"tables": {"clients": 3, "outbox": 0}, "checksums": {"clients": "11", "outbox": "0"}}}

    assert mismatches(captured, same) == []
    found = mismatches(captured, changed)
    assert [(m["table"], m["problem"]) for m in found] == [("clients", "content checksum"), ("outbox", "row count")]
    assert mismatches(captured, {})[0]["problem"] == "not restored"


def test_across_database_versions_only_row_counts_are_compared():
    captured = {"deals": {"tables": {"deals": 3}, "checksums": {"deals": "10"}}}
    other_hash = {"deals": {"tables": {"deals": 3}, "checksums": {"deals": "99"}}}

    assert mismatches(captured, other_hash, compare_checksums=set()) == []
    assert mismatches(captured, other_hash, compare_checksums={"deals"})[0]["problem"] == "content checksum"
