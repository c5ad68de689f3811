"""GET /clients/{id} with one and with two processes of every service and of the gateway (`run.py --replicas`).

The system is restarted between the two layouts on the same data. The layouts alternate (2, 1, 2, 1:
from the one process of each that the rest of the benchmark runs, and back to it), so that a slow
minute on the shared machine does not decide the ratio; each layout's throughput is the median of its
rounds. The two gateways share the port (SO_REUSEPORT): each keep-alive connection of the load
generator stays with the gateway the kernel gave it.
"""

from __future__ import annotations

import statistics

from bench import load
from bench.report import one_line
from bench.sampler import Sampler
from bench.workload import spec
from crm_common.registry import REGISTRY

LEVELS = (10, 50)
LAYOUTS = (2, 1, 2, 1)


def compare(crm, workload, load_processes: int, warmup_s: float, duration_s: float, say) -> dict:
    runs = []
    for index, replicas in enumerate(LAYOUTS):
        if crm.replicas != replicas:
            say(f"restarting the CRM with {replicas} process(es) of every service and of the gateway")
            crm.stop()
            crm.replicas = replicas
            crm.start()
        for concurrency in LEVELS:
            run = load.run(spec("get_client", workload.data("get_client", concurrency), crm.port), concurrency,
                           load_processes, warmup_s, duration_s, Sampler(crm.processes()))
            run.update(replicas=replicas, round=index // 2 + 1, cpu_by_service=by_service(run["cpu_cores"]))
            say(f"replicas {replicas}: " + one_line(run))
            runs.append(run)
    return {"levels": list(LEVELS), "layouts": list(LAYOUTS), "runs": runs, "summary": summarise(runs)}


def by_service(cpu: dict) -> dict[str, float]:
    """CPU (cores) of every copy of each process added up: ``gateway`` and ``gateway-2`` are the gateway."""
    totals = {}
    for spec_ in REGISTRY:
        copies = [value for name, value in cpu.items() if name == spec_.name or name.startswith(f"{spec_.name}-")]
        totals[spec_.name] = round(sum(copies), 2)
    return totals


def summarise(runs: list[dict]) -> list[dict]:
    rows = []
    for concurrency in sorted({r["concurrency"] for r in runs}):
        row = {"concurrency": concurrency}
        for replicas in (1, 2):
            mine = [r for r in runs if r["concurrency"] == concurrency and r["replicas"] == replicas]
            if not mine:
                continue
            row[replicas] = {
                "rps": round(statistics.median(r["rps"] for r in mine), 1),
                "rounds": [r["rps"] for r in mine],
                "p99_ms": round(statistics.median(r["p99_ms"] for r in mine if r["p99_ms"] is not None), 1)
                if any(r["p99_ms"] is not None for r in mine) else None,
                "errors": sum(r["errors"] for r in mine),
                "machine_cores": round(statistics.median(r["cpu_cores"].get("machine", 0.0) for r in mine), 2),
                "other_cores": round(statistics.median(r["cpu_cores"].get("other", 0.0) for r in mine), 2),
                "cpu_by_service": {name: round(statistics.median(r["cpu_by_service"][name] for r in mine), 2)
                                   for name in mine[0]["cpu_by_service"]},
            }
        if 1 in row and 2 in row and row[1]["rps"]:
            row["ratio"] = round(row[2]["rps"] / row[1]["rps"], 2)
        rows.append(row)
    return rows
