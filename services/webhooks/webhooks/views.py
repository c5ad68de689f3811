"""How webhooks and deliveries are shown: never the secret; a delivery with its attempts, looked up once per page."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from webhooks.models import Attempt, Delivery, Webhook
from webhooks.schemas import delivery_out, webhook_out


def status(hook: Webhook) -> str:
    if not hook.active:
        return "paused"
    return "failing" if hook.failing_since is not None else "active"


def webhook(hook: Webhook) -> dict:
    return webhook_out.dump({
        "id": hook.id, "url": hook.url, "events": hook.events, "branch_id": hook.branch_id, "active": hook.active,
        "status": status(hook), "failing_since": hook.failing_since, "failure_reason": hook.failure_reason,
        "created_by": hook.created_by, "created_at": hook.created_at, "updated_at": hook.updated_at,
    })


def ref(hook: Webhook) -> dict:
    """The webhook as its events carry it."""
    return {"id": hook.id, "url": hook.url, "events": list(hook.events), "branch_id": hook.branch_id}


def deliveries(session: Session, rows: list[Delivery], held: bool = False) -> list[dict]:
    """``held``: the webhook is paused or failing, so nothing is tried next until it is re-activated."""
    attempts: dict[int, list[Attempt]] = {row.seq: [] for row in rows}
    if rows:
        query = select(Attempt).where(Attempt.delivery_seq.in_(attempts)).order_by(Attempt.delivery_seq, Attempt.number)
        for attempt in session.scalars(query):
            attempts[attempt.delivery_seq].append(attempt)
    return [delivery(row, attempts[row.seq], held) for row in rows]


def delivery(row: Delivery, attempts: list[Attempt], held: bool = False) -> dict:
    return delivery_out.dump({
        "id": row.id, "webhook_id": row.webhook_id, "event": row.event_type, "event_id": row.event_id,
        "occurred_at": row.occurred_at, "status": row.status, "attempt_count": row.attempt_count,
        "next_attempt_at": row.next_attempt_at if row.status == "pending" and not held else None,
        "delivered_at": row.delivered_at, "created_at": row.created_at,
        "attempts": [{"number": a.number, "at": a.at, "duration_ms": a.duration_ms, "status_code": a.status_code,
                      "error": a.error} for a in attempts],
    })
