"""Facts about the machine and the data, the verdicts against the targets, one line per run."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from importlib.metadata import version
from pathlib import Path

import psutil
import psycopg2

from bench.system import AMQP_URI, PG_SERVER, ROOT, database_url
from crm_common.registry import backend_names

PROCESSES = ("gateway", *backend_names(), "echo")


# ---- facts about the machine and the data

def machine() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        for row in Path("/proc/cpuinfo").read_text().splitlines():
            if row.startswith("model name"):
                cpu = row.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    os_name = platform.platform()
    try:
        for row in Path("/etc/os-release").read_text().splitlines():
            if row.startswith("PRETTY_NAME="):
                os_name = row.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{os_name}, kernel {platform.release()}",
        "python": platform.python_version(),
        "postgresql": _postgres_version(),
        "rabbitmq": _rabbitmq_version(),
        "packages": {name: version(name) for name in ("nameko", "eventlet", "kombu", "SQLAlchemy", "psycopg2-binary")},
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "commit": _git("rev-parse", "--short", "HEAD") + (" (with uncommitted changes)" if _git("status", "--porcelain") else ""),
    }


def _postgres_version() -> str:
    """The version and the settings that shape these numbers (the server's own, not tuned for the benchmark)."""
    conn = psycopg2.connect(f"{PG_SERVER}/postgres")
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            found = cur.fetchone()[0]
            cur.execute("SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s) ORDER BY name",
                        (["shared_buffers", "work_mem", "max_wal_size", "synchronous_commit", "random_page_cost"],))
            return found + "; " + ", ".join(f"{name} {value}" for name, value in cur.fetchall())
    finally:
        conn.close()


def _rabbitmq_version() -> str:
    from kombu import Connection

    with Connection(AMQP_URI, connect_timeout=5) as conn:
        conn.connect()
        return conn.connection.server_properties.get("version", "unknown")


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def row_counts() -> dict:
    counts = {}
    for service, tables in (("clients", ("clients", "client_contacts", "timeline_entries")),
                            ("deals", ("deals", "stage_history")), ("tasks", ("tasks", "penalties"))):
        conn = psycopg2.connect(database_url(service))
        try:
            with conn.cursor() as cur:
                for table in tables:
                    cur.execute(f"SELECT count(*) FROM {table}")
                    counts[table] = cur.fetchone()[0]
                if service == "deals":
                    cur.execute("SELECT count(*) FILTER (WHERE status = 'open'), "
                                "count(*) FILTER (WHERE status = 'open' AND stage_due_at <= now()) FROM deals")
                    counts["open_deals"], counts["open_deals_past_due"] = cur.fetchone()
                if service == "tasks":
                    cur.execute("SELECT count(*) FROM tasks WHERE status = 'open'")
                    counts["open_tasks"] = cur.fetchone()[0]
        finally:
            conn.close()
    return counts


# ---- verdicts

def find(results: dict, scenario: str, concurrency: int) -> dict | None:
    return next((r for r in results.get("runs", []) if r["scenario"] == scenario and r["concurrency"] == concurrency), None)


def echo_rps(results: dict, concurrency: int, baseline: str = "echo") -> float | None:
    """A baseline at one concurrency: the better of its runs (before and after the API scenarios)."""
    found = [r["rps"] for r in results.get("runs", []) if r["scenario"] == baseline and r["concurrency"] == concurrency]
    return max(found) if found else None


def ratio(results: dict, run: dict | None, baseline: str = "echo") -> float | None:
    echo = echo_rps(results, run["concurrency"], baseline) if run else None
    if not run or not echo:
        return None
    return round(run["rps"] / echo, 2)


def diagnose(run: dict | None) -> str:
    """Where the CPU went in a run: the facts that explain a number (the notes below say why)."""
    if not run:
        return "not measured"
    cpu = run["cpu_cores"]
    parts = []
    busiest = max(PROCESSES, key=lambda name: cpu.get(name, 0.0))
    if cpu.get(busiest, 0.0) >= 0.85:
        parts.append(f"the {busiest} process used {cpu[busiest]:.2f} cores, the ceiling of one eventlet process")
    if cpu.get("machine", 0.0) >= 1.8:
        parts.append(f"the machine used {cpu['machine']:.2f} of 2 cores (PostgreSQL {cpu.get('postgres', 0):.2f}, "
                     f"RabbitMQ {cpu.get('rabbitmq', 0):.2f}, load generator {sum(run['loadgen']['cpu_cores']):.2f})")
    if cpu.get("other", 0.0) >= 0.3:
        parts.append(f"processes outside the benchmark used {cpu['other']:.2f} cores meanwhile")
    if run["loadgen"]["saturated"]:
        parts.append("a load generator process saturated its core: the number is a lower bound")
    return "; ".join(parts) or "no process was CPU-bound"


def targets(results: dict) -> list[dict]:
    get10 = find(results, "get_client", 10)
    search1, search10 = find(results, "search_clients", 1), find(results, "search_clients", 10)
    deals1, deals10 = find(results, "list_deals", 1), find(results, "list_deals", 10)
    move10 = find(results, "move_deal", 10)
    task10 = find(results, "create_task", 10)
    stuck = results.get("stuck")
    rows = []

    def add(name, goal, measured, passed, note=""):
        verdict = "REPORTED" if passed is None else ("PASS" if passed else "MISS")
        if measured == "not measured":
            verdict = "NOT RUN"
        rows.append({"target": name, "goal": goal, "measured": measured, "verdict": verdict, "note": note})

    get_ratio = ratio(results, get10)
    crm_ratio = ratio(results, get10, "echo_crm")
    pairs = [p for p in results.get("pairs") or [] if p.get("ratio") is not None]
    if pairs:
        paired_ratio = statistics.median(p["ratio"] for p in pairs)
        paired_p99 = statistics.median(p["get_client"]["p99_ms"] for p in pairs)
        ratios = ", ".join(f"{p['ratio']:.2f}" for p in pairs)
        add("GET /clients/{id} throughput, 10 workers", "≥ 0.5 × echo RPC at 10",
            f"{paired_ratio:.2f} × echo (median of {len(pairs)} back-to-back pairs: {ratios})", paired_ratio >= 0.5,
            f"main run: {get10['rps']:.0f} req/s = {get_ratio} × echo"
            + (f", {crm_ratio} × echo_crm" if crm_ratio else "") + "; " + diagnose(get10))
        add("GET /clients/{id} p99, 10 workers", "< 50 ms", f"{paired_p99:.1f} ms (median of the pairs)",
            paired_p99 < 50, f"main run: {_ms(get10, 'p99_ms')}; " + diagnose(get10))
    else:
        add("GET /clients/{id} throughput, 10 workers", "≥ 0.5 × echo RPC at 10",
            f"{get10['rps']:.0f} req/s = {get_ratio} × echo" if get10 and get_ratio is not None else "not measured",
            get_ratio is not None and get_ratio >= 0.5,
            (f"{crm_ratio} × the echo through the services' own RPC entrypoint (echo_crm); " if crm_ratio else "")
            + diagnose(get10))
        add("GET /clients/{id} p99, 10 workers", "< 50 ms", _ms(get10, "p99_ms"),
            bool(get10 and get10["p99_ms"] is not None and get10["p99_ms"] < 50), diagnose(get10))
    add("GET /clients?q= p50 on the seeded clients, 1 worker", "< 20 ms", _ms(search1, "p50_ms"),
        bool(search1 and search1["p50_ms"] is not None and search1["p50_ms"] < 20),
        f"at 10 workers: p50 {_ms(search10, 'p50_ms')}; " + _sql_note(results, "search"))
    add("GET /deals?stage_id=&owner_id= p50, 1 worker", "< 20 ms", _ms(deals1, "p50_ms"),
        bool(deals1 and deals1["p50_ms"] is not None and deals1["p50_ms"] < 20),
        f"at 10 workers: p50 {_ms(deals10, 'p50_ms')}; " + _sql_note(results, "list_deals"))
    move_ratio, move_crm = ratio(results, move10), ratio(results, move10, "echo_crm")
    add("POST /deals/{id}/stage, 10 workers", "reported against echo",
        f"{move10['rps']:.0f} moves/s = {move_ratio} × echo ({move_crm} × echo_crm), {move10['conflicts']} × 409"
        if move10 else "not measured",
        None, diagnose(move10))
    task_ratio, task_crm = ratio(results, task10), ratio(results, task10, "echo_crm")
    add("POST /tasks, 10 workers", "reported against echo",
        f"{task10['rps']:.0f} tasks/s = {task_ratio} × echo ({task_crm} × echo_crm)" if task10 else "not measured",
        None, diagnose(task10))
    overdue = results.get("overdue")
    scan_o = overdue["scan_s_median"] if overdue else None
    add(f"overdue scan over {results.get('data', {}).get('tasks', 0):,} tasks", "< 2 s per pass",
        f"{scan_o:.2f} s for {overdue['newly_overdue']:,} newly overdue (tasks.check_overdue_tasks)"
        if overdue else "not measured", scan_o is not None and scan_o < 2)
    for row in (results.get("replicas") or {}).get("summary", []):
        one, two = row.get(1), row.get(2)
        if not (one and two):
            continue
        add(f"GET /clients/{{id}} with 2 processes of every service and the gateway, {row['concurrency']} workers",
            "reported: × 1 process each",
            f"{row['ratio']} × ({one['rps']:.0f} → {two['rps']:.0f} req/s, medians of {len(one['rounds'])} rounds each)",
            None, f"the machine used {one['machine_cores']:.2f} then {two['machine_cores']:.2f} of "
                  f"{results['machine']['cores']} cores (other processes {one['other_cores']:.2f} / "
                  f"{two['other_cores']:.2f}); p99 {one['p99_ms']} → {two['p99_ms']} ms")
    scan = stuck["scan_s_median"] if stuck else None
    add(f"stuck scan over {results.get('data', {}).get('deals', 0):,} deals", "< 2 s per pass",
        f"{scan:.2f} s for {stuck['newly_stuck']:,} newly stuck (due query {stuck['due_query_ms_median']:.0f} ms)"
        if stuck else "not measured", scan is not None and scan < 2)
    reliability = results.get("reliability") or {}
    cost = reliability.get("command_log") or {}
    if cost.get("error"):
        cost = {}
    add("POST /clients with ÷ without the command log, 10 workers", "reported",
        f"throughput {cost['ratio_median']:.2f}, clients CPU per write {cost.get('cpu_ratio_median') or 0:.2f} "
        f"(medians of {len(cost['ratios'])} pairs)" if cost.get("ratio_median") else "not measured",
        None, "the request-id bookkeeping that makes every write run once")
    recovery = (reliability.get("recovery") or {}).get("by_replicas") or {}
    worst = {count: max((t["every_service_s"] for t in trials if t["every_service_s"] is not None), default=None)
             for count, trials in recovery.items()}
    exits = sum(t["exits_during_outage"] for trials in recovery.values() for t in trials)
    complete = bool(worst) and all(v is not None for v in worst.values())
    add("every service answers after a 10 s broker outage", "≤ 5 s with 1 and 2 replicas, no process exits",
        "; ".join(f"{count} replica(s): {v:.1f} s" for count, v in worst.items()) + f"; {exits} exits"
        if complete else "not measured",
        complete and all(v <= 5 for v in worst.values()) and exits == 0, "worst of the trials")
    return rows


def _ms(run: dict | None, key: str) -> str:
    return f"{run[key]:.1f} ms" if run and run.get(key) is not None else "not measured"


def _sql_note(results: dict, which: str) -> str:
    plans = results.get("plans") or {}
    if which == "search":
        t = plans.get("search_timings")
        return (f"its SQL alone over {t['terms']:,} terms: p50 {t['p50_ms']} ms, p99 {t['p99_ms']} ms, max "
                f"{t['max_ms']} ms ({t['over_50_ms']} over 50 ms)" if t else "")
    entry = plans.get("list_deals") or {}
    times = [p["execution_ms"] for p in entry.get("plans", []) if p["execution_ms"] is not None]
    return f"its SQL statements took {sum(times):.1f} ms together (EXPLAIN ANALYZE)" if times else ""


def verdict_lines(results: dict) -> list[str]:
    return [f"{row['verdict']:<8} {row['target']}: {row['measured']} (target {row['goal']})" for row in targets(results)]


def one_line(run: dict) -> str:
    cpu = run["cpu_cores"]
    used = " ".join(f"{name} {cpu[name]:.2f}" for name in (*PROCESSES, "run.py", "postgres", "rabbitmq", "other", "machine")
                    if name in cpu)
    return (f"{run['scenario']:<15} x{run['concurrency']:<3} {run['rps']:>8.1f} req/s  p50 {run['p50_ms']} ms  "
            f"p99 {run['p99_ms']} ms  errors {run['errors']}  409 {run['conflicts']}  | cpu {used} | "
            f"loadgen {run['loadgen']['cpu_cores']}" + (f" | {run['error_samples'][:1]}" if run["errors"] else ""))
