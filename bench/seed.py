"""Seeding: identity and pipelines through the API (they need the gateway's rules and ids), the bulk of
clients and deals straight into the services' databases with COPY.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from bench.bulk import BulkLoader
from bench.people import People
from bench.rows import (
    CLIENT_COLUMNS,
    CONTACT_COLUMNS,
    DEAL_COLUMNS,
    TIMELINE_COLUMNS,
    VISIT_COLUMNS,
    PipelineRows,
    client_chunks,
    deal_chunks,
)
from bench.system import ADMIN_EMAIL, ADMIN_PASSWORD, database_url
from bench.tasks import PENALTY_COLUMNS, TASK_COLUMNS, task_chunks
from crm_common.testing.system import Api

PASSWORD = "bench-password-1"
HEAD_EMAIL = "head@bench.local"
PIPELINES = (
    ("Розница", (("Новая заявка", "open", 1), ("Квалификация", "open", 3), ("Подбор товара", "open", 5),
                 ("Счёт выставлен", "open", 7), ("Оплачено", "won", None), ("Отказ", "lost", None))),
    ("Опт", (("Первичный контакт", "open", 2), ("КП отправлено", "open", 5), ("Переговоры", "open", 10),
             ("Договор на согласовании", "open", 14), ("Сделка закрыта", "won", None), ("Проиграна", "lost", None))),
)


@dataclass
class Manager:
    id: str
    token: str


@dataclass
class Identity:
    """Who the load test acts as, and the pipelines deals live in."""

    branch_id: str
    head_id: str
    head_token: str
    managers: list[Manager]
    pipelines: list[dict]


def seed_identity(base_url: str, managers: int, people: People) -> None:
    """A branch, its head, its managers and two pipelines, created as an administrator and the head would."""
    admin = Api(base_url).login(ADMIN_EMAIL, ADMIN_PASSWORD)
    branch = admin.ok("POST", "/branches", {"name": "Москва (бенчмарк)", "code": "BENCH"})
    admin.ok("POST", "/users", {"email": HEAD_EMAIL, "name": people.person().name, "password": PASSWORD,
                                "role": "head", "branch_id": branch["id"]})
    head = Api(base_url).login(HEAD_EMAIL, PASSWORD)
    for index in range(managers):
        last, first, _ = people.rng.choice(people.male + people.female)
        head.ok("POST", "/users", {"email": f"manager{index:03d}@bench.local", "name": f"{first} {last}",
                                   "password": PASSWORD, "role": "manager"})
    for name, stages in PIPELINES:
        head.ok("POST", "/pipelines", {"name": name, "stages": [
            {"name": stage, "kind": kind, "max_days": max_days} for stage, kind, max_days in stages
        ]})


def load_identity(base_url: str) -> Identity:
    """Log in as the seeded head and managers (works as well on the databases a previous run left)."""
    head = Api(base_url).login(HEAD_EMAIL, PASSWORD)
    users = head.pages("/users?role=manager&active=true", limit=200)
    managers = [
        Manager(user["id"], Api(base_url).login(user["email"], PASSWORD).http.headers["Authorization"].split()[1])
        for user in sorted(users, key=lambda u: u["email"])
    ]
    pipelines = sorted(head.pages("/pipelines"), key=lambda p: p["name"], reverse=True)
    token = head.http.headers["Authorization"].split()[1]
    return Identity(head.me["branch_id"], head.me["id"], token, managers, pipelines)


def seed_bulk(identity: Identity, clients: int, deals: int, people: People, tasks: int = 0) -> dict:
    """COPY the clients (with contacts and a timeline entry each), the deals (with 1–4 stage visits each) and the
    tasks (with a penalty for each late one)."""
    now = time.time()
    manager_ids = [m.id for m in identity.managers]
    report: dict[str, dict] = {}
    made: list[tuple[str, str]] = []
    started = time.perf_counter()
    with BulkLoader(database_url("clients"), ("clients", "client_contacts", "timeline_entries")) as loader:
        for lines, contacts, timeline, ids in client_chunks(clients, identity.branch_id, manager_ids, now, people):
            loader.copy("clients", CLIENT_COLUMNS, lines)
            loader.copy("client_contacts", CONTACT_COLUMNS, contacts)
            loader.copy("timeline_entries", TIMELINE_COLUMNS, timeline)
            made += ids
    report["clients"] = {"rows": loader.rows, **loader.timings, "total_s": round(time.perf_counter() - started, 1)}

    pipelines = [PipelineRows.from_api(p) for p in identity.pipelines]
    started = time.perf_counter()
    with BulkLoader(database_url("deals"), ("deals", "stage_history")) as loader:
        for lines, visits in deal_chunks(deals, identity.branch_id, made, manager_ids, pipelines, now, random.Random(7)):
            loader.copy("deals", DEAL_COLUMNS, lines)
            loader.copy("stage_history", VISIT_COLUMNS, visits)
    report["deals"] = {"rows": loader.rows, **loader.timings, "total_s": round(time.perf_counter() - started, 1)}

    if tasks:
        started = time.perf_counter()
        with BulkLoader(database_url("tasks"), ("tasks", "penalties")) as loader:
            for lines, penalties in task_chunks(tasks, identity.branch_id, identity.head_id, made, now, random.Random(13)):
                loader.copy("tasks", TASK_COLUMNS, lines)
                loader.copy("penalties", PENALTY_COLUMNS, penalties)
        report["tasks"] = {"rows": loader.rows, **loader.timings, "total_s": round(time.perf_counter() - started, 1)}
    return report
