"""The stuck-deal scan over the seeded deals, run through the deals service's public RPC,
``deals.check_stuck_deals()``, exactly as an operator would run it.

The time reported is the service's own (``took_s``: selecting the due deals, marking them and writing one
validated deal_stuck event per deal to the outbox, committing per batch) and the round trip around it. The
running services relay those events to the clients and tasks services as they would after the timer's tick.
"""

from __future__ import annotations

import statistics
import time

import psycopg2

from bench.system import AMQP_URI, database_url, drain_events

# Time passing, compressed: ``count`` open deals that were within their stage's limit reach it during the
# last 50 minutes, as between two timer ticks of a busy CRM. Only the deals row changes: the scan reads
# nothing else. Deals due within the next hour are left alone (the move scenario uses open deals due later).
ARM = """
    WITH picked AS (
        SELECT d.id, s.max_days, now() - interval '1 second' - random() * interval '50 minutes' AS due
        FROM deals d JOIN stages s ON s.id = d.stage_id
        WHERE d.status = 'open' AND d.stuck_raised_at IS NULL AND d.stage_due_at > now() + interval '1 hour'
        ORDER BY random()
        LIMIT %s
    )
    UPDATE deals d
    SET stage_due_at = picked.due, stage_entered_at = picked.due - picked.max_days * interval '1 day'
    FROM picked WHERE d.id = picked.id
    """
DUE_QUERY = ("SELECT * FROM deals WHERE status = 'open' AND stuck_raised_at IS NULL AND stage_due_at <= now() "
             "ORDER BY stage_due_at LIMIT 2000 FOR UPDATE SKIP LOCKED")


def explain_due_query() -> str:
    conn = psycopg2.connect(database_url("deals"))
    try:
        with conn.cursor() as cur:
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + DUE_QUERY)
            plan = "\n".join(row[0] for row in cur.fetchall())
        conn.rollback()
        return plan
    finally:
        conn.close()


def measure(newly_stuck: int, passes: int = 3) -> dict:
    from nameko.standalone.rpc import ClusterRpcProxy

    result: dict = {"newly_stuck": newly_stuck, "batch": 2000, "passes": []}  # deals.commands.STUCK_BATCH
    with ClusterRpcProxy({"AMQP_URI": AMQP_URI}, timeout=300) as cluster:
        def scan() -> tuple[dict, float]:
            started = time.perf_counter()
            answer = cluster.deals.check_stuck_deals()
            return answer, time.perf_counter() - started

        # deals that reached their limit since the seed (as during any minute) are raised first, unmeasured, as
        # the timer's previous tick would have: each measured pass then finds what was armed for it
        result["caught_up"] = scan()[0]["raised"]
        drain_events()
        conn = psycopg2.connect(database_url("deals"))
        conn.autocommit = True
        try:
            for index in range(passes):
                with conn.cursor() as cur:
                    cur.execute(ARM, (newly_stuck,))
                    armed = cur.rowcount
                if index == 0:
                    result["due_query_plan"] = [{"plan": explain_due_query()}]
                started = time.perf_counter()
                with conn.cursor() as cur:
                    cur.execute(DUE_QUERY.replace(" FOR UPDATE SKIP LOCKED", ""))
                    found = len(cur.fetchall())
                query_ms = (time.perf_counter() - started) * 1000
                answer, round_trip = scan()
                result["passes"].append({
                    "armed": armed, "raised": answer["raised"], "scan_s": answer["took_s"],
                    "round_trip_s": round(round_trip, 3), "due_query_ms": round(query_ms, 1), "due_query_rows": found,
                    "settled_after_s": drain_events(),
                })
        finally:
            conn.close()
        answer, _ = scan()
        result["empty_pass"] = {"raised": answer["raised"], "scan_s": answer["took_s"]}
    result["scan_s_median"] = statistics.median(p["scan_s"] for p in result["passes"])
    result["due_query_ms_median"] = statistics.median(p["due_query_ms"] for p in result["passes"])
    return result
