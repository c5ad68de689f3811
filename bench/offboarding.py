"""Offboarding a manager who owns 10,000 clients and 20,000 open deals (and 5,000 open tasks): how long the saga takes.

On a CRM of its own: the clients, deals and tasks services and the gateway started by ``scripts/run.py``
(``CRM_SERVICES=clients,deals,tasks``), vhost ``crm-bench-offboard`` and databases ``crm_bench_offboard_*``, dropped
before and after. Identity and the pipeline are made through the API; the records are inserted straight into the
services' databases (``INSERT ... SELECT generate_series``), as bench/seed.py does for the main run, with 1,000 won
deals and 1,000 done tasks beside them that must not move.

Measured: ``POST /users/{id}/offboard`` → ``GET /offboardings/{id}`` says done (polled every 0.2 s; the saga's own
``started_at`` → ``finished_at`` too), the time at which each step was first seen finished, and then how long until
the three outboxes have relayed every event the saga wrote (one ``client_updated``, ``deal_updated`` or
``task_updated`` per record). Then the records are checked: everything open is the heir's, the closed records the
leaver's.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

from bench import system
from bench.system import PG_SERVER

PREFIX = "crm_bench_offboard_"
VHOST = "crm-bench-offboard"
PASSWORD = "bench-offboard-1"
CLIENTS, DEALS, TASKS, CLOSED = 10_000, 20_000, 5_000, 1_000
STAGES = [{"name": "Новая", "kind": "open"}, {"name": "Успех", "kind": "won"}, {"name": "Отказ", "kind": "lost"}]


def measure(say=print, batch: int = 1000) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="crm-bench-offboarding-"))
    system.ensure_vhost(VHOST)
    system.reset_databases(PREFIX)
    crm = None  # the CRM of this measurement (``system`` is the module)
    results: dict = {"clients": CLIENTS, "deals": DEALS, "tasks": TASKS, "closed": CLOSED, "batch": batch,
                     "load_average": [round(x, 2) for x in os.getloadavg()]}
    try:
        crm = _start(folder, batch)
        say("offboarding: the CRM is up (clients, deals, tasks and the gateway)")
        people = _seed(crm.admin)
        say(f"offboarding: seeded {CLIENTS} clients, {DEALS} open and {CLOSED} won deals, {TASKS} open and "
            f"{CLOSED} done tasks of one manager")
        results.update(_offboard(crm.admin, people, say))
        results["correct"] = _check(people)
        say(f"offboarding: done in {results['took_s']} s (saga {results['saga_s']} s; events relayed "
            f"{results['relayed_s']} s after the start); records as expected: {results['correct']}")
    except Exception as exc:  # noqa: BLE001 - reported, the rest of the benchmark goes on
        say(f"offboarding: failed: {type(exc).__name__}: {exc}")
        results["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    finally:
        if crm is not None:
            crm.stop()
        system.reset_databases(PREFIX)
        system.delete_vhost(VHOST)
    return results


def _start(folder: Path, batch: int):
    from nameko.testing.utils import find_free_port

    from crm_common.testing.system import start_system

    env = {
        "AMQP_URI": f"amqp://guest:guest@127.0.0.1:5672/{VHOST}", "CRM_DATABASE_URL": PG_SERVER,
        "CRM_DATABASE_PREFIX": PREFIX, "CRM_HTTP_HOST": "127.0.0.1", "CRM_HTTP_PORT": str(find_free_port()),
        "CRM_DATA_DIR": str(folder / "data"), "CRM_SERVICES": "clients,deals,tasks",
        "CRM_RATE_LIMIT_ADMIN_PER_MINUTE": "0", "CRM_DB_POOL_SIZE": "6", "CRM_LOG_LEVEL": "WARNING",
        "CRM_OFFBOARD_BATCH": str(batch),
    }
    return start_system(env, folder / "run.log", startup_timeout=180)


def _seed(admin) -> dict:
    branch = admin.ok("POST", "/branches", {"name": "Offboarding bench", "code": f"O{uuid.uuid4().hex[:10]}"},
                      status=201)["id"]
    leaver, heir = (admin.ok("POST", "/users", {"email": f"{name}-{uuid.uuid4().hex[:8]}@bench.test", "name": name,
                                                "password": PASSWORD, "role": "manager", "branch_id": branch},
                             status=201)["id"] for name in ("leaver", "heir"))
    pipeline = admin.ok("POST", "/pipelines", {"name": "Bench", "branch_id": branch, "stages": STAGES}, status=201)
    stage = {s["kind"]: s["id"] for s in pipeline["stages"]}
    values = {"branch": branch, "owner": leaver, "pipeline": pipeline["id"], "open": stage["open"],
              "won": stage["won"], "clients": CLIENTS, "deals_per_client": DEALS // CLIENTS, "tasks": TASKS,
              "closed": CLOSED}
    _sql("clients", """
        INSERT INTO clients (id, branch_id, kind, name, owner_id, source, phones, emails, tags, custom_fields,
                             search_text, name_key, created_at, updated_at, version)
        SELECT gen_random_uuid()::text, %(branch)s, 'company', 'ООО Клиент ' || g, %(owner)s, 'web', '[]', '[]', '[]',
               '{}', 'ооо клиент ' || g, 'клиент ' || g, now(), now(), 1
        FROM generate_series(1, %(clients)s) g""", values)
    client_ids = _sql("clients", "SELECT id FROM clients WHERE owner_id = %(owner)s", values, fetch=True)
    values["client_ids"] = [row[0] for row in client_ids]
    _sql("deals", """
        INSERT INTO deals (id, branch_id, client_id, pipeline_id, stage_id, status, title, amount_minor, currency,
                           owner_id, stage_entered_at, created_at, updated_at, version)
        SELECT gen_random_uuid()::text, %(branch)s, c, %(pipeline)s, %(open)s, 'open', 'Поставка', 100000, 'RUB',
               %(owner)s, now(), now(), now(), 1
        FROM unnest(%(client_ids)s) c, generate_series(1, %(deals_per_client)s)""", values)
    _sql("deals", """
        INSERT INTO deals (id, branch_id, client_id, pipeline_id, stage_id, status, title, amount_minor, currency,
                           owner_id, stage_entered_at, closed_at, created_at, updated_at, version)
        SELECT gen_random_uuid()::text, %(branch)s, c, %(pipeline)s, %(won)s, 'won', 'Выиграна', 100000, 'RUB',
               %(owner)s, now(), now(), now(), now(), 1
        FROM unnest(%(client_ids)s) WITH ORDINALITY AS t(c, n) WHERE n <= %(closed)s""", values)
    for status, count in (("open", TASKS), ("done", CLOSED)):
        _sql("tasks", """
            INSERT INTO tasks (id, branch_id, title, status, assignee_id, author_id, checklist, due_at, completed_at,
                               created_at, updated_at, version)
            SELECT gen_random_uuid()::text, %(branch)s, 'Позвонить', %(status)s, %(owner)s, %(owner)s, '[]',
                   now() + interval '30 days', CASE WHEN %(status)s = 'done' THEN now() END, now(), now(), 1
            FROM generate_series(1, %(count)s)""", {**values, "status": status, "count": count})
    return {"branch": branch, "leaver": leaver, "heir": heir}


def _offboard(admin, people: dict, say) -> dict:
    started = time.perf_counter()
    saga = admin.ok("POST", f"/users/{people['leaver']}/offboard", {"to_user_id": people["heir"]}, status=202)
    steps: dict[str, float] = {}
    while True:
        state = admin.ok("GET", f"/offboardings/{saga['id']}")
        elapsed = round(time.perf_counter() - started, 2)
        for step in ("clients", "deals", "tasks"):
            if step not in steps and state["step"] != step and (state["step"] is None or
                                                                 ("clients", "deals", "tasks").index(state["step"]) >
                                                                 ("clients", "deals", "tasks").index(step)):
                steps[step] = elapsed
        if state["status"] != "running":
            break
        if elapsed > 1800:
            raise TimeoutError("the offboarding did not finish in 30 minutes")
        time.sleep(0.2)
    took = round(time.perf_counter() - started, 2)
    if state["status"] != "done":
        raise RuntimeError(f"the offboarding ended {state['status']}: {state['error']}")
    saga_s = round((_time(state["finished_at"]) - _time(state["started_at"])).total_seconds(), 2)
    say(f"offboarding: steps finished at {steps} s; counts {state['clients']}/{state['deals']}/{state['tasks']}")
    relayed = _relayed(started)
    return {"took_s": took, "saga_s": saga_s, "steps_done_at_s": steps, "relayed_s": relayed,
            "moved": {"clients": state["clients"], "deals": state["deals"], "tasks": state["tasks"]},
            "records_per_s": round((state["clients"] + state["deals"] + state["tasks"]) / max(saga_s, 0.001))}


def _relayed(started: float, timeout_s: float = 600) -> float | None:
    while time.perf_counter() - started < timeout_s:
        pending = sum(_sql(service, "SELECT count(*) FROM outbox WHERE published_at IS NULL", {}, fetch=True)[0][0]
                      for service in ("clients", "deals", "tasks"))
        if pending == 0:
            return round(time.perf_counter() - started, 2)
        time.sleep(0.5)
    return None


def _check(people: dict) -> bool:
    who = {"leaver": people["leaver"], "heir": people["heir"]}
    clients = dict(_sql("clients", "SELECT owner_id, count(*) FROM clients GROUP BY 1", who, fetch=True))
    deals = dict(((o, s), n) for o, s, n in _sql("deals", "SELECT owner_id, status, count(*) FROM deals GROUP BY 1, 2",
                                                 who, fetch=True))
    tasks = dict(((a, s), n) for a, s, n in _sql("tasks", "SELECT assignee_id, status, count(*) FROM tasks GROUP BY 1, 2",
                                                 who, fetch=True))
    return (clients == {people["heir"]: CLIENTS}
            and deals == {(people["heir"], "open"): DEALS, (people["leaver"], "won"): CLOSED}
            and tasks == {(people["heir"], "open"): TASKS, (people["leaver"], "done"): CLOSED})


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _sql(service: str, statement: str, values: dict, fetch: bool = False):
    import psycopg2

    conn = psycopg2.connect(f"{PG_SERVER}/{PREFIX}{service}")
    try:
        with conn, conn.cursor() as cur:
            cur.execute(statement, values)
            return cur.fetchall() if fetch else None
    finally:
        conn.close()


def section(measured: dict | None) -> list[str]:
    """The "Offboarding" section of docs/benchmarks.md."""
    if not measured:
        return []
    out = ["## Offboarding\n"]
    out.append(f"`POST /users/{{id}}/offboard` for a manager who owns {measured['clients']:,} clients, "
               f"{measured['deals']:,} open deals and {measured['tasks']:,} open tasks (and {measured['closed']:,} won "
               f"deals and {measured['closed']:,} done tasks that stay theirs), on a CRM of its own (clients, deals, "
               "tasks and the gateway, one process each; the records inserted with SQL; bench/offboarding.py; "
               "`python -m bench --offboarding only`; load average of the machine at the start "
               f"{' / '.join(map(str, measured.get('load_average', [])))}). Each step moves "
               f"{measured['batch']:,} records per RPC: one UPDATE, one event per record written to the outbox in one "
               "statement, the count in the same transaction (decisions.md 64-65).\n")
    if measured.get("error"):
        out.append(f"The run failed: `{measured['error']}`.\n")
        return out
    steps = measured["steps_done_at_s"]
    out.append("| measured | seconds |")
    out.append("|---|---|")
    out.append(f"| POST → GET says done (polled every 0.2 s) | {measured['took_s']} |")
    out.append(f"| the saga's own `started_at` → `finished_at` | {measured['saga_s']} |")
    for step in ("clients", "deals", "tasks"):
        if step in steps:
            out.append(f"| {step} step seen finished, after the POST | {steps[step]} |")
    out.append(f"| every event relayed from the three outboxes, after the POST | {measured['relayed_s']} |")
    out.append("")
    moved = measured["moved"]
    out.append(f"Moved {moved['clients']:,} clients, {moved['deals']:,} deals, {moved['tasks']:,} tasks "
               f"({measured['records_per_s']:,} records/s); every open record the heir's and every closed one still "
               f"the leaver's afterwards: **{'yes' if measured['correct'] else 'NO'}**. The steps share the machine with "
               "the consumers of their events, which start on the first batch (the clients service writes a timeline "
               "entry per `deal_updated` and `task_updated`, one transaction each), so the later steps run slower "
               "than the first; reports and webhooks, not running here, would add theirs.\n")
    return out


def write_section(measured: dict, path: Path) -> None:
    """Put the section into ``path`` (docs/benchmarks.md) in place of the one there, or at its end."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    lines = text.rstrip("\n").split("\n")
    start = next((i for i, line in enumerate(lines) if line.strip() == "## Offboarding"), None)
    if start is None:
        kept_before, kept_after = lines, []
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        kept_before, kept_after = lines[:start], lines[end:]
    new = "\n".join(section(measured)).rstrip("\n").split("\n")
    joined = kept_before + ([""] if kept_before and kept_before[-1] else []) + new + ([""] + kept_after if kept_after else [])
    path.write_text("\n".join(joined).rstrip("\n") + "\n", encoding="utf-8")
