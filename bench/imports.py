"""The import benchmark: ``POST /api/v1/imports`` of a CSV file as a head of sales sends it, timed until the
import is done, with the memory of the gateway and the clients service sampled all along.

The file is what a Russian spreadsheet writes (Windows-1251, semicolons): people and companies of the
seeded branch's kind, one or two phones written the ways people type them, an email, tags, a company
column, an owner's email for one row in five (round robin for the rest). 10 % of the rows are duplicates:
half repeat a client of the seeded base (its phone written differently), half repeat an earlier row of
the file (its email). With ``on_duplicate=skip`` they are skipped. Each size runs once; the smaller one
first, so the two peaks of memory can be compared: they must not grow with the file.
"""

from __future__ import annotations

import csv
import json
import random
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psutil
import psycopg2
import requests

from bench.people import People, seed_phone
from bench.sampler import _groups
from bench.system import VHOST, System, database_url

MAPPING = {"name": "ФИО / Компания", "phones": ["Телефон", "Доп. телефон"], "emails": ["E-mail"], "tags": "Метки",
           "custom_fields": {"company": "Организация"}, "source": "Источник", "owner_email": "Ответственный"}
HEADER = ["ФИО / Компания", "Телефон", "Доп. телефон", "E-mail", "Метки", "Организация", "Источник", "Ответственный"]
IMPORT_OPERATOR_CODES = tuple(range(990, 999))  # neither the seed's (900–989) nor the load test's (999)
DUPLICATE_SHARE = 0.10
SAMPLE_S = 0.2
# how long to wait for the consumers to empty their queues: before an import (an earlier one's events would compete
# with it), and after it (for how long the reports lag behind; what is left then is reported)
DRAIN_BEFORE_S, DRAIN_AFTER_S = 900.0, 300.0


def written(e164: str, rng: random.Random) -> str:
    """A +7 number the way someone typed it into a spreadsheet."""
    n = e164[2:]
    return rng.choice((f"+7 {n[:3]} {n[3:6]}-{n[6:8]}-{n[8:]}", f"8 ({n[:3]}) {n[3:6]}-{n[6:8]}-{n[8:]}",
                       f"8{n}", f"+7{n}", f"7 {n[:3]} {n[3:]}"))


def make_file(path: Path, rows: int, seeded: int, managers: list[str], rng: random.Random) -> dict:
    """Write the CSV; returns what it holds (duplicates of the base and of the file, owner emails)."""
    people = People(seed=rng.randrange(10**6))
    code = rng.choice(IMPORT_OPERATOR_CODES)
    offset = rng.randrange(10**7 - 2 * rows)
    base_dups = file_dups = owned = 0
    emails: list[str] = []
    with open(path, "w", encoding="cp1251", errors="replace", newline="") as stream:
        writer = csv.writer(stream, delimiter=";", lineterminator="\r\n")
        writer.writerow(HEADER)
        for index in range(rows):
            person = people.person()
            draw = rng.random()
            email = people.email(person, f"i{offset + index}")
            if draw < DUPLICATE_SHARE / 2 and seeded:
                phone = written(seed_phone(2 * rng.randrange(seeded)), rng)  # every seeded client has this one
                base_dups += 1
            elif draw < DUPLICATE_SHARE and emails:
                phone, email = "", rng.choice(emails)
                file_dups += 1
            else:
                phone = written(f"+7{code}{offset + index:07d}", rng)
                emails.append(email)
            # one in five has a second phone, from numbers no other row uses
            extra = written(f"+7{code}{(offset + rows + index) % 10**7:07d}", rng) if phone and rng.random() < 0.2 else ""
            company = rng.choice(people.companies) if person.kind == "person" and rng.random() < 0.3 else ""
            owner = rng.choice(managers) if managers and rng.random() < 0.2 else ""
            owned += bool(owner)
            writer.writerow([person.name, phone, extra, email, ", ".join(person.tags), company, person.source, owner])
    return {"rows": rows, "bytes": path.stat().st_size, "duplicates_of_base": base_dups,
            "duplicates_in_file": file_dups, "with_owner_email": owned}


class MemoryWatch:
    """Peak RSS of some processes, polled every ``SAMPLE_S`` while it runs."""

    def __init__(self, processes: dict[str, psutil.Process]):
        self.processes = processes
        self.start_rss = {name: _rss(p) for name, p in processes.items()}
        self.peak = dict(self.start_rss)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            for name, process in self.processes.items():
                self.peak[name] = max(self.peak[name], _rss(process))

    def report(self) -> dict:
        mb = 2**20
        return {name: {"before_mb": round(self.start_rss[name] / mb, 1), "peak_mb": round(self.peak[name] / mb, 1)}
                for name in self.processes}


def _rss(process: psutil.Process) -> int:
    try:
        return process.memory_info().rss
    except psutil.Error:
        return 0


def _cpu(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
        return times.user + times.system
    except psutil.Error:
        return 0.0


def unpublished_events() -> int:
    conn = psycopg2.connect(database_url("clients"))
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            return cursor.fetchone()[0]
    finally:
        conn.close()


def queued_events() -> int | None:
    """Messages waiting in the benchmark's vhost (events not yet consumed), or None if RabbitMQ cannot say."""
    try:
        listing = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", VHOST, "messages"],
                                 capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return sum(int(line) for line in listing.split() if line.isdigit())


def wait_for_consumers(limit_s: float) -> tuple[float, int | None]:
    """Wait until every event queue of the vhost is empty (at most ``limit_s``): seconds waited, messages left."""
    started = time.monotonic()
    while (left := queued_events()) and time.monotonic() - started < limit_s:
        time.sleep(2)
    return round(time.monotonic() - started, 1), left


def run_one(crm: System, head_token: str, rows: int, seeded: int, managers: list[str], rng: random.Random,
            say=print) -> dict:
    # an earlier import's events still queued for the consumers would compete with this one for the cores
    backlog_s, backlog = wait_for_consumers(DRAIN_BEFORE_S)
    if backlog:
        say(f"{backlog:,} events still queued from before after {backlog_s} s; measuring anyway")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"clients-{rows}.csv"
        content = make_file(path, rows, seeded, managers, rng)
        every = crm.processes()  # the event consumers (reports, tasks, webhooks) share the two cores with the import
        processes = {name: p for name, p in every.items() if name in ("gateway", "clients")}
        cpu_before = {name: _cpu(p) for name, p in every.items()}
        groups_before = _groups()
        machine_before = sum(psutil.cpu_times()) - psutil.cpu_times().idle
        headers = {"Authorization": f"Bearer {head_token}"}
        with MemoryWatch(processes) as memory:
            started = time.monotonic()
            with open(path, "rb") as stream:
                response = requests.post(
                    f"{crm.base_url}/imports", headers=headers, timeout=600,
                    files={"file": (path.name, stream, "text/csv")},
                    data={"mapping": json.dumps(MAPPING, ensure_ascii=False), "on_duplicate": "skip"},
                )
            accepted = time.monotonic()
            if response.status_code != 202:
                raise RuntimeError(f"POST /imports answered {response.status_code}: {response.text[:500]}")
            import_id = response.json()["id"]
            while True:
                state = requests.get(f"{crm.base_url}/imports/{import_id}", headers=headers, timeout=30).json()
                if state["status"] in ("done", "failed"):
                    break
                time.sleep(0.5)
            done = time.monotonic()
    cpu = {name: round(_cpu(p) - cpu_before[name], 1) for name, p in every.items()}
    cpu["other services"] = round(sum(v for name, v in cpu.items() if name not in ("gateway", "clients")), 1)
    for group, pids in _groups().items():  # PostgreSQL's and RabbitMQ's processes (shared with others, if any)
        cpu[group] = round(sum(t - groups_before[group].get(pid, 0.0) for pid, t in pids.items()), 1)
    machine = round(sum(psutil.cpu_times()) - psutil.cpu_times().idle - machine_before, 1)
    drained = time.monotonic()
    while unpublished_events() and time.monotonic() - drained < 600:
        time.sleep(1)
    published_s = round(time.monotonic() - drained, 1)
    consumed_s, left = wait_for_consumers(DRAIN_AFTER_S)
    total_s = done - started
    result = {
        "file": content, "import_id": import_id, "status": state["status"], "error": state.get("error"),
        "created": state["created"], "skipped": state["skipped"], "merged": state["merged"],
        "rows_with_errors": state["rows_with_errors"], "upload_s": round(accepted - started, 1),
        "processing_s": round(done - accepted, 1), "total_s": round(total_s, 1),
        "rows_per_s": round(rows / total_s), "events_published_s_after_done": published_s,
        "events_consumed_s_after_done": round(published_s + consumed_s, 1), "events_left_unconsumed": left,
        "backlog_before": {"waited_s": backlog_s, "left": backlog},
        "cpu_s": {**cpu, "machine": machine}, "memory": memory.report(),
    }
    say(f"import of {rows:,} rows: {result['status']} in {result['total_s']} s ({result['rows_per_s']:,} rows/s; "
        f"upload {result['upload_s']} s), created {result['created']:,}, skipped {result['skipped']:,}, "
        f"errors {result['rows_with_errors']:,}; peak RSS gateway {memory.report()['gateway']['peak_mb']} MB, "
        f"clients {memory.report()['clients']['peak_mb']} MB; events all published "
        f"{result['events_published_s_after_done']} s after, consumed {result['events_consumed_s_after_done']} s after "
        f"({left or 0:,} still queued then); "
        f"CPU s {json.dumps(result['cpu_s'])}")
    return result


def measure(crm: System, head_token: str, seeded: int, managers: list[str], sizes=(10_000, 100_000), say=print) -> dict:
    rng = random.Random(time.time_ns())
    runs = [run_one(crm, head_token, rows, seeded, managers, rng, say) for rows in sizes]
    return {"runs": runs, "duplicate_share": DUPLICATE_SHARE, "mapping": MAPPING}
