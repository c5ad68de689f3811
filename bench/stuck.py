"""The stuck-deal scan over the seeded deals, run with the deals service's own code.

``deals.commands.raise_stuck_deals`` gets the unit of work the service gives it (crm_common's
WorkerDatabase: a session, ``emit`` into the outbox, ``commit``), pointed at the bench database, so the
time includes building and validating every deal_stuck event and writing it to the outbox. The
running deals service relays those events to the clients service as it would after its own timer.
"""

from __future__ import annotations

import re
import statistics
import time
from collections import defaultdict
from types import SimpleNamespace

import psycopg2
from sqlalchemy import create_engine, event, text
from sqlalchemy.orm import sessionmaker

from bench.plans import explain
from bench.system import database_url
from crm_common.clock import utcnow
from crm_common.db import WorkerDatabase
from deals import commands
from deals import repository as repo
from deals.models import OutboxMessage, ProcessedEvent

# Time passing, compressed: ``count`` open deals that were within their stage's limit reach it during the
# last 50 minutes, as between two timer ticks of a busy CRM. Only the deals row changes: the scan reads
# nothing else. Deals due within the next hour are left alone (the move scenario uses open deals due later).
ARM = text(
    """
    WITH picked AS (
        SELECT d.id, s.max_days, now() - interval '1 second' - random() * interval '50 minutes' AS due
        FROM deals d JOIN stages s ON s.id = d.stage_id
        WHERE d.status = 'open' AND d.stuck_raised_at IS NULL AND d.stage_due_at > now() + interval '1 hour'
        ORDER BY random()
        LIMIT :count
    )
    UPDATE deals d
    SET stage_due_at = picked.due, stage_entered_at = picked.due - picked.max_days * interval '1 day'
    FROM picked WHERE d.id = picked.id
    """
)
FROM_TABLE = re.compile(r"\bFROM\s+(\w+)", re.I)


def statement_kind(statement: str) -> str:
    """``UPDATE deals``, ``INSERT outbox``, ``SELECT deals``: what a statement does to which table."""
    words = statement.split()
    verb = words[0].upper()
    if verb == "UPDATE":
        return f"UPDATE {words[1]}"
    if verb == "INSERT":
        return f"INSERT {words[2]}"
    found = FROM_TABLE.search(statement)
    return f"{verb} {found.group(1)}" if found else verb


class TimedUnitOfWork(WorkerDatabase):
    """The service's unit of work, timing its commits (the outbox INSERTs and the COMMIT itself)."""

    commit_s = 0.0

    def commit(self) -> None:
        started = time.perf_counter()
        super().commit()
        self.commit_s += time.perf_counter() - started


class StatementTimer:
    """Seconds spent in the database per kind of statement (``UPDATE deals``, ``INSERT outbox``...)."""

    def __init__(self, engine):
        self.seconds: dict[str, float] = defaultdict(float)
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        conn.info["bench_started"] = time.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        self.seconds[statement_kind(statement)] += time.perf_counter() - conn.info.pop("bench_started")

    def take(self) -> dict[str, float]:
        taken = {kind: round(seconds, 3) for kind, seconds in sorted(self.seconds.items())}
        self.seconds.clear()
        return taken


def settle(timeout_s: float = 60.0) -> float:
    """Wait until the running services have relayed and handled the events of the last pass, so every pass
    starts on a quiet system; returns the seconds waited."""
    started = time.perf_counter()
    deals, clients = psycopg2.connect(database_url("deals")), psycopg2.connect(database_url("clients"))
    deals.autocommit = clients.autocommit = True
    handled = -1
    try:
        while time.perf_counter() - started < timeout_s:
            with deals.cursor() as cur:
                cur.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                pending = cur.fetchone()[0]
            with clients.cursor() as cur:
                cur.execute("SELECT count(*) FROM processed_events")
                now_handled = cur.fetchone()[0]
            if pending == 0 and now_handled == handled:
                break
            handled = now_handled
            time.sleep(1.0)
    finally:
        deals.close()
        clients.close()
    return round(time.perf_counter() - started, 1)


def measure(newly_stuck: int, passes: int = 3) -> dict:
    engine = create_engine(database_url("deals").replace("postgresql://", "postgresql+psycopg2://"))
    sessions = sessionmaker(engine, expire_on_commit=False)
    # what crm_common.db.Database gives a worker, minus nameko: the relay is the running service's
    provider = SimpleNamespace(session_factory=sessions, reader_factory=sessions, outbox_model=OutboxMessage,
                               processed_model=ProcessedEvent, command_model=None, engine=engine,
                               wake_relay=lambda: None)

    def scan() -> tuple[int, float, float]:
        uow = TimedUnitOfWork(provider)
        try:
            started = time.perf_counter()
            raised = commands.raise_stuck_deals(uow)
            return raised, time.perf_counter() - started, uow.commit_s
        finally:
            uow.close()

    result: dict = {"newly_stuck": newly_stuck, "batch": 500, "passes": []}
    try:
        # deals that reached their limit since the seed (as during any minute) are raised first, unmeasured,
        # as the timer's previous tick would have: each measured pass then finds what was armed for it
        result["caught_up"] = scan()[0]
        settle()
        timer = StatementTimer(engine)
        for index in range(passes):
            with engine.begin() as conn:
                armed = conn.execute(ARM, {"count": newly_stuck}).rowcount
            if index == 0:
                result["due_query_plan"] = explain(sessions, lambda s: repo.due_for_stuck(s, utcnow(), 500))
            with sessions() as session:
                started = time.perf_counter()
                found = len(repo.due_for_stuck(session, utcnow(), 500))
                query_ms = (time.perf_counter() - started) * 1000
                session.rollback()
            timer.take()
            raised, elapsed, commit_s = scan()
            result["passes"].append({
                "armed": armed, "raised": raised, "scan_s": round(elapsed, 3), "commits_s": round(commit_s, 3),
                "sql_s": timer.take(), "due_query_ms": round(query_ms, 1), "due_query_rows": found,
                "settled_after_s": settle(),
            })
        raised, elapsed, _ = scan()
        result["empty_pass"] = {"raised": raised, "scan_s": round(elapsed, 3)}
    finally:
        engine.dispose()
    result["scan_s_median"] = statistics.median(p["scan_s"] for p in result["passes"])
    result["due_query_ms_median"] = statistics.median(p["due_query_ms"] for p in result["passes"])
    return result
