"""``crm-backup`` as an operator runs it, on an installation of SQLite files: a consistent capture while
the databases are written, restores that refuse a wrong key, a damaged, cut or unknown archive without
touching the live databases, and the burnt-server restore from the off-site copy alone."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from eventlet import patcher

from backup import engine
from backup.keys import generate_key
from crm_common.config import Settings
from crm_common.migrate import migrate
from crm_common.registry import REGISTRY, REPO_ROOT

threading = patcher.original("threading")

CLI = [sys.executable, "-c", "import sys; from backup.cli import main; sys.exit(main())"]


@pytest.fixture
def install(tmp_path, amqp_uri):
    """An installation on SQLite files with an off-site folder; the environment crm-backup reads."""
    env = {
        "AMQP_URI": amqp_uri, "CRM_DATA_DIR": str(tmp_path / "var"), "CRM_DATABASE_URL": "",
        "CRM_BACKUP_KEY": generate_key(), "CRM_BACKUP_OFFSITE": str(tmp_path / "offsite"),
        "CRM_BACKUP_RCLONE_RETRIES": "1", "PYTHONWARNINGS": "ignore",
    }
    config = {"AMQP_URI": amqp_uri, "CRM": {"data_dir": env["CRM_DATA_DIR"], "backup_key": env["CRM_BACKUP_KEY"],
                                            "backup_offsite": env["CRM_BACKUP_OFFSITE"], "backup_rclone_retries": 1}}
    for spec in REGISTRY:
        migrate(spec.name, config)
    return env, config, tmp_path


def crm_backup(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], env={**os.environ, **env}, cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120)


def branches(env: dict) -> list[str]:
    conn = sqlite3.connect(Path(env["CRM_DATA_DIR"]) / "gateway.db")
    try:
        return sorted(row[0] for row in conn.execute("SELECT code FROM branches"))
    finally:
        conn.close()  # an open connection is a running CRM to crm-backup restore


def add_branch(env: dict, code: str) -> None:
    conn = sqlite3.connect(Path(env["CRM_DATA_DIR"]) / "gateway.db")
    try:
        conn.execute("INSERT INTO branches (id, name, code, created_at) VALUES (?, ?, ?, '2026-05-10 10:00:00')",
                     (str(uuid.uuid4()), f"Branch {code}", code))
        conn.commit()
    finally:
        conn.close()


def backed_up(env: dict) -> str:
    done = crm_backup(env, "run")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_a_backup_taken_while_a_database_is_written_restores_identical(install):
    env, config, _ = install
    stop = threading.Event()
    written = []

    def write():
        conn = sqlite3.connect(Path(env["CRM_DATA_DIR"]) / "clients.db", timeout=30)
        while not stop.is_set():
            conn.execute("INSERT INTO processed_events (event_id, event_type, handled_at) VALUES (?, 'x', "
                         "'2026-05-10 10:00:00')", (str(uuid.uuid4()),))
            conn.commit()
            written.append(1)
        conn.close()

    writer = threading.Thread(target=write)  # a real thread: the test process is monkey patched
    writer.start()
    try:
        done = crm_backup(env, "run", "--verify")
    finally:
        stop.set()
        writer.join()

    assert done.returncode == 0, done.stderr
    assert "every table identical" in done.stderr
    job = engine.Job.open(config)
    try:
        from backup import commands

        backup = commands.get_backup(job.uow.session, done.stdout.strip().splitlines()[-1])
        captured = backup.manifest["services"]["clients"]["tables"]["processed_events"]
    finally:
        job.close()
    assert backup.verified is True
    assert 0 < captured <= len(written)


def test_restore_puts_back_the_backed_up_data_and_only_it(install):
    env, _, _ = install
    add_branch(env, "FIRST")
    backup_id = backed_up(env)
    add_branch(env, "SECOND")

    done = crm_backup(env, "restore", backup_id, "--yes")

    assert done.returncode == 0, done.stderr
    assert "ready" in done.stdout
    assert branches(env) == ["FIRST"]


@pytest.mark.parametrize("damage", ["wrong key", "changed byte", "cut off", "unknown id"])
def test_a_restore_that_cannot_be_trusted_is_refused_and_changes_nothing(install, damage):
    env, _, _ = install
    add_branch(env, "FIRST")
    backup_id = backed_up(env)
    add_branch(env, "SECOND")
    archive = next((Path(env["CRM_DATA_DIR"]) / "backups").glob("*.crmbak"))
    raw = archive.read_bytes()
    if damage == "wrong key":
        env = {**env, "CRM_BACKUP_KEY": generate_key()}
    elif damage == "changed byte":
        archive.write_bytes(raw[: len(raw) // 2] + bytes([raw[len(raw) // 2] ^ 1]) + raw[len(raw) // 2 + 1:])
    elif damage == "cut off":
        archive.write_bytes(raw[: len(raw) - 100])
    else:
        backup_id = str(uuid.uuid4())

    done = crm_backup(env, "restore", backup_id, "--yes")

    assert done.returncode == 2
    expected = {"wrong key": "key id", "changed byte": "does not authenticate", "cut off": "cut off",
                "unknown id": "unknown backup"}[damage]
    assert expected in done.stderr, done.stderr
    assert branches(env) == ["FIRST", "SECOND"]
    leftovers = [p.name for p in Path(env["CRM_DATA_DIR"]).iterdir() if ".restore-" in p.name]
    assert leftovers == []


def test_a_burnt_server_is_restored_from_the_off_site_copy_and_the_key_alone(install):
    env, _, tmp_path = install
    add_branch(env, "FIRST")
    backup_id = backed_up(env)
    add_branch(env, "SECOND")
    shutil.rmtree(env["CRM_DATA_DIR"])  # the machine is gone: databases, catalogue, local archives

    done = crm_backup(env, "restore", backup_id, "--from-offsite", "--yes")

    assert done.returncode == 0, done.stderr
    assert branches(env) == ["FIRST"]
    listed = crm_backup(env, "list")
    assert backup_id in listed.stdout and "done" in listed.stdout
    drill = crm_backup(env, "drill")
    assert drill.returncode == 0, drill.stdout + drill.stderr
    assert "identical" in drill.stdout
    assert list((tmp_path / "offsite").glob(f"*{backup_id}.crmbak"))


def test_the_catalogue_stays_when_the_other_databases_are_restored(install):
    env, config, _ = install
    first = backed_up(env)
    second = backed_up(env)

    assert crm_backup(env, "restore", first, "--yes").returncode == 0

    listed = crm_backup(env, "list").stdout
    assert first in listed and second in listed
    assert Settings.from_config(config).backup_keep_last == 7


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tiny file system needs root (CI runs as root)")
def test_a_full_disk_fails_the_backup_with_the_reason_and_leaves_the_older_ones(install):
    env, _, tmp_path = install
    first = backed_up(env)
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(tiny)], check=True)
    try:
        done = crm_backup({**env, "CRM_BACKUP_DIR": str(tiny)}, "run")
        leftovers = [p.name for p in tiny.rglob("*") if p.is_file()]
    finally:
        subprocess.run(["umount", str(tiny)], check=True)

    assert done.returncode == 1
    assert "disk full" in done.stderr, done.stderr
    assert leftovers == []
    listed = crm_backup(env, "list").stdout
    assert first in listed and "failed" in listed
    assert crm_backup(env, "verify", first).returncode == 0


def test_a_damaged_archive_fails_its_verification_and_says_why(install):
    env, _, _ = install
    backup_id = backed_up(env)
    archive = next((Path(env["CRM_DATA_DIR"]) / "backups").glob(f"*{backup_id}.crmbak"))
    raw = bytearray(archive.read_bytes())
    raw[len(raw) // 3] ^= 0xFF
    archive.write_bytes(bytes(raw))

    done = crm_backup(env, "verify", backup_id)

    assert done.returncode == 1
    assert "does not authenticate" in done.stderr
    listed = crm_backup(env, "list").stdout
    assert "failed" in listed and "NO" in listed


def test_retention_removes_old_backups_locally_and_off_site_but_keeps_the_newest_verified(install):
    env, _, tmp_path = install
    env = {**env, "CRM_BACKUP_KEEP_LAST": "1", "CRM_BACKUP_KEEP_DAILY": "0", "CRM_BACKUP_KEEP_WEEKLY": "0",
           "CRM_BACKUP_KEEP_MONTHLY": "0"}
    verified = crm_backup(env, "run", "--verify").stdout.strip().splitlines()[-1]
    first_unverified = backed_up(env)
    newest = backed_up(env)

    local = {p.name for p in (Path(env["CRM_DATA_DIR"]) / "backups").glob("*.crmbak")}
    remote = {p.name for p in (tmp_path / "offsite").glob("*.crmbak")}

    assert local == remote
    assert {name.split("-", 3)[3].removesuffix(".crmbak") for name in local} == {verified, newest}
    listed = crm_backup(env, "list").stdout
    assert first_unverified not in listed and verified in listed and newest in listed


def test_the_call_recordings_come_back_with_the_databases_and_only_those_backed_up(install):
    env, _, _ = install
    recordings = Path(env["CRM_DATA_DIR"]) / "recordings"
    (recordings / "call-1").mkdir(parents=True)
    (recordings / "call-1" / "a1.mp3").write_bytes(b"ID3" + bytes(range(256)) * 40)
    (recordings / ".incoming").mkdir()
    (recordings / ".incoming" / "half.part").write_bytes(b"an upload in progress")
    add_branch(env, "FIRST")
    backup_id = backed_up(env)
    (recordings / "call-1" / "a1.mp3").write_bytes(b"changed")
    (recordings / "call-2").mkdir()
    (recordings / "call-2" / "b2.wav").write_bytes(b"RIFF later")

    verified = crm_backup(env, "verify", backup_id)
    done = crm_backup(env, "restore", backup_id, "--yes")

    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert done.returncode == 0, done.stderr
    assert (recordings / "call-1" / "a1.mp3").read_bytes() == b"ID3" + bytes(range(256)) * 40
    assert not (recordings / "call-2").exists() and not (recordings / ".incoming").exists()
    assert sorted(p.name for p in recordings.parent.iterdir() if p.name.startswith("recordings")) == ["recordings"]
