"""The rebuild gate: while ``crm-reports rebuild`` runs, events wait in their queues instead of being applied."""

from __future__ import annotations

from sqlalchemy import text

from reports.exceptions import Rebuilding
from reports.models import RebuildState

LOCK_KEY = 0x7265_706F  # pg advisory lock: handlers hold it shared while they apply an event


def raise_if_rebuilding(session) -> None:
    """First statement of every handler's transaction: an event that comes during a rebuild goes back to
    its queue (``Rebuilding`` is a temporary failure) and is applied after it. On PostgreSQL the handler
    holds the lock shared until it commits, so a rebuild starting now waits for it to finish."""
    if session.bind.dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": LOCK_KEY})
    state = session.get(RebuildState, 1)
    if state is not None and state.running:
        raise Rebuilding(f"the reports are being rebuilt (since {state.started_at:%Y-%m-%d %H:%M:%S} UTC)")
