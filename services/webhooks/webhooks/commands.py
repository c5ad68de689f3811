"""Use cases of the webhooks service. Each takes the unit of work (``uow``: session, emit, commit, ...), the
caller and raw input; the entrypoint or the delivery worker around it commits.

Delivering takes short transactions, none held open while a receiver is called: ``claim`` leases due webhooks
and builds the signed request of each one's first pending delivery; ``finish`` records an attempt's outcome and
either ends the lease or, when the webhook's next delivery is already due, builds that one under the same lease.
"""

from __future__ import annotations

import itertools
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from crm_common.caller import Caller
from crm_common.clock import utcnow
from crm_common.errors import BadRequest, Forbidden, ValidationError, require
from crm_common.schemas import iso, load_or_raise, new_id
from webhooks import domain, views
from webhooks import repository as repo
from webhooks.exceptions import WebhookNotFound
from webhooks.models import Attempt, Delivery, Webhook
from webhooks.schemas import DeliveryQuerySchema, WebhookCreateSchema, WebhookUpdateSchema
from webhooks.secrets import SecretBox, SecretUnreadable

LEASE_MARGIN_S = 30.0


@dataclass(frozen=True)
class Policy:
    retry_base_s: float = 10.0
    retry_for_s: float = 24 * 3600.0
    timeout_s: float = 10.0

    @classmethod
    def from_settings(cls, settings) -> Policy:
        return cls(settings.webhook_retry_base_s, settings.webhook_retry_for_s, settings.webhook_timeout_s)

    @property
    def lease_s(self) -> float:
        return self.timeout_s + LEASE_MARGIN_S


# ---- managing webhooks

def load_new_webhook(data) -> dict:
    data = load_or_raise(WebhookCreateSchema, data)
    data["events"] = domain.unique_events(data["events"])
    return data


def load_changes(changes) -> dict:
    changes = load_or_raise(WebhookUpdateSchema, changes)
    if "events" in changes:
        changes["events"] = domain.unique_events(changes["events"])
    return changes


def url_refused(error: domain.UrlRefused) -> ValidationError:
    return ValidationError("the URL cannot receive webhooks", fields={"url": [str(error)]})


def _may_manage(caller: Caller) -> None:
    if caller.is_manager:
        raise Forbidden("managing webhooks needs an administrator")


def _branch_for(caller: Caller, requested: str | None) -> str | None:
    """An administrator names any branch, or none for every branch's events; anyone else gets their own."""
    if caller.is_admin:
        return requested
    if requested and requested != caller.branch_id:
        raise Forbidden("only an administrator may manage another branch's webhooks")
    return caller.branch_id


def create_webhook(uow, caller: Caller, data: dict, box: SecretBox) -> dict:
    """``data`` as ``load_new_webhook`` returns it, its URL already checked (``sender.check_url``)."""
    _may_manage(caller)
    now = utcnow()
    hook = Webhook(id=new_id(), branch_id=_branch_for(caller, data["branch_id"]), url=data["url"],
                   events=data["events"], active=True, created_by=caller.id, created_at=now, updated_at=now)
    hook.secret = box.seal(data["secret"], hook.id)
    uow.session.add(hook)
    uow.session.flush()
    return views.webhook(hook)


def require_webhook(session, caller: Caller, webhook_id: str, lock: bool = False) -> Webhook:
    return require(repo.get_webhook(session, caller, webhook_id, lock=lock), WebhookNotFound)


def update_webhook(uow, caller: Caller, webhook_id: str, changes: dict, box: SecretBox) -> dict:
    """``changes`` as ``load_changes`` returns them (a new URL already checked). ``active: true`` also
    re-activates a failing webhook: its held deliveries are sent, each with a new retry period."""
    _may_manage(caller)
    session = uow.session
    hook = require_webhook(session, caller, webhook_id, lock=True)
    now = utcnow()
    for name in ("url", "events"):
        if name in changes:
            setattr(hook, name, changes[name])
    if "secret" in changes:
        hook.secret = box.seal(changes["secret"], hook.id)
    if changes.get("active") is False:
        hook.active = False
    elif changes.get("active") is True and (not hook.active or hook.failing_since is not None):
        hook.active = True
        hook.failing_since = hook.failure_reason = None
        repo.restart_pending(session, hook, now)
    hook.updated_at = now
    session.flush()
    return views.webhook(hook)


def delete_webhook(uow, caller: Caller, webhook_id: str) -> dict:
    """Deletes the webhook with its deliveries; a delivery being sent at that moment is not recorded."""
    _may_manage(caller)
    session = uow.session
    hook = require_webhook(session, caller, webhook_id, lock=True)
    shown = views.webhook(hook)
    session.delete(hook)
    session.flush()
    return {**shown, "active": False}


def get_webhook(session, caller: Caller, webhook_id: str) -> dict:
    _may_manage(caller)
    return views.webhook(require_webhook(session, caller, webhook_id))


def list_webhooks(session, caller: Caller, filters: dict) -> dict:
    _may_manage(caller)
    return repo.list_webhooks(session, caller, filters, views.webhook)


def list_deliveries(session, caller: Caller, webhook_id: str, query) -> dict:
    """Newest first, each with its attempts."""
    _may_manage(caller)
    hook = require_webhook(session, caller, webhook_id)
    filters = load_or_raise(DeliveryQuerySchema, query or {}, BadRequest)
    page = repo.list_deliveries(session, hook.id, filters)
    held = not hook.active or hook.failing_since is not None
    return {"items": views.deliveries(session, page["items"], held), "next_cursor": page["next_cursor"]}


def reseal_secrets(uow, box: SecretBox) -> int:
    """Seal every secret sealed with an old key (CRM_WEBHOOK_OLD_KEYS) with the current one."""
    moved = 0
    for hook in uow.session.query(Webhook).all():
        if not box.is_current(hook.secret):
            hook.secret = box.seal(box.open(hook.secret, hook.id), hook.id)
            moved += 1
    return moved


# ---- events become deliveries

def record_event(uow, event_type: str, payload: dict) -> int:
    """One pending delivery per webhook that takes this event, once per event (``first_delivery``, and the
    unique (event, webhook) pair for good measure). Returns how many were recorded. Whether any active webhook
    takes the event is asked first, in one read without a transaction: most events go to none (an import's tens
    of thousands of ``client_created``), and a delivery that records nothing need not be remembered."""
    if not _taken(uow.reader, event_type, payload):
        return 0
    if not uow.first_delivery(payload["event_id"], event_type):
        return 0
    session = uow.session
    now = utcnow()
    occurred_at = datetime.fromisoformat(payload["occurred_at"].replace("Z", "+00:00"))
    rows = [
        {"id": new_id(), "webhook_id": hook.id, "event_id": payload["event_id"], "event_type": event_type,
         "occurred_at": occurred_at, "data": payload, "status": "pending", "attempt_count": 0, "failures": 0,
         "next_attempt_at": now, "created_at": now}
        for hook in repo.recording_webhooks(session)
        if domain.wants(hook.events, hook.branch_id, event_type, payload.get("branch_id"))
    ]
    return repo.add_deliveries(session, rows, now)


def _taken(session, event_type: str, payload: dict) -> bool:
    return any(domain.wants(hook.events, hook.branch_id, event_type, payload.get("branch_id"))
               for hook in repo.recording_webhooks(session))


# ---- delivering

@dataclass(frozen=True)
class Job:
    """One attempt to make: a leased webhook's first pending delivery, ready to send."""

    webhook_id: str
    token: str
    seq: int
    delivery_id: str
    event_type: str
    url: str
    payload: bytes
    headers: dict
    unreadable: str | None = None  # why the secret could not be opened: the attempt fails without a request


def claim(uow, limit: int, policy: Policy, box: SecretBox) -> list[Job]:
    """Lease up to ``limit`` due webhooks and prepare the request of each one's first pending delivery."""
    now = utcnow()
    tokens = (str(uuid.uuid4()) for _ in itertools.count())
    jobs = []
    for webhook_id, token in repo.claim(uow.session, limit, now, now + timedelta(seconds=policy.lease_s), tokens):
        job = _next_job(uow.session, uow.session.get(Webhook, webhook_id), token, box, now)
        if job is not None:
            jobs.append(job)
    return jobs


def _next_job(session, hook: Webhook, token: str, box: SecretBox, now: datetime) -> Job | None:
    """The request for the leased webhook's first pending delivery if it is due; else the lease ends."""
    first = repo.head(session, hook.id)
    if first is None or (first.next_attempt_at is not None and first.next_attempt_at > now):
        repo.release(session, hook)
        return None
    body = domain.body(first.id, first.event_type, iso(first.occurred_at), first.data)
    try:
        secret, unreadable = box.open(hook.secret, hook.id), None
    except SecretUnreadable as exc:
        secret, unreadable = "", str(exc)
    headers = domain.headers(secret, int(time.time()), first.id, first.event_type, body)
    return Job(hook.id, token, first.seq, first.id, first.event_type, hook.url, body, headers, unreadable)


def finish(uow, job: Job, outcome, at: datetime, policy: Policy, box: SecretBox | None = None) -> tuple[str, Job | None]:
    """Record one attempt: delivered, or tried again later, or given up (the webhook is then failing, its
    other deliveries held, and ``webhook_failed`` tells the administrators).

    Returns what happened and, given ``box``, the webhook's next delivery if it is due now: the worker keeps the
    lease and sends it next (one transaction per delivery while a webhook has a backlog); otherwise the lease ends.
    """
    session = uow.session
    hook = repo.leased(session, job.webhook_id, job.token)
    if hook is None:
        return "lost", None  # deleted meanwhile, or the lease ran out and another worker took over
    delivery = session.get(Delivery, job.seq)
    if delivery is None or delivery.status != "pending":
        repo.release(session, hook)
        return "lost", None
    now = utcnow()
    delivery.attempt_count += 1
    session.add(Attempt(delivery_seq=delivery.seq, number=delivery.attempt_count, at=at,
                        duration_ms=outcome.duration_ms, status_code=outcome.status_code,
                        error=None if outcome.ok else (outcome.error or "failed")[:1000]))
    if delivery.first_attempt_at is None:
        delivery.first_attempt_at = at
    if outcome.ok:
        delivery.status, delivery.delivered_at, delivery.finished_at = "delivered", now, now
        delivery.failures, delivery.next_attempt_at = 0, None
        result = "delivered"
    else:
        delivery.failures += 1
        delivery.next_attempt_at = domain.next_attempt(now, delivery.first_attempt_at, delivery.failures,
                                                       policy.retry_base_s, policy.retry_for_s)
        result = "retry"
        if delivery.next_attempt_at is None:
            delivery.status, delivery.finished_at = "failed", now
            _mark_failing(uow, hook, delivery, outcome.error or "failed", now)
            result = "failed"
    session.flush()
    if box is not None and result == "delivered":
        hook.lease_until = now + timedelta(seconds=policy.lease_s)
        return result, _next_job(session, hook, job.token, box, now)
    repo.release(session, hook)
    return result, None


def _mark_failing(uow, hook: Webhook, delivery: Delivery, error: str, now: datetime) -> None:
    if hook.failing_since is not None:
        return
    hook.failing_since, hook.failure_reason, hook.updated_at = now, error[:1000], now
    uow.emit("webhook_failed", {
        "branch_id": hook.branch_id, "actor_id": None, "webhook": views.ref(hook), "delivery_id": delivery.id,
        "attempts": delivery.attempt_count, "error": error[:1000],
    })


def purge(uow, keep_days: int) -> tuple[int, int]:
    return repo.purge(uow.session, utcnow(), keep_days)
