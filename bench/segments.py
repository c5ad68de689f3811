"""Segment counts over the seeded client base (issue 10, target: p50 < 50 ms over 100,000 clients).

The clients service keeps its own copy of each deal's state (``client_deals``) and each client's open deals
from the deals service's events; seeding with COPY sends no events, so this phase copies the seeded deals'
states over (or, with no deals seeded, gives 30% of the clients an open deal) and counts them, and COPYs
interactions (a third of the clients, one to five each over the last year). Then it saves a few segments
through the API as the head and measures ``GET /segments/{id}`` (a fresh count) one request at a time, as the
head (the whole branch) and as a manager (their own clients), and the count's SQL alone (EXPLAIN ANALYZE).
``python -m bench --segments only`` runs it alone on a fresh seed of the clients; the section it writes into
docs/benchmarks.md sits between its own markers inside the kept notes.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
import requests

from bench.bulk import BulkLoader, line, ts
from bench.rows import fast_id
from bench.system import database_url

REQUESTS = 200
WARMUP = 20
SQL_RUNS = 21
TARGET_MS = 50.0
START, END = "<!-- segments:start -->", "<!-- segments:end -->"
NOTES_END = "<!-- notes:end -->"
INTERACTION_COLUMNS = ("id", "client_id", "branch_id", "type", "direction", "text", "occurred_at", "duration_s",
                       "script_id", "author_id", "created_at")


def seed_deal_states(deals_seeded: bool, rng: random.Random) -> dict:
    """``client_deals`` as the deal events would have left it; interactions for ``no_interaction_since``."""
    started = time.perf_counter()
    clients = psycopg2.connect(database_url("clients"))
    with clients, clients.cursor() as cur:
        cur.execute("SELECT id, branch_id, owner_id FROM clients")
        rows = cur.fetchall()
        cur.execute("TRUNCATE client_deals")
        cur.execute("DELETE FROM interactions WHERE text = 'bench'")
    clients.close()
    states = []
    if deals_seeded:
        deals = psycopg2.connect(database_url("deals"))
        with deals, deals.cursor() as cur:
            cur.execute("SELECT id, client_id, status, version FROM deals")
            states = [line(row) for row in cur]
        deals.close()
    else:
        states = [line((fast_id(rng), client_id, "open", 1)) for client_id, _, _ in rows if rng.random() < 0.3]
    now = time.time()
    interactions = []
    for client_id, branch_id, owner_id in rows:
        if rng.random() < 1 / 3:
            for _ in range(rng.randint(1, 5)):
                at = ts(now - rng.random() * 365 * 86400)
                interactions.append(line((fast_id(rng), client_id, branch_id, rng.choice(("call", "email", "meeting")),
                                          "out", "bench", at, 60, None, owner_id, at)))
    with BulkLoader(database_url("clients"), ("client_deals", "interactions")) as loader:
        for start in range(0, len(states), 50_000):
            loader.copy("client_deals", ("deal_id", "client_id", "status", "version"), states[start:start + 50_000])
        for start in range(0, len(interactions), 50_000):
            loader.copy("interactions", INTERACTION_COLUMNS, interactions[start:start + 50_000])
    clients = psycopg2.connect(database_url("clients"))
    with clients, clients.cursor() as cur:  # each client's open deals, as the handlers keep them
        cur.execute("UPDATE clients SET open_deals = d.n FROM (SELECT client_id, count(*) AS n FROM client_deals "
                    "WHERE status = 'open' GROUP BY client_id) AS d WHERE d.client_id = clients.id")
    clients.autocommit = True
    with clients.cursor() as cur:
        cur.execute("VACUUM ANALYZE clients")
    clients.close()
    return {"client_deals": len(states), "interactions": len(interactions), "clients": len(rows),
            "seconds": round(time.perf_counter() - started, 1)}


def _common(column: str) -> str:
    """The most frequent value of a clients column (tags: the most frequent tag), to filter on something real."""
    conn = psycopg2.connect(database_url("clients"))
    with conn, conn.cursor() as cur:
        if column == "tags":
            cur.execute("SELECT t, count(*) FROM clients, jsonb_array_elements_text(tags::jsonb) AS t "
                        "GROUP BY t ORDER BY 2 DESC LIMIT 1")
        else:
            cur.execute(f"SELECT {column}, count(*) FROM clients WHERE {column} IS NOT NULL "
                        f"GROUP BY 1 ORDER BY 2 DESC LIMIT 1")
        value = cur.fetchone()[0]
    conn.close()
    return value


def segments_to_measure() -> dict[str, dict]:
    now = datetime.now(UTC)
    return {
        "everyone (the floor)": {},
        "companies": {"kind": "company"},
        "tag and source": {"tag": _common("tags"), "source": _common("source")},
        "created last year, no open deal": {"created_from": (now - timedelta(days=365)).date().isoformat(),
                                            "created_to": now.date().isoformat(), "has_open_deal": False},
        "open deal, silent 90 days": {"has_open_deal": True,
                                      "no_interaction_since": (now - timedelta(days=90)).date().isoformat()},
        "custom field": {"kind": "company", "custom_fields": {"inn": "1234567890"}},
    }


def _timed(session: requests.Session, url: str) -> tuple[list[float], int]:
    for _ in range(WARMUP):
        session.get(url, timeout=30)
    times, count = [], None
    for _ in range(REQUESTS):
        started = time.perf_counter()
        response = session.get(url, timeout=30)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
        count = response.json()["count"]
    return times, count


def _stats(times: list[float]) -> dict:
    ordered = sorted(times)
    return {"p50_ms": round(statistics.median(ordered), 1), "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1], 1)}


def _sql_alone(branch_id: str, flt: dict) -> dict:
    """The count's statement as the service runs it for the head, EXPLAIN ANALYZEd on the clients database."""
    from sqlalchemy import create_engine, func
    from sqlalchemy.orm import Session

    from clients import segment_queries
    from clients.models import Client, Segment
    from clients.segments import stored_filter
    from crm_common.caller import Caller
    from crm_common.contracts.segments import SegmentFilterSchema
    from crm_common.schemas import load_or_raise

    engine = create_engine(database_url("clients").replace("postgresql://", "postgresql+psycopg2://", 1))
    try:
        with Session(engine) as session:
            segment = Segment(branch_id=branch_id, filter=stored_filter(load_or_raise(SegmentFilterSchema, flt)))
            query = segment_queries.members_query(session, Caller("bench", "head", branch_id), segment,
                                                  func.count()).select_from(Client)
            compiled = query.compile(engine)
            params = {}
            for name, value in compiled.params.items():
                processor = compiled.binds[name].type._cached_bind_processor(engine.dialect)
                params[name] = processor(value) if processor else value
            connection = session.connection()
            times = []
            for _ in range(SQL_RUNS):
                started = time.perf_counter()
                connection.exec_driver_sql(compiled.string, params).scalar()
                times.append((time.perf_counter() - started) * 1000)
            # per-node timing would cost more than the count itself: the plan is read with TIMING OFF
            plan = [row[0] for row in connection.exec_driver_sql(
                "EXPLAIN (ANALYZE, TIMING OFF, BUFFERS) " + compiled.string, params)]
    finally:
        engine.dispose()
    return {"execution_ms": round(statistics.median(times), 1), "plan": plan}


def measure(base_url: str, head_token: str, manager_token: str, branch_id: str, deals_seeded: bool, say) -> dict:
    say("segments: copying deal states and interactions into the clients database")
    out = {"seed": seed_deal_states(deals_seeded, random.Random(17)), "segments": {},
           "load_average": [round(x, 2) for x in os.getloadavg()]}
    say(f"segments: {out['seed']}")
    head, manager = requests.Session(), requests.Session()
    head.headers["Authorization"], manager.headers["Authorization"] = f"Bearer {head_token}", f"Bearer {manager_token}"
    for name, flt in segments_to_measure().items():
        response = head.post(f"{base_url}/segments", json={"name": f"bench: {name}", "filter": flt}, timeout=60)
        assert response.status_code == 201, response.text
        url = f"{base_url}/segments/{response.json()['id']}"
        head_times, head_count = _timed(head, url)
        manager_times, manager_count = _timed(manager, url)
        sql = _sql_alone(branch_id, flt)
        out["segments"][name] = {"filter": flt, "head": {"count": head_count, **_stats(head_times)},
                                 "manager": {"count": manager_count, **_stats(manager_times)},
                                 "sql_ms": sql["execution_ms"], "plan": sql["plan"]}
        say(f"segments: {name}: head {head_count} clients p50 {out['segments'][name]['head']['p50_ms']} ms, manager "
            f"{manager_count} p50 {out['segments'][name]['manager']['p50_ms']} ms, SQL {sql['execution_ms']} ms")
    return out


def section(results: dict) -> list[str]:
    data = results["segments"]
    seed = data["seed"]
    worst = max(row["head"]["p50_ms"] for row in data["segments"].values())
    verdict = "PASS" if worst < TARGET_MS else "MISS"
    floor = data["segments"].get("everyone (the floor)")
    machine = results.get("machine", {})
    lines = [
        START,
        f"### Segment counts (`python -m bench --segments only`, {results['started_at']}, commit "
        f"{machine.get('commit', '?')})",
        "",
        f"Target: a segment's count over {seed['clients']:,} clients, p50 < {TARGET_MS:g} ms. "
        f"**{verdict}**: the slowest segment's p50 is {worst} ms as the head (GET /segments/{{id}}, one request at a "
        f"time, {REQUESTS} requests after {WARMUP} to warm up; each answer counts the members afresh).",
        f"The floor, a segment with no filter (every active client of the branch counted), answered in "
        f"{floor['head']['p50_ms'] if floor else '?'} ms (SQL alone {floor['sql_ms'] if floor else '?'} ms): what any "
        f"count over the whole branch costs on this machine at this moment.",
        f"Seeded: {seed['clients']:,} clients of one branch; {machine.get('cores', '?')} cores ({machine.get('cpu', '?')}), "
        f"load average {data.get('load_average', machine.get('load_average', '?'))} when measured; "
        f"{seed['client_deals']:,} deal states in `client_deals`, {seed['interactions']:,} interactions.",
        "",
        "| segment | filter | head: count | head p50 / p99 ms | manager: count | manager p50 / p99 ms | SQL alone, median ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in data["segments"].items():
        flt = ", ".join(f"{k}={v}" for k, v in row["filter"].items())
        lines.append(f"| {name} | {f'`{flt}`' if flt else '(none)'} | {row['head']['count']:,} | {row['head']['p50_ms']} / "
                     f"{row['head']['p99_ms']} | {row['manager']['count']:,} | {row['manager']['p50_ms']} / "
                     f"{row['manager']['p99_ms']} | {row['sql_ms']} |")
    slowest = max(data["segments"].items(), key=lambda item: item[1]["sql_ms"] or 0)
    lines += ["", f"Plan of the slowest count's SQL ({slowest[0]}; EXPLAIN ANALYZE with TIMING OFF):", "", "```",
              *slowest[1]["plan"], "```", END]
    return lines


def rewrite(results_json: Path, path: Path) -> None:
    """Write the section again from a run's raw numbers (``python -m bench.segments bench/results/<run>.json``)."""
    write_section(json.loads(results_json.read_text(encoding="utf-8")), path)


def write_section(results: dict, path: Path) -> None:
    """Put the section between its markers in ``path`` (inside the notes, which a full run keeps)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    block = "\n".join(section(results))
    if START in text and END in text:
        before, rest = text.split(START, 1)
        text = before + block + rest.split(END, 1)[1]
    elif NOTES_END in text:
        text = text.replace(NOTES_END, block + "\n\n" + NOTES_END, 1)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    from bench.system import ROOT

    rewrite(Path(sys.argv[1]), ROOT / "docs" / "benchmarks.md")
