"""The backup service on the real bus and real PostgreSQL: pg_dump snapshots, rclone copies to a real
OpenSSH SFTP server and a local folder, verification by restoring into scratch databases, two replicas
sharing the schedule, and failures recorded with their reason."""

from __future__ import annotations

import os
import uuid

import pytest
from nameko.events import event_handler
from nameko.testing.services import entrypoint_waiter
from sqlalchemy import create_engine, text

from backup.keys import generate_key
from backup.service import BackupService
from clients.service import ClientsService
from crm_common import registry
from crm_common.config import Settings
from crm_common.testing.fixtures import poll
from deals.service import DealsService
from tests.integration.sftp import start_sftp

ADMIN = {"id": str(uuid.uuid4()), "role": "admin", "branch_id": None}
STAGES = [{"name": "Новая", "kind": "open"}, {"name": "Успех", "kind": "won"}, {"name": "Отказ", "kind": "lost"}]


class BackupEvents:
    name = "backup_events"

    @event_handler("backup", "backup_completed")
    def handle_backup_completed(self, payload):
        return payload

    @event_handler("backup", "backup_failed")
    def handle_backup_failed(self, payload):
        return payload

    @event_handler("backup", "backup_verified")
    def handle_backup_verified(self, payload):
        return payload


@pytest.fixture(scope="module")
def sftp(tmp_path_factory):
    server = start_sftp(tmp_path_factory.mktemp("sftp"))
    saved = {name: os.environ.get(name) for name in server.env}
    os.environ.update(server.env)  # the worker processes the service starts inherit them
    yield server
    server.stop()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def backup_config(config, tmp_path, sftp):
    config["CRM"].update(
        backup_dir=str(tmp_path / "backups"), backup_key=generate_key(),
        backup_offsite=f"{tmp_path / 'usb'},{sftp.remote(tmp_path.name)}",
        backup_schedule="0 3 1 1 *", backup_check_interval_s=3600, backup_rclone_retries=1,
    )
    empty_catalogue(config)
    return config


def empty_catalogue(config) -> None:
    """Each test sees only its own backups (the run's catalogue database is shared by the tests)."""
    engine = create_engine(Settings.from_config(config).database_url_for("backup"))
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM verifications; DELETE FROM backup_copies; DELETE FROM backup_parts; "
                          "DELETE FROM backups; DELETE FROM installation"))
    engine.dispose()


@pytest.fixture
def events(container_factory, backup_config):
    container = container_factory(BackupEvents, backup_config)
    container.start()
    return container


def finished(backup_rpc, backup_id: str, timeout: float = 60) -> dict:
    return poll(lambda: (lambda b: b if b["status"] != "running" and not b["verifying"] else None)(
        backup_rpc.get_backup(ADMIN, backup_id)), timeout=timeout, interval=0.2, message=f"backup {backup_id}")


def test_a_backup_captures_every_database_copies_it_off_site_and_proves_it_restores(
        container_factory, backup_config, rpc_proxy, sftp, tmp_path, events):
    for service in (ClientsService, DealsService, BackupService):
        container_factory(service, backup_config).start()
    head = {"id": str(uuid.uuid4()), "role": "head", "branch_id": str(uuid.uuid4())}
    rpc_proxy("clients").create_client(head, {"kind": "person", "name": "Ольга Смирнова"})
    rpc_proxy("deals").create_pipeline(head, {"name": "Опт", "stages": STAGES})
    backups = rpc_proxy("backup", timeout=20)

    started = backups.start_backup(ADMIN)
    assert started["status"] == "running"
    backup = finished(backups, started["id"])

    assert backup["status"] == "done", backup["error"]
    # every process this installation runs, from the registry: services added later are backed up too
    expected = {spec.name for spec in registry.processes(Settings.from_config(backup_config).services)}
    assert set(backup["services"]) == expected >= {"clients", "deals", "backup", "gateway"}
    assert backup["services"]["clients"]["tables"]["clients"] >= 1
    assert backup["services"]["deals"]["tables"]["pipelines"] >= 1
    assert "users" in backup["services"]["gateway"]["tables"]
    assert {c["target"]: c["status"] for c in backup["copies"]} == {
        str(tmp_path / "usb"): "done", sftp.remote(tmp_path.name): "done"}
    on_sftp = list((sftp.root / tmp_path.name).iterdir())
    assert [p.name for p in on_sftp] == [p.name for p in (tmp_path / "usb").iterdir()]
    assert started["id"] in on_sftp[0].name and on_sftp[0].stat().st_size == backup["size_bytes"]
    assert backup["verified"] is None

    accepted = backups.verify_backup(ADMIN, started["id"])
    assert accepted["verifying"] is True
    verified = finished(backups, started["id"])
    assert verified["verified"] is True and verified["verified_at"], verified["error"]
    assert backups.health()["backups"]["last_verified_id"] == started["id"]


def test_a_backup_without_pg_dump_fails_with_the_reason_and_leaves_older_backups_alone(
        container_factory, backup_config, rpc_proxy, tmp_path, events):
    first = container_factory(BackupService, backup_config)
    first.start()
    backups = rpc_proxy("backup", timeout=20)
    good = finished(backups, backups.start_backup(ADMIN)["id"])
    first.stop()
    backup_config["CRM"]["backup_pg_bin"] = str(tmp_path / "no-tools")
    (tmp_path / "no-tools").mkdir()
    container_factory(BackupService, backup_config).start()

    with entrypoint_waiter(events, "handle_backup_failed", timeout=30) as waiter:
        failed = finished(backups, backups.start_backup(ADMIN)["id"])

    assert failed["status"] == "failed" and "pg_dump was not found" in failed["error"]
    assert waiter.get()["stage"] == "capture" and waiter.get()["backup_id"] == failed["id"]
    assert backups.get_backup(ADMIN, good["id"])["status"] == "done"
    assert len(list((tmp_path / "backups").glob("*.crmbak"))) == 1  # nothing half-written left behind


def test_an_unreachable_target_marks_its_copy_failed_and_the_other_copies_are_made(
        container_factory, backup_config, rpc_proxy, tmp_path, events):
    from nameko.testing.utils import find_free_port

    unreachable = f":sftp,host=127.0.0.1,port={find_free_port()},user=nobody:crm"
    backup_config["CRM"]["backup_offsite"] = f"{tmp_path / 'usb'},{unreachable}"
    container_factory(BackupService, backup_config).start()
    backups = rpc_proxy("backup", timeout=20)

    with entrypoint_waiter(events, "handle_backup_failed", timeout=60) as waiter:
        backup = finished(backups, backups.start_backup(ADMIN)["id"])

    copies = {c["target"]: c for c in backup["copies"]}
    assert backup["status"] == "done"
    assert copies[str(tmp_path / "usb")]["status"] == "done"
    assert copies[unreachable]["status"] == "failed" and copies[unreachable]["error"]
    assert waiter.get()["stage"] == "copy" and waiter.get()["target"] == unreachable


def test_two_replicas_take_exactly_one_backup_per_scheduled_tick(container_factory, backup_config, rpc_proxy):
    backup_config["CRM"].update(backup_schedule="* * * * * */5", backup_check_interval_s=0.2, backup_offsite="")
    replicas = [container_factory(BackupService, backup_config) for _ in range(2)]
    for replica in replicas:
        replica.start()
    backups = rpc_proxy("backup", timeout=20)

    def scheduled_and_verified():
        items = backups.list_backups(ADMIN, {"limit": "50"})["items"]
        settled = [b for b in items if b["trigger"] == "schedule" and b["verified"] is not None]
        return items if len(settled) >= 2 else None

    # each backup is verified (a restore of every database) before the next tick can take the lease
    poll(scheduled_and_verified, timeout=150, interval=0.5, message="two scheduled backups")
    for replica in replicas:
        replica.stop()

    engine = create_engine(Settings.from_config(backup_config).database_url_for("backup"))
    with engine.connect() as conn:
        ticks = conn.execute(text("SELECT tick, count(*) FROM backups WHERE trigger = 'schedule' GROUP BY tick")).all()
        verified = conn.execute(text("SELECT count(*) FROM backups WHERE trigger = 'schedule' AND verified")).scalar()
    engine.dispose()
    assert len(ticks) >= 2 and all(count == 1 for _, count in ticks)
    assert all(tick.second % 5 == 0 for tick, _ in ticks)
    assert verified >= 2  # every scheduled backup is verified by itself
