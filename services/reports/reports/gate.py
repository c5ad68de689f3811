"""The rebuild gate: while ``crm-reports rebuild`` runs, events wait in their queues instead of being applied."""

from __future__ import annotations

from sqlalchemy import text

from reports.exceptions import Rebuilding
from reports.models import RebuildState

LOCK_KEY = 0x7265_706F  # pg advisory lock: handlers hold it shared while they apply an event


def raise_if_rebuilding(session, records: list[str] = ()) -> None:
    """First statement of every handler's transaction: an event that comes during a rebuild goes back to
    its queue (``Rebuilding`` is a temporary failure) and is applied after it. On PostgreSQL the handler
    holds the lock shared until it commits, so a rebuild starting now waits for it to finish; the
    ``records`` its events describe (e.g. ``client:<id>``) are locked in the same statement, so events of
    one record apply one at a time. They are locked in the order of their lock keys, the same in every
    transaction, so two transactions each applying many events never wait on each other in a circle."""
    if session.bind.dialect.name == "postgresql":
        running, started_at = session.execute(text(
            "SELECT pg_advisory_xact_lock_shared(:k), "
            "(SELECT count(pg_advisory_xact_lock(h)) FROM (SELECT DISTINCT hashtext('reports:' || r) AS h "
            "FROM unnest(CAST(:r AS text[])) AS r ORDER BY h) AS keys), s.running, s.started_at "
            "FROM (SELECT 1) AS one LEFT JOIN rebuild_state AS s ON s.id = 1"),
            {"k": LOCK_KEY, "r": list(records)}).one()[-2:]
    else:
        state = session.get(RebuildState, 1)
        running, started_at = (state.running, state.started_at) if state is not None else (False, None)
    if running:
        raise Rebuilding(f"the reports are being rebuilt (since {started_at:%Y-%m-%d %H:%M:%S} UTC)")
