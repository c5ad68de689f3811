"""Outgoing webhooks over HTTP, with a receiver this test starts on 127.0.0.1 (the e2e system runs with
CRM_WEBHOOK_ALLOW_PRIVATE=true and retries after a fraction of a second): signed deliveries, and the ones a
receiver missed while it was down, delivered by retry once it is back."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from crm_common.testing.fixtures import poll
from crm_common.testing.receiver import WebhookReceiver
from crm_common.testing.system import phone_number, unique

SECRET = "whsec_e2e_0123456789abcdef"


def verify(secret: str, signature_header: str, body: bytes, tolerance_s: int = 300) -> bool:
    """What a receiver does, as docs/integrations.md shows it."""
    parts = dict(item.split("=", 1) for item in signature_header.split(","))
    timestamp = int(parts["t"])
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return abs(time.time() - timestamp) <= tolerance_s and hmac.compare_digest(expected, parts["v1"])


@pytest.fixture
def receiver():
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def hooks(admin):
    """``hooks(url, branch_id, events=[...])`` makes a webhook; every one made is deleted after the test."""
    made = []

    def make(url, branch_id, events=("client_created",), secret=SECRET):
        made.append(admin.ok("POST", "/webhooks", {"url": url, "events": list(events), "secret": secret,
                                                   "branch_id": branch_id}, status=201))
        return made[-1]

    yield make
    for hook in made:
        admin.delete(f"/webhooks/{hook['id']}")


def new_client(api) -> dict:
    return api.ok("POST", "/clients", {"kind": "company", "name": unique("ООО "), "phones": [phone_number()]},
                  status=201)


def deliveries(admin, hook) -> list[dict]:
    return admin.ok("GET", f"/webhooks/{hook['id']}/deliveries")["items"]


def test_a_receiver_gets_signed_deliveries_of_its_events_from_its_branch(admin, new_branch, receiver, hooks):
    ours, theirs = new_branch(managers=1), new_branch(managers=1)
    hook = hooks(receiver.url, ours.id, events=["client_created", "client_updated"])
    assert (hook["status"], hook["branch_id"], hook["events"]) == ("active", ours.id, ["client_created", "client_updated"])
    assert "secret" not in hook and SECRET not in json.dumps(admin.ok("GET", f"/webhooks/{hook['id']}"))

    client = new_client(ours.managers[0])
    new_client(theirs.managers[0])
    ours.managers[0].ok("PATCH", f"/clients/{client['id']}", {"name": "ООО Ромашка и партнёры"})

    created, updated = receiver.wait_for(2)
    for got, event in ((created, "client_created"), (updated, "client_updated")):
        assert verify(SECRET, got.headers["X-CRM-Signature"], got.body)
        body = json.loads(got.body)
        assert (body["event"], got.headers["X-CRM-Event"]) == (event, event)
        assert body["id"] == got.headers["X-CRM-Delivery"] and body["data"]["client"]["id"] == client["id"]
        assert abs(int(got.headers["X-CRM-Timestamp"]) - time.time()) < 60 and body["occurred_at"].endswith("Z")
    assert json.loads(updated.body)["data"]["changed"] == ["name"]
    shown = poll(lambda: [d for d in deliveries(admin, hook) if d["status"] == "delivered"][1:] and deliveries(admin, hook),
                 message="both deliveries recorded")
    assert [(d["event"], d["status"], d["attempts"][0]["status_code"]) for d in shown] == [
        ("client_updated", "delivered", 204), ("client_created", "delivered", 204)]
    assert not verify("another-secret-entirely-00", created.headers["X-CRM-Signature"], created.body)
    time.sleep(0.5)  # nothing of the other branch comes late either
    assert len(receiver.requests) == 2


def test_a_receiver_down_for_a_while_gets_what_it_missed_by_retry_in_order(admin, new_branch, receiver, hooks):
    branch = new_branch(managers=1)
    hook = hooks(receiver.url, branch.id)
    receiver.stop()

    made = [new_client(branch.managers[0]) for _ in range(3)]

    def retried():
        oldest = deliveries(admin, hook)[-1]
        return oldest if len(oldest["attempts"]) >= 2 else None

    oldest = poll(retried, timeout=20, message="a failed delivery tried again")
    assert oldest["status"] == "pending" and oldest["next_attempt_at"]
    assert all(a["status_code"] is None and "refused" in a["error"].lower() for a in oldest["attempts"])
    assert len(deliveries(admin, hook)) == 3

    receiver.start()  # back, on the same port

    got = receiver.wait_for(3, timeout=20)
    assert [json.loads(r.body)["data"]["client"]["id"] for r in got] == [c["id"] for c in made]
    assert all(verify(SECRET, r.headers["X-CRM-Signature"], r.body) for r in got)
    final = poll(lambda: all(d["status"] == "delivered" for d in deliveries(admin, hook)) and deliveries(admin, hook),
                 message="every delivery recorded as delivered")
    assert final[-1]["attempt_count"] >= 3 and final[-1]["attempts"][-1]["status_code"] == 204


def test_a_webhook_is_paused_resumed_given_a_new_secret_and_deleted(admin, new_branch, receiver, hooks):
    branch = new_branch(managers=1)
    hook = hooks(receiver.url, branch.id)

    paused = admin.ok("PATCH", f"/webhooks/{hook['id']}", {"active": False})
    assert (paused["status"], paused["active"]) == ("paused", False)
    new_client(branch.managers[0])
    assert hook["id"] in [h["id"] for h in admin.ok("GET", "/webhooks?status=paused&limit=200")["items"]]

    resumed = admin.ok("PATCH", f"/webhooks/{hook['id']}", {"active": True, "secret": "whsec_rotated_secret_9876"})
    assert resumed["status"] == "active" and "secret" not in resumed
    client = new_client(branch.managers[0])
    (got,) = receiver.wait_for(1)
    assert json.loads(got.body)["data"]["client"]["id"] == client["id"]  # nothing from while it was paused
    assert verify("whsec_rotated_secret_9876", got.headers["X-CRM-Signature"], got.body)
    assert not verify(SECRET, got.headers["X-CRM-Signature"], got.body)

    gone = admin.ok("DELETE", f"/webhooks/{hook['id']}")
    assert gone["id"] == hook["id"]
    assert admin.get(f"/webhooks/{hook['id']}").status_code == 404
    assert admin.get(f"/webhooks/{hook['id']}/deliveries").status_code == 404
    new_client(branch.managers[0])
    time.sleep(0.5)
    assert len(receiver.requests) == 1


@pytest.mark.parametrize(("body", "field"), [
    ({"url": "ftp://files.example.com/in"}, "url"),
    ({"url": "javascript:alert(1)"}, "url"),
    ({"url": "https://user:password@erp.example.com/in"}, "url"),
    ({"events": ["client_created", "client_vanished"]}, "events.1"),
    ({"events": []}, "events"),
    ({"secret": "too-short"}, "secret"),
    ({"branch_id": "6f1c8c36-7d0e-4a52-9a57-2f1e3c7a0b11"}, "branch_id"),
])
def test_a_bad_webhook_is_refused_naming_the_field(admin, body, field):
    request = {"url": "http://127.0.0.1:9/hooks", "events": ["deal_won"], "secret": SECRET, **body}

    response = admin.post("/webhooks", request)

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error" and field in error["fields"], error


def test_only_administrators_manage_webhooks(admin, world, hooks):
    hook = hooks("http://127.0.0.1:9/hooks", world.north.id)
    for api in (world.north.head, world.north.managers[0]):
        assert api.post("/webhooks", {"url": "http://127.0.0.1:9/x", "events": ["deal_won"],
                                      "secret": SECRET}).status_code == 403
        for method, path in (("GET", "/webhooks"), ("GET", f"/webhooks/{hook['id']}"),
                             ("PATCH", f"/webhooks/{hook['id']}"), ("DELETE", f"/webhooks/{hook['id']}"),
                             ("GET", f"/webhooks/{hook['id']}/deliveries")):
            assert api.request(method, path, json={"active": False} if method == "PATCH" else None).status_code == 403
    assert admin.get("/webhooks/6f1c8c36-7d0e-4a52-9a57-2f1e3c7a0b11").status_code == 404
    assert admin.patch(f"/webhooks/{hook['id']}", {}).status_code == 422
    assert admin.get(f"/webhooks/{hook['id']}/deliveries?status=lost").status_code == 400
