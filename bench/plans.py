"""EXPLAIN ANALYZE of the SQL the services really send: run their repository code against the bench
databases, capture its statements, and ask PostgreSQL for the plan of each SELECT.

This separates database time from everything else in a request's latency.
"""

from __future__ import annotations

import re
import time

from sqlalchemy import create_engine, event
from sqlalchemy.orm import sessionmaker

from bench.system import database_url
from crm_common.caller import Caller


def explain(sessions, work) -> list[dict]:
    """``work(session)`` runs (and is rolled back); each SELECT it sent comes back with its plan."""
    captured: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        captured.append((statement, parameters))

    with sessions() as session:
        engine = session.get_bind()
        event.listen(engine, "before_cursor_execute", capture)
        try:
            work(session)
        finally:
            event.remove(engine, "before_cursor_execute", capture)
        session.rollback()
        plans = []
        for statement, parameters in captured:
            if not statement.lstrip().upper().startswith("SELECT"):
                continue
            rows = session.connection().exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters).all()
            plan = "\n".join(row[0] for row in rows)
            found = re.search(r"Execution Time: ([\d.]+) ms", plan)
            plans.append({"sql": " ".join(statement.split()), "plan": plan,
                          "execution_ms": float(found.group(1)) if found else None})
        session.rollback()
    return plans


def _sessions(service: str):
    engine = create_engine(database_url(service).replace("postgresql://", "postgresql+psycopg2://"))
    return engine, sessionmaker(engine, expire_on_commit=False)


def service_plans(head: Caller, search_terms: list[str], deal_filter: tuple[str, str]) -> dict:
    """The search's SQL time over many terms with the plans of a typical and the slowest ones, and the plan of
    ``GET /deals?stage_id=&owner_id=``; all as the head sees them, without HTTP, RPC or serialisation."""
    from clients import repository as clients_repo
    from clients.domain import search_term
    from clients.schemas import client_query
    from crm_common.contracts.deals import DealQuerySchema
    from deals import views as deals_views

    def search(session, q: str):
        return clients_repo.list_clients(session, head, client_query.load({"q": q}), search_term(q, "RU"), lambda c: c)

    result: dict = {"search": [], "list_deals": None}
    engine, sessions = _sessions("clients")
    try:
        timed = []
        with sessions() as session:
            for q in search_terms:
                started = time.perf_counter()
                search(session, q)
                timed.append(((time.perf_counter() - started) * 1000, q))
                session.rollback()
        timed.sort()
        ms = [t for t, _ in timed]
        result["search_timings"] = {
            "terms": len(ms), "p50_ms": round(ms[len(ms) // 2], 1), "p90_ms": round(ms[int(len(ms) * 0.9)], 1),
            "p99_ms": round(ms[int(len(ms) * 0.99)], 1), "max_ms": round(ms[-1], 1),
            "over_50_ms": sum(1 for t in ms if t > 50),
        }
        for label, (_, q) in (("typical", timed[len(timed) // 2]), *(("slowest", t) for t in reversed(timed[-3:]))):
            plans = explain(sessions, lambda s, q=q: search(s, q))
            result["search"].append({"q": q, "term": search_term(q, "RU"), "which": label, "plans": plans})
    finally:
        engine.dispose()
    engine, sessions = _sessions("deals")
    try:
        stage_id, owner_id = deal_filter
        filters = DealQuerySchema().load({"stage_id": stage_id, "owner_id": owner_id})
        result["list_deals"] = {"stage_id": stage_id, "owner_id": owner_id,
                                "plans": explain(sessions, lambda s: deals_views.list_deals(s, head, filters))}
    finally:
        engine.dispose()
    return result
