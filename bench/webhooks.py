"""Outgoing webhooks: deliveries per second to a fast local receiver, and how late a healthy webhook's deliveries
come while another webhook's receiver hangs.

On a CRM of its own: the webhooks service and the gateway started by ``scripts/run.py`` (``CRM_SERVICES=webhooks``,
``CRM_WEBHOOK_ALLOW_PRIVATE=true``: the receivers are on 127.0.0.1), vhost ``crm-bench-hooks`` and databases
``crm_bench_hooks_*``, dropped before and after. Events are published straight to the ``clients.events``
exchange, as the clients service's outbox relay publishes them, so the numbers are the webhooks service's own.
The receivers (``crm_common.testing.receiver``) run in this process.

1. **Throughput.** N webhooks (1, then 10) on one receiver take ``client_created``; E events are published as
   fast as possible; deliveries per second = N·E ÷ (first publish → last delivery received). The baseline is
   measured in the same run: plain POSTs of the same body to the same receiver from N threads, back to back
   (what the receiver and ``requests`` manage without the CRM); the ratio is deliveries/s ÷ POSTs/s.
2. **A hanging receiver.** Events at a steady 20/s for 10 s go to a healthy webhook alone, then to a healthy
   webhook beside one whose receiver accepts every request and never answers; the delay of each healthy delivery
   is the time from publishing its event to its arrival. The ratio is the p99 delay with ÷ without the hanging
   receiver.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import requests

from bench import system
from bench.system import PG_SERVER

PREFIX = "crm_bench_hooks_"
VHOST = "crm-bench-hooks"
SECRET = "whsec_benchmark_0123456789"
RATE_PER_S = 20
STEADY_S = 10.0


def measure(say=print, events_one: int = 600, events_many: int = 200) -> dict:
    from crm_common.testing.receiver import WebhookReceiver

    folder = Path(tempfile.mkdtemp(prefix="crm-bench-webhooks-"))
    system.ensure_vhost(VHOST)
    system.reset_databases(PREFIX)
    crm = None  # the CRM of this measurement (``system`` is the module)
    results: dict = {}
    try:
        crm = _start(folder)
        say("webhooks: the CRM is up (webhooks service and gateway)")
        publish = Publisher(crm.env["AMQP_URI"])
        results["throughput"] = []
        for webhooks, events in ((1, events_one), (10, events_many)):
            receiver = WebhookReceiver().start()
            try:
                row = _throughput(crm.admin, publish, receiver, webhooks, events)
            finally:
                receiver.stop()
            results["throughput"].append(row)
            say(f"webhooks: {webhooks} webhook(s) × {events} events: {row['deliveries_per_s']} deliveries/s; "
                f"plain POSTs from {webhooks} thread(s): {row['baseline_posts_per_s']}/s; ratio {row['ratio']}")
        results["hanging"] = _hanging(crm.admin, publish, say)
    except Exception as exc:  # noqa: BLE001 - reported, the rest of the benchmark goes on
        say(f"webhooks: failed: {type(exc).__name__}: {exc}")
        results["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    finally:
        if crm is not None:
            crm.stop()
        system.reset_databases(PREFIX)
        system.delete_vhost(VHOST)
    return results


def _start(folder: Path):
    from nameko.testing.utils import find_free_port

    from crm_common.testing.system import start_system

    vhost_uri = f"amqp://guest:guest@127.0.0.1:5672/{VHOST}"
    env = {
        "AMQP_URI": vhost_uri, "CRM_DATABASE_URL": PG_SERVER, "CRM_DATABASE_PREFIX": PREFIX,
        "CRM_HTTP_HOST": "127.0.0.1", "CRM_HTTP_PORT": str(find_free_port()), "CRM_DATA_DIR": str(folder / "data"),
        "CRM_SERVICES": "webhooks", "CRM_WEBHOOK_ALLOW_PRIVATE": "true", "CRM_RATE_LIMIT_ADMIN_PER_MINUTE": "0",
        "CRM_DB_POOL_SIZE": "6", "CRM_LOG_LEVEL": "WARNING",
    }
    return start_system(env, folder / "run.log", startup_timeout=180)


class Publisher:
    """Events onto ``clients.events`` as the clients service's outbox relay publishes them."""

    def __init__(self, amqp_uri: str):
        from nameko.amqp.publish import Publisher as NamekoPublisher
        from nameko.standalone.events import get_event_exchange

        self.exchange = get_event_exchange("clients", {"AMQP_URI": amqp_uri})
        self.publisher = NamekoPublisher(amqp_uri, serializer="json", use_confirms=True, declare=[self.exchange])

    def client_created(self, branch_id: str) -> str:
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        event_id = str(uuid.uuid4())
        self.publisher.publish({
            "event_id": event_id, "occurred_at": now, "branch_id": branch_id, "actor_id": None,
            "client": {"id": str(uuid.uuid4()), "kind": "company", "name": "ООО Берёза", "phones": ["+79161234567"],
                       "emails": [], "source": "web", "tags": [], "custom_fields": {}, "owner_id": None,
                       "branch_id": branch_id, "archived": False, "created_at": now, "updated_at": now, "version": 1},
        }, exchange=self.exchange, routing_key="client_created")
        return event_id


def _branch(admin) -> str:
    return admin.ok("POST", "/branches", {"name": "Webhooks bench", "code": f"H{uuid.uuid4().hex[:10]}"}, status=201)["id"]


def _webhook(admin, url: str, branch_id: str) -> dict:
    return admin.ok("POST", "/webhooks", {"url": url, "events": ["client_created"], "secret": SECRET,
                                          "branch_id": branch_id}, status=201)


def _throughput(admin, publish: Publisher, receiver, webhooks: int, events: int) -> dict:
    branch = _branch(admin)
    for index in range(webhooks):
        _webhook(admin, f"{receiver.url}?webhook={index}", branch)
    expected = webhooks * events
    started = time.time()
    for _ in range(events):
        publish.client_created(branch)
    published_s = time.time() - started
    receiver.wait_for(expected, timeout=600)
    took = max(r.at for r in receiver.requests) - started
    body = receiver.requests[0].body
    baseline = _plain_posts(receiver.url, body, threads=webhooks, seconds=5.0)
    rate = expected / took
    return {"webhooks": webhooks, "events": events, "deliveries": expected, "published_s": round(published_s, 2),
            "took_s": round(took, 2), "deliveries_per_s": round(rate, 1), "baseline_posts_per_s": round(baseline, 1),
            "ratio": round(rate / baseline, 3) if baseline else None,
            "max_in_flight_per_receiver": receiver.max_in_flight}


def _plain_posts(url: str, body: bytes, threads: int, seconds: float) -> float:
    """POSTs per second from ``threads`` threads, each with its own keep-alive session, back to back."""
    counts = [0] * threads
    deadline = time.monotonic() + seconds

    def run(index: int) -> None:
        with requests.Session() as session:
            while time.monotonic() < deadline:
                session.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=10).close()
                counts[index] += 1

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts) / seconds


def _hanging(admin, publish: Publisher, say) -> dict:
    from crm_common.testing.receiver import WebhookReceiver

    arms = {}
    for arm in ("alone", "beside a hanging receiver"):
        healthy = WebhookReceiver().start()
        hanging = WebhookReceiver(hang=True).start() if arm != "alone" else None
        try:
            branch = _branch(admin)
            _webhook(admin, healthy.url, branch)
            if hanging is not None:
                _webhook(admin, hanging.url, branch)
            sent: dict[str, float] = {}
            count = int(RATE_PER_S * STEADY_S)
            started = time.monotonic()
            for index in range(count):
                pause = started + index / RATE_PER_S - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                sent[publish.client_created(branch)] = time.time()
            healthy.wait_for(count, timeout=120)
            delays = sorted((r.at - sent[json.loads(r.body)["data"]["event_id"]]) * 1000 for r in healthy.requests)
            arms[arm] = {"events": count, "p50_ms": round(statistics.median(delays), 1),
                         "p99_ms": round(delays[int(0.99 * (len(delays) - 1))], 1), "max_ms": round(delays[-1], 1),
                         "hanging_requests": len(hanging.requests) if hanging else None}
            say(f"webhooks: healthy webhook {arm}: delay p50 {arms[arm]['p50_ms']} ms, p99 {arms[arm]['p99_ms']} ms, "
                f"max {arms[arm]['max_ms']} ms")
        finally:
            healthy.stop()
            if hanging is not None:
                hanging.stop()
    alone, beside = arms["alone"], arms["beside a hanging receiver"]
    return {"rate_per_s": RATE_PER_S, "seconds": STEADY_S, "arms": arms,
            "p99_ratio": round(beside["p99_ms"] / alone["p99_ms"], 2) if alone["p99_ms"] else None}
