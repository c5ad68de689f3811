"""Tasks in bulk (COPY, like the clients and deals of bench/rows.py) and the overdue scan over them.

The scan is run through the tasks service's public RPC, ``tasks.check_overdue_tasks()``, exactly as an
operator would run it; the time reported is the service's own (``took_s``) and the round trip around it.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Iterator

import psycopg2

from bench.bulk import line, ts
from bench.system import AMQP_URI, database_url, drain_events

DAY = 86400.0
TASK_COLUMNS = ("id", "branch_id", "title", "description", "status", "assignee_id", "author_id", "client_id", "deal_id",
                "template_id", "template_version", "checklist", "due_at", "overdue_at", "completed_at", "cancelled_at",
                "cancel_reason", "penalty_minor", "penalty_currency", "created_at", "updated_at", "version")
PENALTY_COLUMNS = ("id", "task_id", "user_id", "branch_id", "amount_minor", "currency", "reason", "month", "status",
                   "created_at")
TITLES = ("Перезвонить клиенту", "Отправить КП", "Согласовать договор", "Выставить счёт", "Звонок после продажи",
          "Предложение допродажи", "Уточнить потребность", "Назначить встречу", "Разобрать жалобу")
STEPS = (("Позвонить", "Записать итог"), ("Собрать КП", "Согласовать цену", "Отправить"), ())


def fast_id(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def checklist(steps: tuple[str, ...], done: bool, at: float) -> list[dict]:
    return [{"text": step, "done": done, "done_at": ts(at).replace(" ", "T").replace("+00", "Z") if done else None}
            for step in steps]


def task_chunks(count: int, branch_id: str, head_id: str, clients: list[tuple[str, str]], now: float,
                rng: random.Random, chunk: int = 20_000) -> Iterator[tuple[list[str], list[str]]]:
    """Three years of tasks: 70 % done, 5 % cancelled, 25 % open and due within the next 30 days; one in ten
    done tasks was late and carries its penalty. No open task is past its deadline unfound, as after any
    check."""
    for start in range(0, count, chunk):
        tasks, penalties = [], []
        for _ in range(start, min(count, start + chunk)):
            task_id = fast_id(rng)
            client_id, owner_id = rng.choice(clients)
            roll = rng.random()
            created = now - rng.random() * 3 * 365 * DAY
            steps = rng.choice(STEPS)
            completed = cancelled = overdue = None
            if roll < 0.25:
                status, due = "open", now + 3600 * 2 + rng.random() * 30 * DAY
            else:
                due = created + rng.uniform(0.5, 7) * DAY
                if due > now - DAY:
                    due = now - DAY
                    created = min(created, due - DAY)
                status = "done" if roll < 0.95 else "cancelled"
                finished = created + rng.random() * (due - created) * 1.1
                if status == "done":
                    completed = finished
                    overdue = finished if finished > due else None
                else:
                    cancelled = min(finished, due)
            tasks.append(line((
                task_id, branch_id, rng.choice(TITLES), None, status, owner_id, head_id if rng.random() < 0.3 else owner_id,
                client_id, None, None, None, checklist(steps, status == "done", completed or created), ts(due),
                ts(overdue) if overdue else None, ts(completed) if completed else None,
                ts(cancelled) if cancelled else None, "Не нужно" if cancelled else None, None, None, ts(created),
                ts(completed or cancelled or created), 1,
            )))
            if overdue:
                month = ts(due)[:7]
                penalties.append(line((fast_id(rng), task_id, owner_id, branch_id, 50000, "RUB",
                                       "Просрочен срок задачи", month, "active", ts(overdue))))
        yield tasks, penalties


# Time passing, compressed: ``count`` open tasks that were not yet due reach their deadline during the last 50
# minutes, as between two checks of a busy CRM.
ARM = """
    UPDATE tasks SET due_at = now() - interval '1 second' - random() * interval '50 minutes'
    WHERE id IN (SELECT id FROM tasks WHERE status = 'open' AND overdue_at IS NULL AND due_at > now() + interval '1 hour'
                 ORDER BY random() LIMIT %s)
"""
DUE_QUERY = ("SELECT * FROM tasks WHERE status = 'open' AND overdue_at IS NULL AND due_at < now() "
             "ORDER BY due_at LIMIT 2000 FOR UPDATE SKIP LOCKED")


def explain_due_query() -> str:
    conn = psycopg2.connect(database_url("tasks"))
    try:
        with conn.cursor() as cur:
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + DUE_QUERY)
            plan = "\n".join(row[0] for row in cur.fetchall())
        conn.rollback()
        return plan
    finally:
        conn.close()


def measure(newly_overdue: int, passes: int = 3) -> dict:
    from nameko.standalone.rpc import ClusterRpcProxy

    result: dict = {"newly_overdue": newly_overdue, "batch": 2000, "passes": []}  # tasks.commands.OVERDUE_BATCH
    with ClusterRpcProxy({"AMQP_URI": AMQP_URI}, timeout=300) as cluster:
        def scan() -> tuple[dict, float]:
            started = time.perf_counter()
            answer = cluster.tasks.check_overdue_tasks()
            return answer, time.perf_counter() - started

        # tasks that came due since the seed are found first, unmeasured, as the timer's previous tick would have
        result["caught_up"] = scan()[0]["overdue"]
        drain_events()
        conn = psycopg2.connect(database_url("tasks"))
        conn.autocommit = True
        try:
            for index in range(passes):
                with conn.cursor() as cur:
                    cur.execute(ARM, (newly_overdue,))
                    armed = cur.rowcount
                if index == 0:
                    result["due_query_plan"] = explain_due_query()
                answer, round_trip = scan()
                result["passes"].append({"armed": armed, "overdue": answer["overdue"], "scan_s": answer["took_s"],
                                         "round_trip_s": round(round_trip, 3), "settled_after_s": drain_events()})
        finally:
            conn.close()
        answer, round_trip = scan()
        result["empty_pass"] = {"overdue": answer["overdue"], "scan_s": answer["took_s"]}
    result["scan_s_median"] = statistics.median(p["scan_s"] for p in result["passes"])
    return result
