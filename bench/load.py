"""The load generator: closed-loop workers (each sends its next request when the previous one answered)
in a few processes, so the generator's own GIL is not what limits the numbers.

The echo baseline and the HTTP scenarios run through exactly the same processes, threads, timing
window and bookkeeping; only the call a worker makes differs (nameko's ClusterRpcProxy versus a
keep-alive ``http.client`` connection), so their ratio compares the system, not two generators.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import random
import threading
import time
from collections import Counter

from bench.people import People, load_phone

READY_TIMEOUT_S = 120.0


# ---- what one worker sends, per scenario

class GetClient:
    def __init__(self, data: dict, worker: int, rng: random.Random):
        self.ids, self.token, self.rng = data["client_ids"], data["token"], rng

    def next(self):
        return "GET", f"/api/v1/clients/{self.rng.choice(self.ids)}", None, self.token

    def done(self, status: int) -> None:
        pass


class SearchClients(GetClient):
    def __init__(self, data: dict, worker: int, rng: random.Random):
        self.terms, self.token, self.rng = data["terms"], data["token"], rng

    def next(self):
        from urllib.parse import quote

        return "GET", f"/api/v1/clients?q={quote(self.rng.choice(self.terms))}", None, self.token


class ListDeals(GetClient):
    def __init__(self, data: dict, worker: int, rng: random.Random):
        self.filters, self.token, self.rng = data["filters"], data["token"], rng

    def next(self):
        stage_id, owner_id = self.rng.choice(self.filters)
        return "GET", f"/api/v1/deals?stage_id={stage_id}&owner_id={owner_id}", None, self.token


class CreateClient(GetClient):
    """A manager entering new clients: fresh names, phones from a range the seed never used, unique emails."""

    def __init__(self, data: dict, worker: int, rng: random.Random):
        self.people = People(seed=worker + 1, pool=500)
        self.token = data["tokens"][worker % len(data["tokens"])]
        self.number = data["phone_base"] + worker * data["block"]

    def next(self):
        person = self.people.person()
        self.number += 1
        body = {"kind": person.kind, "name": person.name, "phones": [load_phone(self.number)],
                # "n" keeps these apart from the seeded emails, which end in a bare number
                "emails": [self.people.email(person, f"n{self.number}")], "source": person.source, "tags": person.tags}
        return "POST", "/api/v1/clients", json.dumps(body, ensure_ascii=False).encode(), self.token


class MoveDeals(GetClient):
    """A manager moving their own deals between open stages; no other worker touches them, so a 409 is news."""

    def __init__(self, data: dict, worker: int, rng: random.Random):
        mine = data["workers"][worker]
        self.token, self.deals, self.stages = mine["token"], mine["deals"], data["open_stages"]
        self.current = {deal_id: stage_id for deal_id, _, stage_id in self.deals}
        self.index = -1
        self.target: tuple[str, str] | None = None

    def next(self):
        self.index = (self.index + 1) % len(self.deals)
        deal_id, pipeline_id, _ = self.deals[self.index]
        stages = self.stages[pipeline_id]
        target = stages[(stages.index(self.current[deal_id]) + 1) % len(stages)]
        self.target = (deal_id, target)
        return "POST", f"/api/v1/deals/{deal_id}/stage", json.dumps({"stage_id": target}).encode(), self.token

    def done(self, status: int) -> None:
        if status == 200:
            deal_id, target = self.target
            self.current[deal_id] = target


class CreateTask(GetClient):
    """A manager setting themself a task about one of their clients, with a three-step checklist."""

    def __init__(self, data: dict, worker: int, rng: random.Random):
        mine = data["workers"][worker % len(data["workers"])]
        self.token, self.client_ids, self.rng = mine["token"], mine["client_ids"], rng

    def next(self):
        due = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 7 * 86400))
        body = {"title": "Перезвонить клиенту", "due_at": due, "client_id": self.rng.choice(self.client_ids),
                "checklist": ["Позвонить", "Записать итог", "Назначить следующий шаг"]}
        return "POST", "/api/v1/tasks", json.dumps(body, ensure_ascii=False).encode(), self.token


ECHOES = {"echo": "bench_echo", "echo_crm": "bench_echo_crm"}  # scenario → service (bench/echo_service.py)
SCENARIOS = {
    "get_client": GetClient,
    "search_clients": SearchClients,
    "create_client": CreateClient,
    "list_deals": ListDeals,
    "move_deal": MoveDeals,
    "create_task": CreateTask,
}


# ---- how a worker calls

class HttpCaller:
    def __init__(self, port: int, requests):
        self.port, self.requests = port, requests
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self) -> int:
        method, path, body, token = self.requests.next()
        headers = {"Authorization": f"Bearer {token}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()  # http.client reconnects on the next request
            raise
        self.requests.done(response.status)
        return response.status

    def close(self) -> None:
        self.conn.close()


class EchoCaller:
    """The baseline: one nameko RPC round trip with the arguments a get_client call carries."""

    def __init__(self, amqp_uri: str, service: str, payload: dict):
        from nameko.standalone.rpc import ClusterRpcProxy

        self.payload = payload
        self.cluster = ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=30)
        self.service = self.cluster.start()[service]

    def call(self) -> int:
        self.service.echo(self.payload)
        return 200

    def close(self) -> None:
        self.cluster.stop()


def make_caller(spec: dict, worker: int):
    if spec["scenario"] in ECHOES:
        return EchoCaller(spec["amqp_uri"], ECHOES[spec["scenario"]], spec["data"]["payload"])
    rng = random.Random(worker * 7919 + 1)
    return HttpCaller(spec["port"], SCENARIOS[spec["scenario"]](spec["data"], worker, rng))


# ---- the load processes

def _drive(caller, window: tuple[float, float, float], out: dict) -> None:
    """Call in a loop until the window ends; keep what completed inside the measured part.

    time.monotonic() is CLOCK_MONOTONIC, one clock for every process on the machine, so the windows of
    all load processes line up.
    """
    start, measure_from, measure_to = window
    latencies: list[float] = []
    statuses: Counter = Counter()
    samples: list[str] = []
    time.sleep(max(0.0, start - time.monotonic()))
    while (began := time.monotonic()) < measure_to:
        try:
            status = caller.call()
        except Exception as exc:  # noqa: BLE001 - counted as an error of the system under test
            status = type(exc).__name__
            if len(samples) < 3:
                samples.append(f"{status}: {exc}"[:300])
        ended = time.monotonic()
        if measure_from <= ended <= measure_to:
            statuses[str(status)] += 1
            if isinstance(status, int) and 200 <= status < 300:
                latencies.append((ended - began) * 1000)
    out.update(latencies=latencies, statuses=statuses, samples=samples)


def _load_process(conn, spec: dict, workers: list[int]) -> None:
    try:
        callers = [make_caller(spec, worker) for worker in workers]
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the run
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", None))
    window = conn.recv()
    outs = [{} for _ in callers]
    threads = [threading.Thread(target=_drive, args=(c, window, o)) for c, o in zip(callers, outs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for caller in callers:
        caller.close()
    conn.send(("done", outs))


def percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(spec: dict, concurrency: int, processes: int, warmup_s: float, duration_s: float, sampler) -> dict:
    """One scenario at one concurrency: start the workers, warm up, measure, and summarise."""
    ctx = multiprocessing.get_context("spawn")
    layout = [list(range(concurrency))[i::processes] for i in range(min(processes, concurrency))]
    pipes, procs = [], []
    for workers in layout:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_load_process, args=(child, spec, workers), daemon=True)
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    try:
        for pipe in pipes:
            if not pipe.poll(READY_TIMEOUT_S):
                raise RuntimeError("a load process did not get ready")
            kind, detail = pipe.recv()
            if kind == "error":
                raise RuntimeError(f"a load process could not start: {detail}")
        sampler.track_load([proc.pid for proc in procs])
        start = time.monotonic() + 0.2
        window = (start, start + warmup_s, start + warmup_s + duration_s)
        for pipe in pipes:
            pipe.send(window)
        sampler.measure(window[1], window[2])
        outs = []
        for pipe in pipes:
            if not pipe.poll(duration_s + 120):
                raise RuntimeError("a load process did not report")
            outs += pipe.recv()[1]
    finally:
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
    return summarise(spec["scenario"], concurrency, duration_s, outs, layout, sampler.report())


def summarise(scenario: str, concurrency: int, duration_s: float, outs: list[dict], layout, usage: dict) -> dict:
    latencies = sorted(x for out in outs for x in out["latencies"])
    statuses: Counter = Counter()
    for out in outs:
        statuses.update(out["statuses"])
    completed = sum(statuses.values())
    conflicts = statuses.get("409", 0)
    load_cpu = usage["cpu_cores"].pop("loadgen", [])
    return {
        "scenario": scenario,
        "concurrency": concurrency,
        "duration_s": duration_s,
        "ok": len(latencies),
        "rps": round(len(latencies) / duration_s, 1),
        "p50_ms": _round(percentile(latencies, 0.50)),
        "p90_ms": _round(percentile(latencies, 0.90)),
        "p99_ms": _round(percentile(latencies, 0.99)),
        "max_ms": _round(latencies[-1] if latencies else None),
        "mean_ms": _round(sum(latencies) / len(latencies) if latencies else None),
        "conflicts": conflicts,
        "errors": completed - len(latencies) - conflicts,
        "statuses": dict(statuses),
        "error_samples": [s for out in outs for s in out["samples"]][:5],
        "loadgen": {"processes": len(layout), "threads": [len(w) for w in layout],
                    "cpu_cores": load_cpu, "saturated": any(c >= 0.9 for c in load_cpu)},
        **usage,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
