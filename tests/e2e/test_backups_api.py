"""Backups over HTTP and the operator's restore, against the CRM started as `make run` starts it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from eventlet import patcher
from nameko.testing.utils import find_free_port

from crm_common.config import Settings
from crm_common.registry import REPO_ROOT
from crm_common.testing.fixtures import create_vhost, delete_vhost, drop_databases, poll, vhost_uri
from crm_common.testing.system import start_system, unique

threading = patcher.original("threading")
CLI = [sys.executable, "-c", "import sys; from backup.cli import main; sys.exit(main())"]
STAGES = [{"name": "Новая", "kind": "open"}, {"name": "Успех", "kind": "won"}, {"name": "Отказ", "kind": "lost"}]


def settled(api, backup_id: str, timeout: float = 90) -> dict:
    def check():
        backup = api.ok("GET", f"/backups/{backup_id}")
        return backup if backup["status"] != "running" and not backup["verifying"] else None

    return poll(check, timeout=timeout, interval=0.3, message=f"backup {backup_id}")


def test_only_administrators_reach_the_backup_routes(world):
    for api in (world.north.head, world.north.managers[0]):
        for method, path in (("POST", "/backups"), ("GET", "/backups"), ("GET", f"/backups/{unique()}"),
                             ("POST", f"/backups/{unique()}/verify")):
            response = api.request(method, path)
            assert response.status_code == 403, (method, path, response.text)
            assert response.json()["error"]["code"] == "forbidden"
    anonymous = world.admin.__class__(world.admin.base_url)
    assert anonymous.get("/backups").status_code == 401


def test_an_administrator_backs_up_lists_reads_and_verifies(admin):
    started = admin.post("/backups")
    assert started.status_code == 202, started.text
    assert set(started.json()) == {"id", "status"} and started.json()["status"] == "running"
    backup_id = started.json()["id"]
    assert admin.post("/backups").status_code in (202, 409)  # one at a time

    backup = settled(admin, backup_id)

    assert backup["status"] == "done", backup["error"]
    assert {"id", "status", "trigger", "started_at", "finished_at", "size_bytes", "sha256", "services", "copies",
            "verified", "verified_at", "error"} <= set(backup)
    assert backup["trigger"] == "manual" and backup["size_bytes"] > 0 and len(backup["sha256"]) == 64
    assert {"clients", "deals", "gateway", "backup"} <= set(backup["services"])
    assert backup["services"]["gateway"]["tables"]["users"] >= 1
    assert backup["services"]["deals"]["tables"].keys() >= {"deals", "pipelines", "stages"}
    listed = admin.ok("GET", "/backups?limit=200")["items"]
    assert backup_id in [b["id"] for b in listed]

    verify = admin.post(f"/backups/{backup_id}/verify")
    assert verify.status_code == 202, verify.text
    verified = settled(admin, backup_id)
    assert verified["verified"] is True and verified["verified_at"]


def test_bad_backup_requests_get_clear_errors(admin):
    assert admin.get(f"/backups/{unique()}").status_code == 404
    assert admin.get("/backups/00000000-0000-0000-0000-000000000000").json()["error"]["code"] == "not_found"
    assert admin.post("/backups/00000000-0000-0000-0000-000000000000/verify").status_code == 404
    bad = admin.get("/backups?status=lost")
    assert bad.status_code == 400 and "status" in bad.json()["error"]["fields"]
    assert admin.get("/backups?limit=0").status_code == 400


def test_health_shows_the_age_of_the_newest_verified_backup_and_stays_200(system):
    import requests

    response = requests.get(system.base_url.replace("/api/v1", "/health"), timeout=10)

    assert response.status_code == 200
    backups = response.json()["backups"]
    assert backups["status"] in ("ok", "stale") and backups["stale"] is False  # a new installation is not stale
    assert {"age_s", "last_verified_at", "stale_after", "schedule"} <= set(backups)


# ---- the restore round trip, on a CRM of its own (it is stopped and started again)

@pytest.fixture(scope="module")
def own_crm(run_id, pg_url, tmp_path_factory):
    vhost = f"crm-test-{run_id}-restore"
    create_vhost(vhost)
    prefix = f"crm_r{run_id}_"
    offsite = tmp_path_factory.mktemp("offsite")
    env = {
        "AMQP_URI": vhost_uri(vhost), "CRM_DATABASE_URL": pg_url, "CRM_DATABASE_PREFIX": prefix,
        "CRM_HTTP_PORT": str(find_free_port()), "CRM_DATA_DIR": str(tmp_path_factory.mktemp("restore-data")),
        "CRM_RATE_LIMIT_PER_MINUTE": "0", "CRM_OUTBOX_POLL_S": "0.2", "CRM_LOG_LEVEL": "WARNING",
        "CRM_DB_POOL_SIZE": "3", "CRM_BACKUP_OFFSITE": str(offsite), "CRM_BACKUP_REPLAY_WINDOW_S": "600",
        # the services the round trip needs, not more: PostgreSQL's 100 connections are shared by every run
        "CRM_SERVICES": "clients,deals,backup",
    }
    logs = tmp_path_factory.mktemp("restore-logs")
    state = {"system": start_system(env, logs / "first.log")}
    yield env, state, logs
    if state["system"] is not None:
        state["system"].stop()
    drop_databases(Settings.from_config({"CRM": {"database_url": pg_url, "database_prefix": prefix}}))
    delete_vhost(vhost)


def crm_backup(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], env={**os.environ, **env}, cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=300)


def test_a_restore_brings_back_exactly_the_backed_up_data_and_every_deal_reaches_its_timeline(own_crm):
    env, state, logs = own_crm
    admin = state["system"].admin
    branch = admin.ok("POST", "/branches", {"name": unique("Restore "), "code": unique("R")[:12]})
    before = admin.ok("POST", "/clients", {"kind": "person", "name": unique("Before "), "branch_id": branch["id"]},
                      status=201)
    pipeline = admin.ok("POST", "/pipelines", {"name": "Продажи", "stages": STAGES, "branch_id": branch["id"]},
                        status=201)
    deal_body = {"client_id": before["id"], "pipeline_id": pipeline["id"], "title": "Поставка", "amount": "10.00",
                 "currency": "RUB"}
    admin.ok("POST", "/deals", deal_body, status=201)

    # deals keep being opened while the backup captures: some of their events are in flight at that moment
    stop = threading.Event()

    def open_deals():
        while not stop.is_set():
            admin.request("POST", "/deals", deal_body)

    writer = threading.Thread(target=open_deals)
    writer.start()
    try:
        backup_id = admin.ok("POST", "/backups", status=202)["id"]
        backup = settled(admin, backup_id)
    finally:
        stop.set()
        writer.join()
    assert backup["status"] == "done", backup["error"]
    after = admin.ok("POST", "/clients", {"kind": "person", "name": unique("After "), "branch_id": branch["id"]},
                     status=201)

    refused = crm_backup(env, "restore", backup_id, "--yes")
    assert refused.returncode == 2 and "running" in refused.stderr, refused.stderr

    state["system"].stop()
    state["system"] = None
    done = crm_backup(env, "restore", backup_id, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    state["system"] = start_system(env, logs / "second.log")
    admin = state["system"].admin

    assert admin.get(f"/clients/{before['id']}").status_code == 200
    assert admin.get(f"/clients/{after['id']}").status_code == 404
    deals = admin.pages(f"/deals?client_id={before['id']}", limit=200)
    assert len(deals) == backup["services"]["deals"]["tables"]["deals"]

    def every_deal_on_the_timeline():
        entries = admin.pages(f"/clients/{before['id']}/timeline", limit=200)
        created = {e["ref_id"] for e in entries if e["type"] == "deal_created"}
        missing = {d["id"] for d in deals} - created
        return not missing

    poll(every_deal_on_the_timeline, timeout=30, interval=0.5, message="every restored deal on its client's timeline")
