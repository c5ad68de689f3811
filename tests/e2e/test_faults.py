"""Faults under load: every service killed with SIGKILL several times and the broker stopped for 10 s while
API clients keep writing; afterwards nothing acknowledged is lost, nothing is done twice, no event is
lost or doubled, no answer was a 500 and no process died of the outage.

The CRM runs as ``make run`` runs it (``scripts/run.py``, which restarts killed services), on a
RabbitMQ node of its own (``crm_common.testing.broker``): the machine's shared broker is never stopped.
The API clients behave as the documentation tells them to: on 503 they wait ``Retry-After`` and
repeat the request with the same ``Idempotency-Key``, or, if they sent none, with the request id the
503 names.
"""

from __future__ import annotations

import collections
import os
import signal
import threading
import time
from dataclasses import dataclass, field

import psutil
import pytest
import requests
from nameko.testing.utils import find_free_port

from crm_common.config import Settings
from crm_common.db import drop_database
from crm_common.testing.broker import BrokerUnavailable, PrivateBroker
from crm_common.testing.fixtures import poll
from crm_common.testing.system import Api, phone_number, start_system, unique

WORKERS = 8
KILL_ROUNDS = 3
OUTAGE_S = 10
STAGES = [
    {"name": "Заявка", "kind": "open"},
    {"name": "Звонок", "kind": "open"},
    {"name": "КП", "kind": "open"},
    {"name": "Счёт", "kind": "open"},
    {"name": "Оплачено", "kind": "won"},
    {"name": "Отказ", "kind": "lost"},
]
MODULES = {"clients": "clients.service:ClientsService", "deals": "deals.service:DealsService"}


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    try:
        node = PrivateBroker(tmp_path_factory.mktemp("rabbitmq")).boot()
    except BrokerUnavailable as exc:
        pytest.skip(f"no private RabbitMQ node can run here: {exc}")
    yield node
    node.shutdown()


@pytest.fixture(scope="module")
def crm(broker, pg_url, run_id, tmp_path_factory):
    prefix = f"crm_f{run_id}_"
    env = {
        "AMQP_URI": broker.amqp_uri,
        "CRM_DATABASE_URL": pg_url,
        "CRM_DATABASE_PREFIX": prefix,
        "CRM_HTTP_PORT": str(find_free_port()),
        "CRM_DATA_DIR": str(tmp_path_factory.mktemp("fault-data")),
        "CRM_RATE_LIMIT_PER_MINUTE": "0",
        "CRM_OUTBOX_POLL_S": "0.2",
        "CRM_LOG_LEVEL": "WARNING",
        "CRM_DB_POOL_SIZE": "3",
    }
    running = start_system(env, tmp_path_factory.mktemp("fault-logs") / "run.log")
    yield running
    running.stop()
    settings = Settings.from_config({"CRM": {"database_url": pg_url, "database_prefix": prefix}})
    for service in ("clients", "deals", "gateway"):
        drop_database(settings.database_url_for(service))


@dataclass
class Tally:
    statuses: collections.Counter = field(default_factory=collections.Counter)
    unexpected: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, status) -> None:
        with self.lock:
            self.statuses[status] += 1


@dataclass
class Acknowledged:
    """What the API confirmed to one worker: its clients, deals and the stages each deal was moved to."""

    clients: dict = field(default_factory=dict)  # name -> id
    deals: dict = field(default_factory=dict)  # title -> (deal id, client id)
    moves: dict = field(default_factory=lambda: collections.defaultdict(list))  # deal id -> [stage id]


def write(api: Api, tally: Tally, method: str, path: str, body: dict, keyed: bool) -> dict | None:
    """One write as a careful API client does it: repeated after a 503 until its outcome is known."""
    key = unique("fault-") if keyed else None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        headers = {"Idempotency-Key": key} if key else {}
        try:
            response = api.request(method, path, json=body, headers=headers, timeout=30)
        except requests.RequestException as exc:  # the gateway itself is never stopped in this test
            tally.count("no answer")
            tally.unexpected.append((method, path, repr(exc)))
            return None
        tally.count(response.status_code)
        if response.status_code in (200, 201):
            return response.json()
        if response.status_code == 503 and response.headers.get("Retry-After"):
            key = key or response.json()["error"]["request_id"]  # the write may be done: ask for its outcome
            time.sleep(min(float(response.headers["Retry-After"]), 2.0))
            continue
        tally.unexpected.append((method, path, response.status_code, response.text[:300]))
        return None
    tally.unexpected.append((method, path, "no definite answer in 120 s"))
    return None


def worker(api: Api, pipeline: dict, stop: threading.Event, tally: Tally, seen: Acknowledged, number: int) -> None:
    stages = [s["id"] for s in pipeline["stages"]][1:4]
    turn = number
    while not stop.is_set():
        turn += 1
        name = unique(f"Клиент {number}-")
        client = write(api, tally, "POST", "/clients",
                       {"kind": "person", "name": name, "phones": [phone_number()]}, keyed=turn % 2 == 0)
        if client is None:
            continue
        seen.clients[name] = client["id"]
        title = unique("Сделка ")
        deal = write(api, tally, "POST", "/deals", {
            "client_id": client["id"], "pipeline_id": pipeline["id"], "title": title, "amount": "100.00",
            "currency": "RUB",
        }, keyed=turn % 3 != 0)
        if deal is None:
            continue
        seen.deals[title] = (deal["id"], client["id"])
        for index, stage_id in enumerate(stages):
            if stop.is_set():
                break
            moved = write(api, tally, "POST", f"/deals/{deal['id']}/stage", {"stage_id": stage_id},
                          keyed=(turn + index) % 2 == 1)
            if moved is None:
                break
            seen.moves[deal["id"]].append(stage_id)


def service_pid(crm, service: str) -> int | None:
    for child in psutil.Process(crm.process.pid).children():
        try:
            if MODULES[service] in " ".join(child.cmdline()):
                return child.pid
        except psutil.NoSuchProcess:
            continue
    return None


def kill(crm, service: str) -> None:
    """SIGKILL the service's process (started by the runner for this test) and wait for the runner to restart it."""
    pid = poll(lambda: service_pid(crm, service), timeout=60, message=f"{service} to be running")
    os.kill(pid, signal.SIGKILL)
    poll(lambda: service_pid(crm, service) not in (None, pid), timeout=60, message=f"{service} to be restarted")


def healthy(crm) -> bool:
    try:
        return requests.get(crm.base_url.replace("/api/v1", "/health"), timeout=5).status_code == 200
    except requests.RequestException:
        return False


def test_under_load_killed_services_and_a_stopped_broker_lose_nothing_and_do_nothing_twice(crm, broker):
    admin = crm.admin
    branch = admin.ok("POST", "/branches", {"name": "Отказоустойчивый", "code": unique("F")[:12]}, status=201)
    email = f"{unique('head')}@faults.test"
    admin.ok("POST", "/users", {"email": email, "name": "Head", "password": "fault-pass-1", "role": "head",
                                "branch_id": branch["id"]}, status=201)
    pipeline = Api(crm.base_url).login(email, "fault-pass-1").ok(
        "POST", "/pipelines", {"name": "Воронка", "stages": STAGES}, status=201)
    apis = [Api(crm.base_url).login(email, "fault-pass-1") for _ in range(WORKERS)]
    tally, stop = Tally(), threading.Event()
    seen = [Acknowledged() for _ in range(WORKERS)]
    threads = [threading.Thread(target=worker, args=(apis[n], pipeline, stop, tally, seen[n], n), daemon=True)
               for n in range(WORKERS)]
    for thread in threads:
        thread.start()

    kills = 0
    try:
        for _round in range(KILL_ROUNDS):
            for service in ("clients", "deals"):
                time.sleep(2)
                kill(crm, service)
                kills += 1
        poll(lambda: healthy(crm), timeout=60, message="every service to answer before the outage")
        exits_before_outage = crm.log().count(" exited with code ")

        broker.stop()
        outage_started = time.monotonic()
        during = requests.get(crm.base_url.replace("/api/v1", "/health"), timeout=10)
        assert during.status_code == 503 and during.json()["bus"] == "down", during.text
        some_client = next(id_ for s in seen for id_ in s.clients.values())
        read = apis[0].get(f"/clients/{some_client}")
        assert read.status_code == 503 and read.headers["Retry-After"], read.text
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - outage_started)))
        exits_during_outage = crm.log().count(" exited with code ") - exits_before_outage
        broker.start()
        returned = time.monotonic()
        poll(lambda: healthy(crm), timeout=60, message="every service to answer after the broker returned")
        recovered_s = time.monotonic() - returned
        time.sleep(3)  # writes after the outage too
    finally:
        stop.set()
        for thread in threads:
            thread.join(150)

    print(f"faults: {kills} kills, broker stopped {OUTAGE_S} s, every service answered {recovered_s:.1f} s after it "
          f"returned; answers {dict(tally.statuses)}")
    assert exits_during_outage == 0, crm.log()[-5000:]
    exits = [line for line in crm.log().splitlines() if " exited with code " in line]
    assert len(exits) == kills and all("code -9" in line for line in exits), exits
    assert recovered_s < 15, f"every service answered {recovered_s:.1f} s after the broker returned"
    assert tally.statuses[500] == 0 and not tally.unexpected, (tally.statuses, tally.unexpected[:10])
    assert tally.statuses[503] > 0, "the faults were felt: some answers were 503"

    head = apis[0]
    clients = {c["name"]: c["id"] for c in head.pages(f"/clients?branch_id={branch['id']}", limit=200)}
    deals = collections.Counter(d["title"] for d in head.pages(f"/deals?pipeline_id={pipeline['id']}", limit=200))
    acknowledged_clients = {name: id_ for s in seen for name, id_ in s.clients.items()}
    acknowledged_deals = {title: ids for s in seen for title, ids in s.deals.items()}
    moves = {deal_id: stages for s in seen for deal_id, stages in s.moves.items()}
    print(f"acknowledged: {len(acknowledged_clients)} clients, {len(acknowledged_deals)} deals, "
          f"{sum(len(m) for m in moves.values())} moves")
    assert len(acknowledged_clients) > 20 and len(acknowledged_deals) > 10, "the load was real"

    # nothing acknowledged is lost, and nothing is there twice (each client and deal has a unique name)
    assert {name: clients.get(name) for name in acknowledged_clients} == acknowledged_clients
    assert len(clients) == len(set(clients.values()))
    assert [title for title, n in deals.items() if n > 1] == [], "a deal was created twice"
    assert set(acknowledged_deals) <= set(deals)
    for deal_id, _client_id in acknowledged_deals.values():
        # every write was repeated until its outcome was known, so done means acknowledged; a move done
        # twice would show as a second entry (a late duplicate of an earlier move moves the deal back)
        history = [h["stage_id"] for h in head.ok("GET", f"/deals/{deal_id}/history")["items"]]
        assert history == [pipeline["stages"][0]["id"], *moves.get(deal_id, [])], deal_id

    # every deal event reached its client's timeline exactly once (late events are waited for)
    def timelines_complete():
        for deal_id, client_id in acknowledged_deals.values():
            entries = head.pages(f"/clients/{client_id}/timeline", limit=200)
            kinds = collections.Counter(e["type"] for e in entries if e["kind"] == "deal" and e["ref_id"] == deal_id)
            stages_moved = len(head.ok("GET", f"/deals/{deal_id}/history")["items"]) - 1
            if kinds != collections.Counter({"deal_created": 1, "deal_stage_changed": stages_moved} if stages_moved
                                            else {"deal_created": 1}):
                assert kinds["deal_created"] <= 1 and kinds["deal_stage_changed"] <= stages_moved, (deal_id, kinds)
                return False
        return True

    poll(timelines_complete, timeout=90, interval=1, message="every deal event on its client's timeline")
