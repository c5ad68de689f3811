"""`python -m bench.telephony`: routing an incoming call, and uploading recordings (`make bench` runs it last).

On a CRM of its own (databases ``crm_bench_tel_*``, vhost ``crm-bench-tel`` unless CRM_BENCH_ID says otherwise),
with one branch, 20 managers with extensions and 2,000 clients with phones:

1. the baseline: GET /clients/{id} through an API key (one RPC read behind the gateway) at 10 workers;
2. ``ringing`` for a known client's number at 10 workers (authentication by key, the branch's users read, one
   RPC that finds the client, records the call and decides the route), and for unknown numbers (a new client by
   round robin as well): p50 and p99, and p99 as a ratio of the baseline's;
3. recording uploads: one 50 MB WAV alone (MB/s, against writing the same bytes to a file on the same disk as
   the floor), then ten at once of 5 MB and of 50 MB, sampling the gateway process's resident memory every 50 ms:
   its peak growth must not grow with the file size.

Results: bench/results/<time>-telephony.json and a Markdown table on stdout (copied into docs/benchmarks.md).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime

os.environ.setdefault("CRM_BENCH_ID", "tel")

import requests  # noqa: E402

from bench import report, system  # noqa: E402
from crm_common.testing import audio  # noqa: E402

MANAGERS = 20
CLIENTS = 2_000
WORKERS = 10
DURATION_S = 10.0
MB = 1024 * 1024


def say(message: str) -> None:
    print(f"[bench telephony {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _ok(response, status=(200, 201)):
    assert response.status_code in status, f"{response.request.method} {response.url} → {response.status_code} {response.text}"
    return response.json()


def seed(base: str) -> dict:
    admin = requests.Session()
    token = _ok(admin.post(f"{base}/auth/login", json={"email": system.ADMIN_EMAIL, "password": system.ADMIN_PASSWORD}))
    admin.headers["Authorization"] = f"Bearer {token['access_token']}"
    branch = _ok(admin.post(f"{base}/branches", json={"name": "Телефония", "code": f"T{uuid.uuid4().hex[:8]}"}))
    _ok(admin.post(f"{base}/users", json={"email": f"head-{uuid.uuid4().hex[:6]}@bench.local", "name": "Head",
                                           "password": "bench-pass-1", "role": "head", "branch_id": branch["id"]}))
    managers = [_ok(admin.post(f"{base}/users", json={
        "email": f"m{i}-{uuid.uuid4().hex[:6]}@bench.local", "name": f"Manager {i}", "password": "bench-pass-1",
        "role": "manager", "branch_id": branch["id"], "extension": f"{300 + i}"})) for i in range(MANAGERS)]
    phones, client_ids = [], []
    for i in range(CLIENTS):
        phone = f"+7916{i:07d}"
        client = _ok(admin.post(f"{base}/clients", json={"kind": "person", "name": f"Клиент {i}", "phones": [phone],
                                                          "branch_id": branch["id"],
                                                          "owner_id": managers[i % MANAGERS]["id"]}))
        phones.append(phone)
        client_ids.append(client["id"])
    keys = {}
    for scopes in (["telephony:write"], ["clients:read"]):
        keys[scopes[0]] = _ok(admin.post(f"{base}/api-keys", json={"name": scopes[0], "branch_id": branch["id"],
                                                                    "scopes": scopes}))["key"]
    return {"phones": phones, "client_ids": client_ids, "keys": keys, "admin": admin}


def drive(make_request, workers: int, duration_s: float, warmup_s: float = 2.0) -> dict:
    """``workers`` threads, each with its own keep-alive session, calling ``make_request(session, n)``."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    start = time.monotonic()
    measure_from, stop_at = start + warmup_s, start + warmup_s + duration_s

    def worker(index: int):
        session = requests.Session()
        n = 0
        while True:
            began = time.monotonic()
            if began >= stop_at:
                return
            status = make_request(session, f"{index}-{n}")
            took = time.monotonic() - began
            n += 1
            if began >= measure_from:
                with lock:
                    latencies.append(took)
                    if status >= 400:
                        errors[0] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ordered = sorted(latencies)

    def pct(q):
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1) if ordered else None

    return {"requests": len(ordered), "rps": round(len(ordered) / duration_s, 1), "p50_ms": pct(0.50),
            "p99_ms": pct(0.99), "errors": errors[0]}


def routing(base: str, data: dict) -> dict:
    reader, exchange = data["keys"]["clients:read"], data["keys"]["telephony:write"]
    ids, phones = data["client_ids"], data["phones"]
    run_id = uuid.uuid4().hex[:6]

    def get_client(session, n):
        index = hash(n) % len(ids)
        return session.get(f"{base}/clients/{ids[index]}", headers={"X-Api-Key": reader}, timeout=30).status_code

    def ring(number_of):
        def call(session, n):
            body = {"call_id": f"{run_id}-{n}", "event": "ringing", "direction": "in", "from": number_of(n),
                    "to": "100", "at": datetime.now(UTC).isoformat()}
            response = session.post(f"{base}/telephony/events", json=body, headers={"X-Api-Key": exchange}, timeout=30)
            return response.status_code
        return call

    known = ring(lambda n: phones[hash(n) % len(phones)])
    unknown = ring(lambda n: f"+7917{abs(hash((run_id, n))) % 10**7:07d}")
    results = {}
    for name, fn in (("get_client", get_client), ("ringing_known", known), ("ringing_unknown", unknown),
                     ("get_client_again", get_client)):
        results[name] = drive(fn, WORKERS, DURATION_S)
        say(f"{name} x{WORKERS}: {json.dumps(results[name])}")
    baseline_p99 = min(results["get_client"]["p99_ms"], results["get_client_again"]["p99_ms"])
    for name in ("ringing_known", "ringing_unknown"):
        results[name]["p99_vs_get_client"] = round(results[name]["p99_ms"] / baseline_p99, 2)
    return results


class MemoryWatch:
    def __init__(self, process):
        self.process = process
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.samples.append(self.process.memory_info().rss)
            time.sleep(0.05)

    def __enter__(self):
        self.before = self.process.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def uploads(base: str, data: dict, crm) -> dict:
    exchange = data["keys"]["telephony:write"]
    gateway = crm.processes()["gateway"]
    run_id = uuid.uuid4().hex[:6]

    def new_call(n):
        body = {"call_id": f"up-{run_id}-{n}", "event": "ringing", "direction": "in", "from": data["phones"][n],
                "to": "100", "at": datetime.now(UTC).isoformat()}
        return _ok(requests.post(f"{base}/telephony/events", json=body, headers={"X-Api-Key": exchange}, timeout=30))

    def upload(call_id: str, path: str) -> float:
        with open(path, "rb") as body:
            began = time.monotonic()
            response = requests.put(f"{base}/calls/{call_id}/recording", data=body, timeout=600,
                                    headers={"X-Api-Key": exchange, "Content-Type": "audio/wav"})
        assert response.status_code == 201, response.text
        return time.monotonic() - began

    out: dict = {}
    with tempfile.TemporaryDirectory() as folder:
        files = {}
        for size_mb in (5, 50):
            path = os.path.join(folder, f"{size_mb}.wav")
            with open(path, "wb") as target:
                target.write(audio.wav(1.0))
                remaining = size_mb * MB - target.tell()
                while remaining > 0:
                    target.write(os.urandom(min(MB, remaining)))
                    remaining -= MB
            files[size_mb] = path
        # the floor: the same 50 MB written to a file on this disk, as the gateway's temporary file is
        began = time.monotonic()
        with open(files[50], "rb") as source, open(os.path.join(folder, "copy"), "wb") as target:
            while chunk := source.read(64 * 1024):
                target.write(chunk)
            target.flush()
            os.fsync(target.fileno())
        disk_s = time.monotonic() - began
        one = upload(new_call(0)["id"], files[50])
        out["one_50mb"] = {"seconds": round(one, 2), "mb_per_s": round(50 / one, 1),
                           "disk_copy_mb_per_s": round(50 / disk_s, 1), "ratio_to_disk": round(disk_s / one, 2)}
        say(f"one 50 MB upload: {json.dumps(out['one_50mb'])}")
        for size_mb in (5, 50):
            calls = [new_call(1 + i + (10 if size_mb == 50 else 0))["id"] for i in range(10)]
            durations: list[float] = []
            with MemoryWatch(gateway) as watch:
                began = time.monotonic()
                threads = [threading.Thread(target=lambda c=c, d=durations, f=files[size_mb]: d.append(upload(c, f)))
                           for c in calls]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                wall = time.monotonic() - began
            out[f"ten_{size_mb}mb"] = {
                "wall_s": round(wall, 2), "total_mb_per_s": round(10 * size_mb / wall, 1),
                "slowest_s": round(max(durations), 2), "median_s": round(statistics.median(durations), 2),
                "gateway_rss_before_mb": round(watch.before / MB, 1),
                "gateway_rss_peak_mb": round(max(watch.samples) / MB, 1),
                "gateway_rss_growth_mb": round((max(watch.samples) - watch.before) / MB, 1),
            }
            say(f"ten {size_mb} MB uploads at once: {json.dumps(out[f'ten_{size_mb}mb'])}")
    return out


def markdown(results: dict) -> str:
    r, u = results["routing"], results["uploads"]
    lines = [
        f"Measured by `python -m bench.telephony` on {results['started_at']} at commit {results['machine']['commit']}; "
        f"{results['machine']['cpu']} x{results['machine']['cores']}, load average {results['machine']['load_average']}.",
        "",
        f"| {WORKERS} workers, {DURATION_S:g} s each | req/s | p50 ms | p99 ms | p99 / baseline p99 | errors |",
        "|---|---|---|---|---|---|",
    ]
    for name, label in (("get_client", "baseline: GET /clients/{id} (key)"),
                        ("ringing_known", "ringing, a known client → its owner"),
                        ("ringing_unknown", "ringing, an unknown number → a new client"),
                        ("get_client_again", "baseline again")):
        row = r[name]
        lines.append(f"| {label} | {row['rps']} | {row['p50_ms']} | {row['p99_ms']} | "
                     f"{row.get('p99_vs_get_client', '')} | {row['errors']} |")
    one = u["one_50mb"]
    lines += ["", "| recordings | result |", "|---|---|",
              f"| one 50 MB upload | {one['mb_per_s']} MB/s ({one['seconds']} s); writing the file to this disk: "
              f"{one['disk_copy_mb_per_s']} MB/s (upload / disk = {one['ratio_to_disk']}) |"]
    for size in (5, 50):
        row = u[f"ten_{size}mb"]
        lines.append(f"| ten {size} MB uploads at once | {row['total_mb_per_s']} MB/s in all, {row['wall_s']} s; "
                     f"gateway RSS {row['gateway_rss_before_mb']} → peak {row['gateway_rss_peak_mb']} MB "
                     f"(+{row['gateway_rss_growth_mb']} MB) |")
    return "\n".join(lines)


def main() -> int:
    system.ensure_vhost()
    system.reset_databases()
    results = {"started_at": datetime.now(UTC).isoformat(timespec="seconds"), "machine": report.machine()}
    crm = system.System(port=system.free_port(), log_dir=system.RESULTS / "logs-telephony")
    try:
        say(f"starting the CRM on port {crm.port}")
        crm.start(extra_env={"CRM_RECORDING_MAX_MB": "60"})
        say(f"seeding {MANAGERS} managers and {CLIENTS} clients")
        data = seed(crm.base_url)
        results["routing"] = routing(crm.base_url, data)
        results["uploads"] = uploads(crm.base_url, data, crm)
    finally:
        crm.stop()
    system.RESULTS.mkdir(parents=True, exist_ok=True)
    path = system.RESULTS / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-telephony.json"
    path.write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    say(f"raw numbers: {path}")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
