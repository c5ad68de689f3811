"""The rebuild gate: while ``crm-reports rebuild`` runs, events wait in their queues instead of being applied."""

from __future__ import annotations

from sqlalchemy import text

from reports.exceptions import Rebuilding
from reports.models import RebuildState

LOCK_KEY = 0x7265_706F  # pg advisory lock: handlers hold it shared while they apply an event


def raise_if_rebuilding(session, record: str | None = None) -> None:
    """First statement of every handler's transaction: an event that comes during a rebuild goes back to
    its queue (``Rebuilding`` is a temporary failure) and is applied after it. On PostgreSQL the handler
    holds the lock shared until it commits, so a rebuild starting now waits for it to finish; ``record``
    (e.g. ``client:<id>``) is locked in the same statement, so events of one record apply one at a time."""
    if session.bind.dialect.name == "postgresql":
        if record:
            session.execute(text("SELECT pg_advisory_xact_lock_shared(:k), pg_advisory_xact_lock(hashtext(:r))"),
                            {"k": LOCK_KEY, "r": f"reports:{record}"})
        else:
            session.execute(text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": LOCK_KEY})
    state = session.get(RebuildState, 1)
    if state is not None and state.running:
        raise Rebuilding(f"the reports are being rebuilt (since {state.started_at:%Y-%m-%d %H:%M:%S} UTC)")
