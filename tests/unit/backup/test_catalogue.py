"""Catalogue use cases on the fake unit of work: one running backup, one backup per tick, verification
results, staleness, what retention removes; and the keys a development machine makes for itself."""

from datetime import UTC, datetime, timedelta

import pytest

from backup import commands
from backup.domain import Retention
from backup.exceptions import BackupRunning, NotVerifiable
from backup.keys import load_keyring
from backup.models import Backup
from crm_common.config import ConfigError, Settings

TICK = datetime(2026, 5, 10, 3, 0, tzinfo=UTC)
MANIFEST = {"services": {"clients": {"engine": "sqlite", "size_bytes": 10, "sha256": "ab" * 32,
                                     "tables": {"clients": 2}, "checksums": {"clients": "99"}}}}


def finished(uow, trigger="manual", tick=None) -> str:
    backup_id = uow.call(lambda u: commands.start_backup(u, trigger, tick=tick).id)
    uow.call(lambda u: commands.record_capture(u, backup_id, f"{backup_id}.crmbak", 100, "cd" * 32, "k1", MANIFEST))
    uow.call(lambda u: commands.finish_backup(u, backup_id))
    return backup_id


def test_a_second_backup_is_refused_while_one_runs(uow):
    running = uow.call(lambda u: commands.start_backup(u, "manual").id)

    with pytest.raises(BackupRunning) as error:
        uow.call(lambda u: commands.start_backup(u, "manual"))

    assert error.value.details == {"running_id": running}


def test_a_scheduled_tick_gets_one_backup_however_often_it_is_asked(uow):
    first = finished(uow, "schedule", TICK)

    assert uow.call(lambda u: commands.start_backup(u, "schedule", tick=TICK)) is None
    assert uow.read(lambda s: s.query(Backup).count()) == 1
    assert uow.read(lambda s: s.get(Backup, first).tick) == TICK


def test_a_backup_emits_started_then_completed_with_its_copies(uow):
    backup_id = uow.call(lambda u: commands.start_backup(u, "manual").id)
    uow.call(lambda u: commands.record_capture(u, backup_id, "a.crmbak", 100, "cd" * 32, "k1", MANIFEST))
    uow.call(lambda u: commands.record_copy(u, backup_id, "/mnt/usb", None))
    uow.call(lambda u: commands.record_copy(u, backup_id, "offsite:crm", "connection refused"))
    uow.call(lambda u: commands.finish_backup(u, backup_id))

    assert uow.event_types() == ["backup_started", "backup_failed", "backup_completed"]
    failed, completed = uow.events[1][1], uow.events[2][1]
    assert failed["stage"] == "copy" and failed["target"] == "offsite:crm" and "connection refused" in failed["error"]
    assert completed["copies"] == [{"target": "/mnt/usb", "status": "done"}, {"target": "offsite:crm", "status": "failed"}]
    shown = uow.read(lambda s: commands.dump_backup(s, s.get(Backup, backup_id)))
    assert shown["status"] == "done" and shown["services"]["clients"]["tables"] == {"clients": 2}
    assert shown["services"]["clients"].keys() == {"size_bytes", "sha256", "tables"}


def test_a_failed_capture_keeps_its_reason_and_notifies(uow):
    backup_id = uow.call(lambda u: commands.start_backup(u, "schedule", tick=TICK).id)

    uow.call(lambda u: commands.fail_backup(u, backup_id, "pg_dump was not found on PATH"))

    backup = uow.read(lambda s: s.get(Backup, backup_id))
    assert (backup.status, backup.error) == ("failed", "pg_dump was not found on PATH")
    assert uow.events[-1][0] == "backup_failed" and uow.events[-1][1]["stage"] == "capture"


def test_a_verification_without_mismatches_marks_the_backup_verified(uow):
    backup_id = finished(uow)
    verification = uow.call(lambda u: commands.start_verification(u, backup_id, "manual").id)

    uow.call(lambda u: commands.finish_verification(u, verification, []))

    backup = uow.read(lambda s: s.get(Backup, backup_id))
    assert backup.verified is True and backup.verified_at is not None and backup.status == "done"
    assert uow.events[-1][0] == "backup_verified" and uow.events[-1][1]["tables"] == 1


def test_a_verification_mismatch_marks_the_backup_failed_with_the_table_that_differs(uow):
    backup_id = finished(uow)
    verification = uow.call(lambda u: commands.start_verification(u, backup_id, "manual").id)
    found = [{"service": "clients", "table": "clients", "problem": "row count", "expected": 2, "found": 1}]

    uow.call(lambda u: commands.finish_verification(u, verification, found))

    backup = uow.read(lambda s: s.get(Backup, backup_id))
    assert backup.verified is False and backup.status == "failed"
    assert "clients.clients: row count 2 → 1" in backup.error
    assert uow.events[-1][1]["stage"] == "verify"


def test_a_backup_that_failed_its_verification_is_done_again_once_a_verification_passes(uow):
    backup_id = finished(uow)
    first = uow.call(lambda u: commands.start_verification(u, backup_id, "manual").id)
    uow.call(lambda u: commands.finish_verification(u, first, [], error="could not create the scratch database"))
    second = uow.call(lambda u: commands.start_verification(u, backup_id, "manual").id)

    uow.call(lambda u: commands.finish_verification(u, second, []))

    backup = uow.read(lambda s: s.get(Backup, backup_id))
    assert (backup.status, backup.verified, backup.error) == ("done", True, None)


def test_a_running_backup_cannot_be_verified(uow):
    backup_id = uow.call(lambda u: commands.start_backup(u, "manual").id)

    with pytest.raises(NotVerifiable):
        uow.call(lambda u: commands.start_verification(u, backup_id, "manual"))


def test_a_backup_whose_worker_went_silent_is_marked_failed(uow):
    backup_id = uow.call(lambda u: commands.start_backup(u, "manual").id)

    later = datetime.now(UTC) + timedelta(minutes=5)
    assert uow.call(lambda u: commands.reap_silent(u, later)) == [backup_id]

    assert "interrupted" in uow.read(lambda s: s.get(Backup, backup_id).error)


def test_freshness_reports_the_newest_verified_backup(uow):
    uow.call(lambda u: commands.installation_started(u, datetime.now(UTC) - timedelta(days=10)))
    assert uow.read(lambda s: commands.freshness(s, "0 3 * * *"))["stale"] is True

    backup_id = finished(uow)
    verification = uow.call(lambda u: commands.start_verification(u, backup_id, "manual").id)
    uow.call(lambda u: commands.finish_verification(u, verification, []))

    state = uow.read(lambda s: commands.freshness(s, "0 3 * * *"))
    assert state["stale"] is False and state["last_verified_id"] == backup_id and state["age_s"] < 60


def test_retention_removes_what_no_rule_keeps_and_failed_backups_older_than_the_kept_ones(uow):
    ids = [finished(uow) for _ in range(4)]
    uow.call(lambda u: [setattr(u.session.get(Backup, i), "started_at", datetime(2026, 5, 1 + n, tzinfo=UTC))
                        for n, i in enumerate(ids)])
    failed = uow.call(lambda u: commands.start_backup(u, "manual").id)
    uow.call(lambda u: commands.fail_backup(u, failed, "disk full"))
    uow.call(lambda u: setattr(u.session.get(Backup, failed), "started_at", datetime(2026, 4, 1, tzinfo=UTC)))

    doomed = uow.read(lambda s: [b.id for b in commands.retention_plan(s, Retention(2, 0, 0, 0))])

    assert set(doomed) == {ids[0], ids[1], failed}


def test_development_makes_a_backup_key_once_and_production_refuses_to_run_without_one(tmp_path):
    settings = Settings(data_dir=str(tmp_path))

    first, second = load_keyring(settings), load_keyring(settings)

    assert first.current == second.current and first.source == str(tmp_path / "backup.key")
    assert (tmp_path / "backup.key").stat().st_mode & 0o077 == 0
    with pytest.raises(ConfigError, match="CRM_BACKUP_KEY"):
        load_keyring(Settings(env="production", data_dir=str(tmp_path)))
