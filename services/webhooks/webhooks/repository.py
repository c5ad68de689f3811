"""Queries of the webhooks service, taking a Session; what a caller may see is applied in SQL."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, text, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from crm_common.caller import Caller
from crm_common.pagination import SortKey, paginate
from webhooks.models import Delivery, Webhook

WEBHOOK_KEYS = (SortKey(Webhook.created_at, descending=True, kind="datetime"), SortKey(Webhook.id, descending=True))
DELIVERY_KEYS = (SortKey(Delivery.seq, descending=True, kind="int"),)


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def visible(caller: Caller):
    """An administrator sees every webhook; anyone else (a head, a branch's API key) their branch's only."""
    return true() if caller.is_admin else Webhook.branch_id == caller.branch_id


def get_webhook(session: Session, caller: Caller, webhook_id: str, lock: bool = False) -> Webhook | None:
    query = select(Webhook).where(Webhook.id == webhook_id, visible(caller))
    if lock and is_postgres(session):
        query = query.with_for_update()
    return session.scalars(query).first()


def list_webhooks(session: Session, caller: Caller, filters: dict, dump) -> dict:
    query = select(Webhook).where(visible(caller))
    if filters.get("branch_id"):
        query = query.where(Webhook.branch_id == filters["branch_id"])
    status = filters.get("status")
    if status == "paused":
        query = query.where(Webhook.active.is_(False))
    elif status == "failing":
        query = query.where(Webhook.active.is_(True), Webhook.failing_since.is_not(None))
    elif status == "active":
        query = query.where(Webhook.active.is_(True), Webhook.failing_since.is_(None))
    if filters.get("event"):
        query = query.where(subscribed_to(session, filters["event"]))
    return paginate(session, query, WEBHOOK_KEYS, filters.get("cursor"), filters["limit"], dump)


def subscribed_to(session: Session, event_type: str):
    if is_postgres(session):
        return Webhook.events.contains([event_type])  # JSONB @>
    return text("EXISTS (SELECT 1 FROM json_each(webhooks.events) WHERE json_each.value = :event)").bindparams(
        event=event_type)


def list_deliveries(session: Session, webhook_id: str, filters: dict) -> dict:
    query = select(Delivery).where(Delivery.webhook_id == webhook_id)
    for name, column in (("status", Delivery.status), ("event", Delivery.event_type)):
        if filters.get(name):
            query = query.where(column == filters[name])
    return paginate(session, query, DELIVERY_KEYS, filters.get("cursor"), filters["limit"], lambda row: row)


def recording_webhooks(session: Session) -> list[Webhook]:
    """The webhooks that take new events: every active one, failing or not (a failing one holds them)."""
    return list(session.scalars(select(Webhook).where(Webhook.active.is_(True))))


def add_deliveries(session: Session, rows: list[dict], now: datetime) -> int:
    """Insert deliveries, skipping any (event, webhook) already recorded; make each webhook that had nothing
    pending due now. Returns how many were new."""
    if not rows:
        return 0
    insert = pg_insert if is_postgres(session) else sqlite_insert
    statement = insert(Delivery).values(rows).on_conflict_do_nothing(index_elements=["event_id", "webhook_id"])
    added = session.execute(statement.returning(Delivery.webhook_id)).scalars().all()
    if added:
        session.execute(
            update(Webhook).where(Webhook.id.in_(set(added)), Webhook.next_attempt_at.is_(None))
            .values(next_attempt_at=now)
        )
    return len(added)


def head(session: Session, webhook_id: str) -> Delivery | None:
    """The webhook's first pending delivery: the only one that may be sent now."""
    query = (select(Delivery).where(Delivery.webhook_id == webhook_id, Delivery.status == "pending")
             .order_by(Delivery.seq).limit(1))
    return session.scalars(query).first()


def claim(session: Session, limit: int, now: datetime, lease_until: datetime, tokens) -> list[tuple[str, str]]:
    """Lease up to ``limit`` webhooks whose first pending delivery is due and that nobody is sending for:
    ``[(webhook id, lease token)]``. On PostgreSQL rows another process is claiming are skipped (SKIP LOCKED)."""
    query = (
        select(Webhook.id)
        .where(Webhook.active.is_(True), Webhook.failing_since.is_(None), Webhook.next_attempt_at <= now,
               (Webhook.lease_until.is_(None)) | (Webhook.lease_until < now))
        .order_by(Webhook.next_attempt_at)
        .limit(limit)
    )
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    claimed = []
    for webhook_id in session.scalars(query).all():
        token = next(tokens)
        session.execute(update(Webhook).where(Webhook.id == webhook_id)
                        .values(lease_until=lease_until, lease_token=token))
        claimed.append((webhook_id, token))
    return claimed


def leased(session: Session, webhook_id: str, token: str) -> Webhook | None:
    """The webhook if this lease still holds it (locked on PostgreSQL, so a new event waits for our update)."""
    query = select(Webhook).where(Webhook.id == webhook_id, Webhook.lease_token == token)
    if is_postgres(session):
        query = query.with_for_update()
    return session.scalars(query).first()


def release(session: Session, hook: Webhook) -> None:
    """End the lease and make the webhook due when its (new) first pending delivery is."""
    first = head(session, hook.id)
    hook.next_attempt_at = first.next_attempt_at if first is not None else None
    hook.lease_until = None
    hook.lease_token = None


def restart_pending(session: Session, hook: Webhook, now: datetime) -> None:
    """A re-activated webhook: its held deliveries get a new retry period, starting now, in their order."""
    session.execute(
        update(Delivery).where(Delivery.webhook_id == hook.id, Delivery.status == "pending")
        .values(first_attempt_at=None, failures=0, next_attempt_at=now)
    )
    hook.next_attempt_at = now if head(session, hook.id) is not None else None


def purge(session: Session, now: datetime, keep_days: int) -> tuple[int, int]:
    """Forget finished deliveries older than ``keep_days``; give up on pending ones as old (a webhook failing or
    paused all that time). Returns (given up, deleted)."""
    horizon = now - timedelta(days=keep_days)
    expired = session.execute(
        update(Delivery).where(Delivery.status == "pending", Delivery.created_at < horizon)
        .values(status="failed", finished_at=now, next_attempt_at=None)
    ).rowcount
    deleted = session.execute(delete(Delivery).where(Delivery.finished_at < horizon)).rowcount
    return expired, deleted
