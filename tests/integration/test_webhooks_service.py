"""The webhooks service on the real bus and PostgreSQL, delivering to receivers on 127.0.0.1: exactly one delivery
per event and webhook however often the event comes, a hanging receiver delays nobody else, two replicas keep
each webhook's deliveries one at a time and in order, and a webhook failing for its whole retry period tells
the administrators."""

import time
import uuid
from datetime import UTC, datetime

import pytest
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_waiter
from sqlalchemy import create_engine, text

from crm_common.errors import ValidationError
from crm_common.schemas import iso
from crm_common.testing.fixtures import poll
from crm_common.testing.receiver import WebhookReceiver
from tasks.service import TasksService
from webhooks import domain
from webhooks.service import WebhooksService

ADMIN = {"id": str(uuid.uuid4()), "role": "admin", "branch_id": None}
SECRET = "whsec_integration_0123456789"


@pytest.fixture
def hooks_config(config):
    config["CRM"].update(webhook_allow_private=True, webhook_retry_base_s=0.2, webhook_poll_s=0.1,
                         webhook_timeout_s=3, webhook_workers=4)
    return config


@pytest.fixture
def receivers():
    made = []

    def make(**kwargs):
        made.append(WebhookReceiver(**kwargs).start())
        return made[-1]

    yield make
    for receiver in made:
        receiver.stop()


@pytest.fixture
def engine(migrated_databases):
    engine = create_engine(migrated_databases["webhooks"])
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def no_webhooks_left(engine):
    """Each test's webhooks go with it: a later test's events must not reach them (nor fail and notify)."""
    yield
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM webhooks"))


def client_created(branch_id: str) -> dict:
    now = iso(datetime.now(UTC))
    return {"event_id": str(uuid.uuid4()), "occurred_at": now, "branch_id": branch_id, "actor_id": None,
            "client": {"id": str(uuid.uuid4()), "kind": "company", "name": "ООО Берёза", "phones": [], "emails": [],
                       "source": None, "tags": [], "custom_fields": {}, "owner_id": None, "branch_id": branch_id,
                       "archived": False, "created_at": now, "updated_at": now, "version": 1}}


def webhook(hooks, url: str, **fields) -> dict:
    return hooks.create_webhook(ADMIN, {"url": url, "events": ["client_created"], "secret": SECRET, **fields})


def test_an_event_delivered_twice_makes_exactly_one_delivery_per_matching_webhook(
    container_factory, hooks_config, rpc_proxy, receivers, engine
):
    container = container_factory(WebhooksService, hooks_config)
    container.start()
    hooks = rpc_proxy("webhooks")
    branch, other = str(uuid.uuid4()), str(uuid.uuid4())
    everywhere, ours, theirs = receivers(), receivers(), receivers()
    made = [webhook(hooks, everywhere.url), webhook(hooks, ours.url, branch_id=branch),
            webhook(hooks, theirs.url, branch_id=other)]
    event = client_created(branch)
    dispatch = event_dispatcher(hooks_config)

    for _ in range(2):
        with entrypoint_waiter(container, "handle_client_created"):
            dispatch("clients", "client_created", event)

    for receiver in (everywhere, ours):
        (got,) = receiver.wait_for(1)
        assert domain.verify(SECRET, got.headers["X-CRM-Signature"], got.body, now=time.time())
    with engine.connect() as conn:
        counts = dict(conn.execute(text("SELECT webhook_id, count(*) FROM deliveries WHERE event_id = :e GROUP BY 1"),
                                   {"e": event["event_id"]}).all())
    assert counts == {made[0]["id"]: 1, made[1]["id"]: 1}
    poll(lambda: all(hooks.list_deliveries(ADMIN, h["id"])["items"][0]["status"] == "delivered" for h in made[:2]),
         message="both deliveries recorded as delivered")
    assert (len(everywhere.requests), len(ours.requests), len(theirs.requests)) == (1, 1, 0)


def test_a_hanging_receiver_does_not_delay_another_webhook(container_factory, hooks_config, rpc_proxy, receivers):
    container_factory(WebhooksService, hooks_config).start()
    hooks = rpc_proxy("webhooks")
    hanging, healthy = receivers(hang=True), receivers()
    webhook(hooks, hanging.url)
    webhook(hooks, healthy.url)
    dispatch = event_dispatcher(hooks_config)
    branch = str(uuid.uuid4())
    sent_at = []

    for _ in range(10):
        sent_at.append(time.time())
        dispatch("clients", "client_created", client_created(branch))
        time.sleep(0.05)

    got = healthy.wait_for(10, timeout=10)
    delays = sorted(received.at - sent for received, sent in zip(sorted(got, key=lambda r: r.at), sent_at))
    assert delays[-1] < 1.5, f"the healthy webhook waited {delays[-1]:.2f} s"
    assert len(hanging.requests) == 1 and hanging.max_in_flight == 1  # its first delivery still hangs; no second


def test_two_replicas_send_each_webhooks_deliveries_one_at_a_time_in_order(
    container_factory, hooks_config, rpc_proxy, receivers, engine
):
    hooks_config["CRM"]["db_pool_size"] = 2
    for _ in range(2):
        container_factory(WebhooksService, hooks_config).start()
    hooks = rpc_proxy("webhooks")
    receiver = receivers()
    made = webhook(hooks, receiver.url)
    dispatch = event_dispatcher(hooks_config)
    branch = str(uuid.uuid4())

    for _ in range(30):
        dispatch("clients", "client_created", client_created(branch))

    got = receiver.wait_for(30, timeout=20)
    with engine.connect() as conn:
        recorded = list(conn.scalars(text("SELECT id FROM deliveries WHERE webhook_id = :w ORDER BY seq"),
                                     {"w": made["id"]}))
    assert [r.headers["X-CRM-Delivery"] for r in got] == recorded
    assert receiver.max_in_flight == 1


def test_a_webhook_failing_for_its_whole_retry_period_tells_the_admins_and_sends_what_it_held_once_re_activated(
    container_factory, hooks_config, rpc_proxy, receivers
):
    hooks_config["CRM"]["webhook_retry_for_s"] = 1.0
    hooks_config["CRM"]["task_check_interval_s"] = 3600
    for service in (WebhooksService, TasksService):
        container_factory(service, hooks_config).start()
    hooks, tasks = rpc_proxy("webhooks"), rpc_proxy("tasks")
    admin = {"id": str(uuid.uuid4()), "role": "admin", "branch_id": None}
    now = iso(datetime.now(UTC))
    dispatch = event_dispatcher(hooks_config)
    dispatch("gateway", "user_created", {
        "event_id": str(uuid.uuid4()), "occurred_at": now, "branch_id": None, "actor_id": None,
        "user": {"id": admin["id"], "email": "admin@example.ru", "name": "Админ", "role": "admin", "branch_id": None,
                 "active": True, "created_at": now, "updated_at": now}})
    receiver = receivers()
    receiver.stop()  # down from the start
    made = webhook(hooks, receiver.url)
    branch = str(uuid.uuid4())

    for _ in range(3):
        dispatch("clients", "client_created", client_created(branch))

    poll(lambda: hooks.get_webhook(ADMIN, made["id"])["status"] == "failing", timeout=15, message="failing")
    notices = poll(lambda: tasks.list_notifications(admin, {})["items"], timeout=10, message="the admin's notice")
    assert [(n["kind"], n["ref_type"], n["ref_id"]) for n in notices] == [("webhook_failed", "webhook", made["id"])]
    assert receiver.url in notices[0]["text"]
    deliveries = hooks.list_deliveries(ADMIN, made["id"])["items"]
    assert sorted(d["status"] for d in deliveries) == ["failed", "pending", "pending"]
    failed = next(d for d in deliveries if d["status"] == "failed")
    assert len(failed["attempts"]) >= 2 and all("refused" in a["error"].lower() for a in failed["attempts"])

    receiver.start()
    again = hooks.update_webhook(ADMIN, made["id"], {"active": True})

    assert again["status"] == "active"
    held = [d["id"] for d in reversed(deliveries) if d["status"] == "pending"]
    assert [r.headers["X-CRM-Delivery"] for r in receiver.wait_for(2)] == held


def test_private_and_loopback_urls_are_refused_unless_allowed(container_factory, hooks_config, rpc_proxy):
    hooks_config["CRM"]["webhook_allow_private"] = False
    container_factory(WebhooksService, hooks_config).start()
    hooks = rpc_proxy("webhooks")

    for url, why in (("http://127.0.0.1:8080/in", "loopback"), ("http://localhost/in", "localhost resolves to"),
                     ("http://169.254.169.254/latest/meta-data", "link-local"), ("http://[::1]/in", "loopback"),
                     ("http://10.0.0.5/in", "private"), ("ftp://files.example.com/in", "http and https")):
        with pytest.raises(ValidationError) as error:
            webhook(hooks, url)
        assert why in error.value.fields["url"][0], url
