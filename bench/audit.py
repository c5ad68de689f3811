"""GET /clients/{id} and GET /clients?q= with the audit log on and off (``CRM_AUDIT``), in the same run.

The CRM is restarted between the two settings on the same data; the settings go on, off, off, on (ABBA), so a
slow minute of the shared machine weighs on both; each cell is the median of a setting's rounds and the ratio is
on ÷ off (the target: at least 0.9). With the audit on, every answer appends its entry to the gateway's journal and
the writer commits batches (decisions.md 60), each upserting the reader's clients into the bulk-read window.
The benchmark reads as one head of sales, thousands of distinct clients a minute: the cap
(``CRM_READ_CAP_PER_HOUR``) is off for it (bench/system.py), the alarm stays at its default and goes off once.

``python -m bench --audit only`` (with ``CRM_BENCH_ID=<word>`` beside other benchmarks) seeds the clients alone
and measures only this; it writes its section of docs/benchmarks.md (``markdown.write_audit_section``).
"""

from __future__ import annotations

import statistics

from bench import load
from bench.report import one_line
from bench.sampler import Sampler
from bench.workload import spec

SCENARIOS = ("get_client", "search_clients")
LEVELS = (10, 50)
SETTINGS = ("on", "off", "off", "on")
TARGET = 0.9


def compare(crm, workload, load_processes: int, warmup_s: float, duration_s: float, say) -> dict:
    runs = []
    current = "on"  # how the rest of the benchmark runs the CRM
    for index, setting in enumerate(SETTINGS):
        if setting != current:
            say(f"audit: restarting the CRM with CRM_AUDIT={setting}")
            crm.stop()
            crm.start(extra_env={"CRM_AUDIT": setting})
            current = setting
        for scenario in SCENARIOS:
            for concurrency in LEVELS:
                run = load.run(spec(scenario, workload.data(scenario, concurrency), crm.port), concurrency,
                               load_processes, warmup_s, duration_s, Sampler(crm.processes()))
                run.update(audit=setting, round=index)
                say(f"audit {setting}: " + one_line(run))
                runs.append(run)
    if current != "on":
        crm.stop()
        crm.start()
    return {"settings": list(SETTINGS), "levels": list(LEVELS), "runs": runs, "summary": summarise(runs)}


def summarise(runs: list[dict]) -> list[dict]:
    rows = []
    for scenario in SCENARIOS:
        for concurrency in LEVELS:
            row = {"scenario": scenario, "concurrency": concurrency}
            for setting in ("on", "off"):
                mine = [r for r in runs if (r["scenario"], r["concurrency"], r["audit"]) == (scenario, concurrency, setting)]
                if not mine:
                    continue
                p50 = [r["p50_ms"] for r in mine if r["p50_ms"] is not None]
                p99 = [r["p99_ms"] for r in mine if r["p99_ms"] is not None]
                row[setting] = {
                    "rps": round(statistics.median(r["rps"] for r in mine), 1),
                    "rounds": [r["rps"] for r in mine],
                    "p50_ms": round(statistics.median(p50), 2) if p50 else None,
                    "p99_ms": round(statistics.median(p99), 2) if p99 else None,
                    "errors": sum(r["errors"] for r in mine),
                    "gateway_cores": round(statistics.median(r["cpu_cores"].get("gateway", 0.0) for r in mine), 2),
                    "postgres_cores": round(statistics.median(r["cpu_cores"].get("postgres", 0.0) for r in mine), 2),
                    "machine_cores": round(statistics.median(r["cpu_cores"].get("machine", 0.0) for r in mine), 2),
                }
            if "on" in row and "off" in row and row["off"]["rps"]:
                row["ratio"] = round(row["on"]["rps"] / row["off"]["rps"], 3)
            rows.append(row)
    return rows


def verdict(compared: dict | None) -> str | None:
    """PASS when every row's ratio reaches the target."""
    if not compared:
        return None
    ratios = [row.get("ratio") for row in compared["summary"]]
    if not ratios or any(r is None for r in ratios):
        return "NO DATA"
    return "PASS" if min(ratios) >= TARGET else "FAIL"
