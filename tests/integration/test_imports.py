"""Imports on the real PostgreSQL and RabbitMQ: a crash half-way, two replicas, two imports of one file."""

import os
import signal
import subprocess
import sys
import uuid

import pytest
import yaml
from sqlalchemy import create_engine, func, select

from clients.models import Client, ClientContact, Import, ImportOutcome, OutboxMessage
from clients.service import ClientsService
from crm_common.registry import REPO_ROOT
from crm_common.testing.fixtures import poll

MAPPING = {"name": "ФИО", "phones": ["Телефон"]}


@pytest.fixture
def import_config(config):
    # a lease that runs out quickly, so a crashed replica's import is taken over within the test
    config["CRM"].update(import_lease_s=2, import_poll_s=0.2)
    return config


@pytest.fixture
def clients_db(migrated_databases):
    engine = create_engine(migrated_databases["clients"], pool_size=1)
    yield engine
    engine.dispose()


def rows_of(count: int, prefix: str, first_number: int = 0) -> list[dict]:
    return [{"row": index + 2, "data": {"name": f"{prefix} {index}",
                                        "phones": [[0, f"+7 917 {(first_number + index) // 10000:03d}-"
                                                       f"{(first_number + index) // 100 % 100:02d}-"
                                                       f"{(first_number + index) % 100:02d}"]]}}
            for index in range(count)]


def upload(clients, head: dict, rows: list[dict], **options) -> str:
    imp = clients.create_import(head, {"file_name": "base.csv", "mapping": MAPPING, "total": len(rows), **options},
                                {"managers": []})
    for start in range(0, len(rows), 1000):
        clients.add_import_rows(head, imp["id"], rows[start:start + 1000])
    clients.start_import(head, imp["id"])
    return imp["id"]


def head_of_new_branch() -> dict:
    return {"id": str(uuid.uuid4()), "role": "head", "branch_id": str(uuid.uuid4())}


def import_state(engine, import_id: str) -> Import:
    with engine.connect() as conn:
        return conn.execute(select(Import).where(Import.id == import_id)).one()


def branch_counts(engine, branch_id: str) -> dict:
    with engine.connect() as conn:
        clients = conn.scalar(select(func.count()).select_from(Client).where(Client.branch_id == branch_id))
        phones = conn.execute(
            select(ClientContact.value, func.count()).where(ClientContact.branch_id == branch_id)
            .group_by(ClientContact.value)
        ).all()
        events = conn.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.event_type == "client_created", OutboxMessage.payload["branch_id"].as_string() == branch_id))
    return {"clients": clients, "phones": len(phones), "most_holders": max((n for _, n in phones), default=0),
            "events": events}


def start_clients_process(config, tmp_path, name: str) -> subprocess.Popen:
    """The clients service as its own process (`nameko run`), so it can be killed as a crash kills it."""
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    log = open(tmp_path / f"{name}.log", "w")
    return subprocess.Popen(
        [sys.executable, "-m", "nameko", "run", "--config", str(path), "clients.service:ClientsService"],
        cwd=REPO_ROOT, env=dict(os.environ, CRM_SERVICE_NAME=name, PYTHONWARNINGS="ignore"),
        stdout=log, stderr=subprocess.STDOUT,
    )


def test_a_replica_killed_half_way_leaves_the_rest_to_the_next_and_every_row_is_imported_once(
    import_config, rpc_proxy, clients_db, tmp_path
):
    first = start_clients_process(import_config, tmp_path, "clients-1")
    second = None
    try:
        clients = rpc_proxy("clients", timeout=30)
        poll(lambda: _answers(clients), timeout=60, message="the clients service to start")
        head = head_of_new_branch()
        total = 6000
        import_id = upload(clients, head, rows_of(total, "Клиент", 10_000))

        poll(lambda: import_state(clients_db, import_id).rows_done >= 1000, timeout=120, interval=0.05,
             message="the first batches to commit")
        first.send_signal(signal.SIGKILL)  # no clean shutdown: whatever batch is open is lost with the process
        first.wait(10)
        killed_at = import_state(clients_db, import_id)
        assert killed_at.status == "running" and killed_at.rows_done < total

        second = start_clients_process(import_config, tmp_path, "clients-2")
        poll(lambda: import_state(clients_db, import_id).status == "done", timeout=180, interval=0.2,
             message="the second replica to finish the import")

        done = import_state(clients_db, import_id)
        assert (done.rows_done, done.created, done.skipped, done.rows_with_errors) == (total, total, 0, 0)
        assert branch_counts(clients_db, head["branch_id"]) == {
            "clients": total, "phones": total, "most_holders": 1, "events": total}
        with clients_db.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(ImportOutcome)
                               .where(ImportOutcome.import_id == import_id)) == total
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(30)


def _answers(clients) -> bool:
    try:
        return clients.health()["database"] == "ok"
    except Exception:  # noqa: BLE001 - not up yet
        return False


def test_two_replicas_share_the_imports_and_never_process_one_twice(container_factory, import_config, rpc_proxy,
                                                                    clients_db):
    for _ in range(2):
        container_factory(ClientsService, import_config).start()
    clients = rpc_proxy("clients", timeout=30)
    heads = [head_of_new_branch() for _ in range(3)]
    imports = [upload(clients, head, rows_of(1500, f"Клиент {n}", 20_000 + n * 2000)) for n, head in enumerate(heads)]

    poll(lambda: all(import_state(clients_db, i).status == "done" for i in imports), timeout=180, interval=0.2,
         message="three imports on two replicas")

    for head, import_id in zip(heads, imports):
        assert import_state(clients_db, import_id).created == 1500
        assert branch_counts(clients_db, head["branch_id"]) == {
            "clients": 1500, "phones": 1500, "most_holders": 1, "events": 1500}


def test_one_file_imported_twice_at_once_creates_each_client_once_and_skips_the_repeats(
    container_factory, import_config, rpc_proxy, clients_db
):
    for _ in range(2):
        container_factory(ClientsService, import_config).start()
    clients = rpc_proxy("clients", timeout=30)
    head = head_of_new_branch()
    rows = rows_of(2000, "Дубль", 40_000)

    imports = [upload(clients, head, rows), upload(clients, head, rows)]
    poll(lambda: all(import_state(clients_db, i).status == "done" for i in imports), timeout=180, interval=0.2,
         message="both imports")

    # whichever import reached a row first created its client; the other skipped it as a duplicate
    states = [import_state(clients_db, i) for i in imports]
    assert sum(s.created for s in states) == 2000 and sum(s.skipped for s in states) == 2000
    assert branch_counts(clients_db, head["branch_id"]) == {
        "clients": 2000, "phones": 2000, "most_holders": 1, "events": 2000}
