"""The reports part of ``make bench``: the read model filled by ``crm-reports rebuild`` from the seeded
clients and deals (which times the rebuild), each report's latency at 1 and 10 workers, and the lag from a
stage move to the funnel report showing it under a steady 50 moves/s."""

from __future__ import annotations

import http.client
import json
import random
import statistics
import subprocess
import threading
import time
from datetime import UTC, datetime

from bench import load
from bench.system import AMQP_URI, DB_PREFIX, PG_SERVER, ROOT

REPORT_SCENARIOS = ("report_client_base", "report_funnel", "report_plan", "report_channels", "report_managers",
                    "report_scripts")
REPORT_LEVELS = (1, 10)
LAG_RATE = 50  # moves per second
LAG_SECONDS = 20.0
# senders of the moves, each on its own schedule: with 10, each had to be answered within 200 ms to keep the rate,
# so a slow moment lowered the rate offered instead of showing as lag; 25 leave each 500 ms
LAG_SENDERS = 25


def _month(back: int = 0) -> str:
    now = datetime.now(UTC)
    index = now.year * 12 + now.month - 1 - back
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


class ReportRequests(load.GetClient):
    """A head of sales opening one report over and over, with the periods a person picks."""

    def __init__(self, data: dict, worker: int, rng: random.Random):
        self.paths, self.token, self.rng = data["paths"], data["token"], rng

    def next(self):
        return "GET", self.rng.choice(self.paths), None, self.token


def report_data(scenario: str, identity) -> dict:
    """Paths of one report: the last month, the last quarter and the last year, for each pipeline."""
    periods = [(_month(0), _month(0)), (_month(2), _month(0)), (_month(11), _month(0))]
    base = "/api/v1/reports"
    if scenario == "report_client_base":
        paths = [f"{base}/client-base?from={a}&to={b}" for a, b in periods]
    elif scenario == "report_funnel":
        paths = [f"{base}/funnel?pipeline_id={p['id']}&from={a}&to={b}" for p in identity.pipelines for a, b in periods]
        paths += [f"{base}/funnel?pipeline_id={p['id']}&owner_id={m.id}&from={a}&to={b}"
                  for p in identity.pipelines for m in identity.managers[:3] for a, b in periods]
    elif scenario == "report_plan":
        paths = [f"{base}/plan?month={_month(back)}" for back in range(3)]
    elif scenario == "report_channels":
        paths = [f"{base}/channels?from={a}&to={b}" for a, b in periods]
    elif scenario == "report_managers":
        paths = [f"{base}/managers?month={_month(back)}" for back in range(3)]
    else:
        paths = [f"{base}/scripts?from={a}&to={b}" for a, b in periods]
    return {"paths": paths, "token": identity.head_token}


for _name in REPORT_SCENARIOS:
    load.SCENARIOS[_name] = ReportRequests


def rebuild(log_path) -> dict:
    """``crm-reports rebuild`` against the bench system, as an operator runs it; its wall time."""
    env = {"AMQP_URI": AMQP_URI, "CRM_DATABASE_URL": PG_SERVER, "CRM_DATABASE_PREFIX": DB_PREFIX,
           "PATH": str(ROOT / ".venv" / "bin"), "COLUMNS": "120", "CRM_LOG_LEVEL": "WARNING"}
    started = time.monotonic()
    with open(log_path, "w") as log:
        done = subprocess.run([str(ROOT / ".venv" / "bin" / "crm-reports"), "rebuild"], cwd=ROOT, env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    seconds = round(time.monotonic() - started, 1)
    tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
    if done.returncode != 0:
        raise RuntimeError(f"crm-reports rebuild failed ({done.returncode}): {' | '.join(tail)}")
    return {"rebuild_s": seconds, "output": tail}


def _funnel_entries(port: int, token: str, pipeline_id: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", f"/api/v1/reports/funnel?pipeline_id={pipeline_id}&from={_month()}&to={_month()}",
                     headers={"Authorization": f"Bearer {token}"})
        body = json.loads(conn.getresponse().read())
        return sum(stage["entered"] for stage in body["stages"])
    finally:
        conn.close()


def measure_lag(port: int, identity, moves: dict, rate: int = LAG_RATE, seconds: float = LAG_SECONDS) -> dict:
    """Moves at a steady ``rate`` into one pipeline; a poller reads its funnel for this month. The k-th move
    shows when the funnel's entries reach base + k: lag = that moment − the moment the move was answered."""
    pipeline_id = identity.pipelines[0]["id"]
    workers = [dict(w, deals=[d for d in w["deals"] if d[1] == pipeline_id]) for w in moves["workers"]]
    workers = [w for w in workers if w["deals"]]
    token = identity.head_token
    answered: list[float] = []
    seen: list[tuple[float, int]] = []
    lock, stop = threading.Lock(), threading.Event()
    base = _funnel_entries(port, token, pipeline_id)
    total = int(rate * seconds)
    interval = len(workers) / rate

    def mover(index: int, worker: dict) -> None:
        requests = load.MoveDeals({"workers": [worker], "open_stages": moves["open_stages"]}, 0, random.Random(index))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        start = time.monotonic() + index * interval / len(workers)
        for step in range(total // len(workers)):
            delay = start + step * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            method, path, body, auth = requests.next()
            conn.request(method, path, body=body, headers={"Authorization": f"Bearer {auth}",
                                                            "Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            requests.done(response.status)
            if response.status == 200:
                with lock:
                    answered.append(time.monotonic())
        conn.close()

    def poller() -> None:
        while not stop.is_set():
            seen.append((time.monotonic(), _funnel_entries(port, token, pipeline_id) - base))
            time.sleep(0.05)  # a head refreshing a report very often, not a second load test

    watcher = threading.Thread(target=poller, daemon=True)
    watcher.start()
    threads = [threading.Thread(target=mover, args=(i, w)) for i, w in enumerate(workers)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sent_for = time.monotonic() - began
    deadline = time.monotonic() + 30
    while (not seen or seen[-1][1] < len(answered)) and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    watcher.join()
    answered.sort()
    lags, position = [], 0
    for k, moved_at in enumerate(answered, start=1):
        while position < len(seen) and seen[position][1] < k:
            position += 1
        if position == len(seen):
            break
        lags.append(max(0.0, seen[position][0] - moved_at))
    lags.sort()
    polls = [b[0] - a[0] for a, b in zip(seen, seen[1:])]
    return {
        "rate_target": rate, "moves": len(answered), "rate_achieved": round(len(answered) / sent_for, 1),
        "shown": len(lags), "lag_p50_ms": _ms(load.percentile(lags, 0.5)), "lag_p99_ms": _ms(load.percentile(lags, 0.99)),
        "lag_max_ms": _ms(lags[-1] if lags else None),
        "poll_interval_ms": _ms(statistics.median(polls) if polls else None),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)
