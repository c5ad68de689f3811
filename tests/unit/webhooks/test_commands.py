"""Managing webhooks, turning events into deliveries, and recording what each attempt came to."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from crm_common.errors import BadRequest, Forbidden, ValidationError
from crm_common.schemas import PageQuerySchema
from tests.unit.webhooks.conftest import POLICY, SECRET
from webhooks import commands, domain
from webhooks.exceptions import WebhookNotFound
from webhooks.models import Delivery, Webhook
from webhooks.sender import Outcome

OK = Outcome(True, 204, None, 12.0)
DOWN = Outcome(False, None, "connection refused", 1.0)


def page(**filters):
    return {**PageQuerySchema().load({}), **filters}


def deliveries(office, webhook_id, **query):
    return office.uow.read(commands.list_deliveries, office.admin, webhook_id, query)["items"]


def attempt(office, outcome, now=None):
    """What a delivery worker does once: lease one due webhook with its request, record the outcome."""
    jobs = office.uow.call(commands.claim, 1, POLICY, office.box)
    if not jobs:
        return None
    office.uow.call(commands.finish, jobs[0], outcome, now or datetime.now(UTC), POLICY)
    return jobs[0]


def make_due(office, period_over=False):
    """Time passes: every pending delivery and webhook is due now (and, with ``period_over``, the retry period of
    the deliveries tried so far is over)."""
    past = datetime.now(UTC) - timedelta(seconds=1)
    with office.uow.transaction() as session:
        session.execute(update(Delivery).where(Delivery.status == "pending").values(next_attempt_at=past))
        session.execute(update(Webhook).where(Webhook.next_attempt_at.is_not(None)).values(next_attempt_at=past))
        if period_over:
            session.execute(update(Delivery).where(Delivery.first_attempt_at.is_not(None)).values(
                first_attempt_at=past - timedelta(seconds=POLICY.retry_for_s)))
    office.uow.close()


# ---- managing

def test_a_new_webhook_shows_everything_but_its_secret_which_is_stored_sealed(office):
    hook = office.webhook(events=["deal_won", "client_created", "deal_won"])

    assert hook["status"] == "active" and hook["active"] is True and hook["branch_id"] is None
    assert hook["events"] == ["deal_won", "client_created"]
    assert "secret" not in hook and SECRET not in str(hook)
    stored = office.uow.read(lambda s: s.get(Webhook, hook["id"]).secret)
    assert SECRET not in stored and office.box.open(stored, hook["id"]) == SECRET


@pytest.mark.parametrize(("body", "field"), [
    ({"url": "ftp://erp.example.com/in"}, "url"),
    ({"events": ["client_created", "client_exploded"]}, "events.1"),
    ({"events": []}, "events"),
    ({"secret": "short"}, "secret"),
    ({"secret": "has spaces in the middle"}, "secret"),
    ({"branch_id": "not-an-id"}, "branch_id"),
    ({"surprise": True}, "surprise"),
])
def test_bad_input_is_refused_naming_the_field(office, body, field):
    raw = {"url": "https://erp.example.com/hooks", "events": ["deal_won"], "secret": SECRET, **body}
    with pytest.raises(ValidationError) as error:
        commands.load_new_webhook(raw)
        raise commands.url_refused(domain.UrlRefused("ftp"))  # what the entrypoint does with a refused URL
    assert field in error.value.fields


def test_only_an_administrator_names_another_branch_and_a_manager_manages_nothing(office):
    assert office.webhook(branch_id=office.south)["branch_id"] == office.south
    assert office.webhook(office.head)["branch_id"] == office.north
    with pytest.raises(Forbidden):
        office.webhook(office.head, branch_id=office.south)
    with pytest.raises(Forbidden):
        office.webhook(office.manager)


def test_a_head_sees_only_the_branchs_webhooks(office):
    everywhere = office.webhook()
    north = office.webhook(office.head)

    listed = office.uow.read(commands.list_webhooks, office.head, page())["items"]
    assert [hook["id"] for hook in listed] == [north["id"]]
    with pytest.raises(WebhookNotFound):
        office.uow.read(commands.get_webhook, office.head, everywhere["id"])
    with pytest.raises(WebhookNotFound):
        office.uow.read(commands.get_webhook, office.south_head, north["id"])


def test_webhooks_are_listed_by_status_and_event(office):
    won = office.webhook(events=["deal_won"])
    created = office.webhook(events=["client_created"])
    office.uow.call(commands.update_webhook, office.admin, created["id"], {"active": False}, office.box)

    def listed(**filters):
        return [hook["id"] for hook in office.uow.read(commands.list_webhooks, office.admin, page(**filters))["items"]]

    assert listed() == [created["id"], won["id"]]
    assert listed(event="deal_won") == [won["id"]]
    assert listed(status="paused") == [created["id"]]
    assert listed(status="active") == [won["id"]]


def test_a_webhook_is_changed_its_secret_replaced_and_deleting_it_leaves_nothing(office):
    hook = office.webhook()
    changed = office.uow.call(commands.update_webhook, office.admin, hook["id"], commands.load_changes(
        {"url": "https://crm-in.example.com/v2", "events": ["deal_lost"], "secret": "whsec_a_brand_new_one_42"}),
        office.box)
    assert (changed["url"], changed["events"]) == ("https://crm-in.example.com/v2", ["deal_lost"])
    stored = office.uow.read(lambda s: s.get(Webhook, hook["id"]).secret)
    assert office.box.open(stored, hook["id"]) == "whsec_a_brand_new_one_42"
    with pytest.raises(ValidationError):
        commands.load_changes({})

    office.record("deal_lost", office.event("deal_lost"))
    office.uow.call(commands.delete_webhook, office.admin, hook["id"])

    with pytest.raises(WebhookNotFound):
        office.uow.read(commands.get_webhook, office.admin, hook["id"])
    with pytest.raises(WebhookNotFound):
        deliveries(office, hook["id"])


# ---- events become deliveries

def test_an_event_delivered_twice_makes_one_delivery_per_matching_webhook(office):
    every = office.webhook()
    north = office.webhook(office.head)
    office.webhook(office.south_head)
    office.webhook(events=["deal_won"])
    event = office.event("client_created")

    assert office.record("client_created", event) == 2
    assert office.record("client_created", dict(event)) == 0

    for hook in (every, north):
        (delivery,) = deliveries(office, hook["id"])
        assert (delivery["event"], delivery["event_id"], delivery["status"]) == ("client_created", event["event_id"], "pending")


def test_a_paused_webhook_records_nothing_and_a_failing_one_holds_what_comes(office):
    paused = office.webhook()
    office.uow.call(commands.update_webhook, office.admin, paused["id"], {"active": False}, office.box)
    failing = office.webhook()
    with office.uow.transaction() as session:
        session.execute(update(Webhook).where(Webhook.id == failing["id"]).values(failing_since=datetime.now(UTC)))
    office.uow.close()

    office.record()

    assert deliveries(office, paused["id"]) == []
    (held,) = deliveries(office, failing["id"])
    assert held["status"] == "pending" and held["next_attempt_at"] is None  # nothing is tried while failing
    assert attempt(office, OK) is None


def test_a_delivery_is_sent_signed_and_recorded_with_its_attempt(office):
    hook = office.webhook()
    event = office.event()
    office.record("client_created", event)
    jobs = office.uow.call(commands.claim, 10, POLICY, office.box)
    assert [job.webhook_id for job in jobs] == [hook["id"]]
    assert office.uow.call(commands.claim, 10, POLICY, office.box) == []  # leased: no second worker takes it

    job = jobs[0]
    assert office.uow.call(commands.finish, job, OK, datetime.now(UTC), POLICY) == ("delivered", None)

    assert domain.verify(SECRET, job.headers["X-CRM-Signature"], job.payload, now=datetime.now(UTC).timestamp())
    (delivery,) = deliveries(office, hook["id"])
    assert job.headers["X-CRM-Delivery"] == delivery["id"] and job.url == hook["url"]
    assert delivery["status"] == "delivered" and delivery["delivered_at"] and delivery["next_attempt_at"] is None
    assert [(a["number"], a["status_code"], a["error"]) for a in delivery["attempts"]] == [(1, 204, None)]
    assert attempt(office, OK) is None  # nothing more to send


def test_deliveries_of_a_webhook_go_one_at_a_time_in_order_and_a_failure_holds_the_ones_after_it(office):
    hook = office.webhook()
    events = [office.event() for _ in range(3)]
    for event in events:
        office.record("client_created", event)

    first = attempt(office, DOWN)
    assert attempt(office, OK) is None  # the first waits for its retry; the others wait behind it

    make_due(office)
    sent = [attempt(office, OK) for _ in range(3)]

    by_id = {d["id"]: d["event_id"] for d in deliveries(office, hook["id"])}
    assert sent[0].delivery_id == first.delivery_id
    assert [by_id[job.delivery_id] for job in sent] == [event["event_id"] for event in events]
    assert [d["status"] for d in deliveries(office, hook["id"])] == ["delivered"] * 3


def test_a_worker_sends_a_webhooks_backlog_under_one_lease_and_ends_it_when_nothing_is_due(office):
    hook = office.webhook()
    for _ in range(3):
        office.record()
    (job,) = office.uow.call(commands.claim, 5, POLICY, office.box)

    sent = [job.delivery_id]
    while job is not None:
        result, job = office.uow.call(commands.finish, job, OK, datetime.now(UTC), POLICY, office.box)
        assert result == "delivered"
        if job is not None:
            sent.append(job.delivery_id)
            assert office.uow.call(commands.claim, 5, POLICY, office.box) == []  # still leased

    assert sent == [d["id"] for d in reversed(deliveries(office, hook["id"]))]
    assert office.uow.read(lambda s: s.get(Webhook, hook["id"]).lease_token) is None


def test_a_failed_attempt_is_retried_later_with_its_error_recorded(office):
    hook = office.webhook()
    office.record()

    attempt(office, Outcome(False, 500, "HTTP 500: upstream down", 40.0))

    (delivery,) = deliveries(office, hook["id"])
    assert delivery["status"] == "pending" and delivery["attempt_count"] == 1
    assert delivery["attempts"][0]["status_code"] == 500 and "upstream down" in delivery["attempts"][0]["error"]
    next_at = datetime.fromisoformat(delivery["next_attempt_at"].replace("Z", "+00:00"))
    assert timedelta(seconds=4) < next_at - datetime.now(UTC) <= timedelta(seconds=10)


def test_after_its_retry_period_the_webhook_is_failing_and_the_administrators_are_told_once(office):
    hook = office.webhook()
    office.record()
    office.record()

    attempt(office, DOWN)
    make_due(office, period_over=True)
    attempt(office, DOWN)

    shown = office.uow.read(commands.get_webhook, office.admin, hook["id"])
    assert shown["status"] == "failing" and shown["failing_since"] and shown["failure_reason"] == "connection refused"
    statuses = [d["status"] for d in deliveries(office, hook["id"])]
    assert statuses == ["pending", "failed"]  # newest first: the one behind it is held
    failed = [payload for kind, payload in office.uow.events if kind == "webhook_failed"]
    assert len(failed) == 1
    assert failed[0]["webhook"] == {"id": hook["id"], "url": hook["url"], "events": hook["events"], "branch_id": None}
    assert (failed[0]["attempts"], failed[0]["error"]) == (2, "connection refused")
    make_due(office)
    assert attempt(office, OK) is None


def test_re_activating_a_failing_webhook_sends_what_it_held_with_a_new_retry_period(office):
    hook = office.webhook()
    office.record()
    office.record()
    attempt(office, DOWN)
    make_due(office, period_over=True)
    attempt(office, DOWN)

    again = office.uow.call(commands.update_webhook, office.admin, hook["id"], {"active": True}, office.box)

    assert again["status"] == "active" and again["failing_since"] is None and again["failure_reason"] is None
    job = attempt(office, DOWN)
    assert job is not None
    held = next(d for d in deliveries(office, hook["id"]) if d["id"] == job.delivery_id)
    assert held["status"] == "pending" and held["next_attempt_at"]  # retried, not given up: a new period


def test_a_lost_lease_records_nothing(office):
    office.webhook()
    office.record()
    (job,) = office.uow.call(commands.claim, 1, POLICY, office.box)
    with office.uow.transaction() as session:  # the lease ran out and another worker took the webhook
        session.execute(update(Webhook).values(lease_token="another-worker"))
    office.uow.close()

    assert office.uow.call(commands.finish, job, OK, datetime.now(UTC), POLICY) == ("lost", None)
    assert office.uow.read(lambda s: s.scalars(select(Delivery.attempt_count)).one()) == 0


def test_a_secret_no_key_opens_fails_the_attempt_without_calling_the_receiver(office, box):
    from webhooks.secrets import SecretBox

    hook = office.webhook()
    office.record()
    office.box = SecretBox("a-different-key-nobody-kept-0123456789")

    (job,) = office.uow.call(commands.claim, 1, POLICY, office.box)

    assert job.unreadable and "not configured" in job.unreadable
    assert deliveries(office, hook["id"])[0]["status"] == "pending"


def test_a_deliveries_query_is_checked(office):
    hook = office.webhook()
    with pytest.raises(BadRequest):
        deliveries(office, hook["id"], status="lost")
    assert deliveries(office, hook["id"], status="pending") == []


def test_an_event_no_webhook_takes_writes_nothing_not_even_its_delivery(office):
    office.webhook(events=["deal_won"])
    office.webhook(office.south_head)

    event = office.event("client_created")

    assert office.record("client_created", event) == 0

    assert office.uow.read(lambda s: s.get(office.uow.processed_model, event["event_id"])) is None
    assert office.uow.read(lambda s: s.scalars(select(Delivery)).all()) == []
