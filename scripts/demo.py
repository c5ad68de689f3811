#!/usr/bin/env python3
"""Fill a running CRM with realistic demo data through its public API (Faker, ru_RU).

    make demo                       # starts the CRM and loads this once it is up
    .venv/bin/python scripts/demo.py http://127.0.0.1:8000/api/v1 admin@crm.local admin12345

Two branches, a head and three managers each (password ``demo-pass-1``), clients from several
channels with interactions and touchpoints, a sales pipeline with scripts, deals at every stage;
process steps (task templates: first call, send proposal, after-sale call, upsell offer) and the
automations that set them, tasks with checklists, one task that misses its deadline (and so gets its
penalty at the next deadline check) and a complaint.
Running it again on a CRM that has the demo branches changes nothing.
"""

from __future__ import annotations

import random
import sys
import time
from datetime import UTC, datetime, timedelta

import requests
from faker import Faker

DEMO_PASSWORD = "demo-pass-1"
BRANCHES = [("Москва", "MSK"), ("Санкт-Петербург", "SPB")]
SOURCES = ["website", "yandex_direct", "instagram", "referral", "exhibition", "cold_call"]
TAGS = ["vip", "опт", "розница", "повторный", "b2b", "тендер"]
STAGES = [
    {"name": "Новая заявка", "kind": "open", "max_days": 1},
    {"name": "Выявление потребности", "kind": "open", "max_days": 3},
    {"name": "КП отправлено", "kind": "open", "max_days": 5},
    {"name": "Переговоры", "kind": "open", "max_days": 7},
    {"name": "Оплачено", "kind": "won"},
    {"name": "Отказ", "kind": "lost"},
]
LOST_REASONS = ["Дорого", "Выбрали конкурента", "Нет бюджета", "Не дозвонились"]
# the written steps of the sales and service processes: (name, process, instruction, checklist, hours, penalty)
TEMPLATES = [
    ("Первый звонок", "Продажа", "Позвоните новому клиенту в течение дня: представьтесь, выясните задачу, "
     "договоритесь о следующем шаге.", ["Представиться", "Выявить потребность", "Назначить следующий шаг"], 24, None),
    ("Отправить КП", "Продажа", "Подготовьте коммерческое предложение по шаблону, согласуйте скидку с руководителем "
     "и отправьте клиенту.", ["Собрать КП", "Согласовать цену", "Отправить клиенту"], 48, "1000.00"),
    ("Звонок после продажи", "Сервис", "Через неделю после оплаты узнайте, всё ли устроило клиента; запишите отзыв.",
     ["Позвонить", "Записать отзыв"], 24, None),
    ("Предложение допродажи", "Сервис", "Через месяц после покупки предложите сопутствующие товары или продление.",
     ["Подобрать предложение", "Позвонить клиенту"], 72, None),
]


PHONE_FORMATS = ["+7 9{a}{b} {c}-{d}-{e}", "8 (9{a}{b}) {c}-{d}-{e}", "89{a}{b}{c}{d}{e}"]


def phone(rnd: random.Random) -> str:
    """A Russian mobile number written the way people write them (Faker's numbers are mostly not real)."""
    return rnd.choice(PHONE_FORMATS).format(
        a=rnd.randint(0, 9), b=rnd.randint(0, 9), c=rnd.randint(100, 999), d=rnd.randint(10, 99), e=rnd.randint(10, 99)
    )


class Api:
    def __init__(self, base: str):
        self.base = base.rstrip("/")
        self.http = requests.Session()

    def login(self, email: str, password: str) -> Api:
        token = self.call("POST", "/auth/login", {"email": email, "password": password})["access_token"]
        self.http.headers["Authorization"] = f"Bearer {token}"
        return self

    def call(self, method: str, path: str, body: dict | None = None, ok=(200, 201)):
        response = self.http.request(method, self.base + path, json=body, timeout=30)
        if response.status_code not in ok:
            raise RuntimeError(f"{method} {path} → {response.status_code}: {response.text[:300]}")
        return response.json()


def seed(base: str, admin_email: str, admin_password: str, clients_per_branch: int = 40) -> str:
    fake = Faker("ru_RU")
    Faker.seed(2026)
    rnd = random.Random(2026)
    admin = Api(base).login(admin_email, admin_password)
    existing = {b["code"] for b in admin.call("GET", "/branches?limit=200")["items"]}
    if {code for _, code in BRANCHES} <= existing:
        return "demo data is already loaded"

    summary = []
    overdue: list[str] = []
    for branch_name, code in BRANCHES:
        branch = admin.call("POST", "/branches", {"name": branch_name, "code": code})
        head_email = f"head.{code.lower()}@demo.crm"
        admin.call("POST", "/users", {"email": head_email, "name": fake.name(), "password": DEMO_PASSWORD,
                                      "role": "head", "branch_id": branch["id"]})
        head = Api(base).login(head_email, DEMO_PASSWORD)
        managers = []
        for index in range(3):
            email = f"manager{index + 1}.{code.lower()}@demo.crm"
            head.call("POST", "/users", {"email": email, "name": fake.name(), "password": DEMO_PASSWORD,
                                         "role": "manager"})
            managers.append(Api(base).login(email, DEMO_PASSWORD))

        pipeline = head.call("POST", "/pipelines", {"name": "Продажи", "stages": STAGES})
        stages = pipeline["stages"]
        process_steps(head, pipeline)
        for stage in stages[:3]:
            head.call("POST", "/scripts", {
                "title": f"Скрипт: {stage['name']}", "stage_id": stage["id"],
                "body": "1. Поздоровайтесь и представьтесь.\n2. Уточните задачу клиента.\n"
                        "3. Договоритесь о следующем шаге и сроке.",
            })

        clients = 0
        deals = 0
        for _ in range(clients_per_branch):
            manager = rnd.choice(managers)
            is_company = rnd.random() < 0.4
            body = {
                "kind": "company" if is_company else "person",
                "name": fake.company() if is_company else fake.name(),
                "phones": [phone(rnd)],
                "emails": [fake.unique.email()],
                "source": rnd.choice(SOURCES),
                "tags": rnd.sample(TAGS, rnd.randint(0, 2)),
                "custom_fields": {"city": fake.city()},
            }
            response = manager.http.post(manager.base + "/clients", json=body, timeout=30)
            if response.status_code != 201:  # a duplicate phone or email: skip it, as a manager would
                continue
            client = response.json()
            clients += 1
            for _ in range(rnd.randint(1, 3)):
                manager.call("POST", f"/clients/{client['id']}/interactions", {
                    "type": rnd.choice(["call", "email", "meeting", "note"]),
                    "direction": rnd.choice(["in", "out"]),
                    "text": fake.sentence(nb_words=8),
                    "duration_s": rnd.randint(30, 900),
                })
            if rnd.random() < 0.7:
                deal = manager.call("POST", "/deals", {
                    "client_id": client["id"], "pipeline_id": pipeline["id"],
                    "title": f"Заказ {fake.bs()}"[:200], "amount": f"{rnd.randint(5, 900) * 1000}.00",
                    "currency": "RUB",
                })
                deals += 1
                open_stages = [s for s in stages if s["kind"] == "open"]
                outcome = rnd.choice(["open", "open", "won", "lost"])
                reached = rnd.randrange(len(open_stages)) if outcome != "won" else len(open_stages) - 1
                for stage in open_stages[1:reached + 1]:
                    manager.call("POST", f"/deals/{deal['id']}/stage", {"stage_id": stage["id"]})
                if outcome == "won":
                    won = next(s for s in stages if s["kind"] == "won")
                    manager.call("POST", f"/deals/{deal['id']}/stage", {"stage_id": won["id"]})
                elif outcome == "lost":
                    lost = next(s for s in stages if s["kind"] == "lost")
                    manager.call("POST", f"/deals/{deal['id']}/stage",
                                 {"stage_id": lost["id"], "lost_reason": rnd.choice(LOST_REASONS)})
        for _ in range(5):
            head.call("POST", "/touchpoints", {
                "channel": rnd.choice(["web_form", "call", "telegram", "walk_in"]), "name": fake.name(),
                "email": fake.unique.email(), "message": "Хочу узнать цены", "utm": {"utm_source": rnd.choice(SOURCES)},
            })
        summary.append(f"{branch_name}: {clients} clients, {deals} deals")
        overdue.append(tasks_and_complaints(head, managers, fake, rnd))
    if wait_for_penalties(admin, overdue):
        summary.append("the overdue demo tasks have their penalties")
    return ("demo data loaded — " + "; ".join(summary)
            + f". Logins: head.msk@demo.crm, manager1.msk@demo.crm … (password {DEMO_PASSWORD})")


def process_steps(head: Api, pipeline: dict) -> None:
    """The branch's task templates and the automations that set them off: a first call for every new client,
    a proposal when a deal reaches "КП отправлено", an after-sale call a week after a win, an upsell a month later."""
    made = {}
    for name, process, instruction, checklist, hours, penalty in TEMPLATES:
        body = {"name": name, "process": process, "instruction": instruction, "checklist": checklist,
                "due_in_hours": hours}
        if penalty:
            body["penalty"] = {"amount": penalty, "currency": "RUB"}
        made[name] = head.call("POST", "/task-templates", body)["id"]
    proposal_stage = next(s["id"] for s in pipeline["stages"] if s["name"] == "КП отправлено")
    for event, name, extra in (
        ("client_created", "Первый звонок", {}),
        ("deal_stage_changed", "Отправить КП", {"pipeline_id": pipeline["id"], "stage_id": proposal_stage}),
        ("deal_won", "Звонок после продажи", {"delay_hours": 24 * 7}),
        ("deal_won", "Предложение допродажи", {"delay_hours": 24 * 30}),
    ):
        head.call("POST", "/automations", {"event": event, "template_id": made[name], "assign_to": "owner", **extra})


def tasks_and_complaints(head: Api, managers: list[Api], fake, rnd: random.Random) -> str:
    """Tasks with checklists (one done), one that misses its deadline in a few seconds, and a complaint.
    Returns the id of the task that becomes overdue."""
    soon = datetime.now(UTC)
    for manager in managers:
        me = manager.call("GET", "/me")
        task = head.call("POST", "/tasks", {
            "title": "Обзвонить клиентов без сделок", "assignee_id": me["id"],
            "due_at": (soon + timedelta(days=rnd.randint(1, 5))).isoformat(),
            "checklist": ["Выгрузить список", "Позвонить каждому", "Записать итоги"],
        })
        if rnd.random() < 0.5:
            for index in range(3):
                manager.call("POST", f"/tasks/{task['id']}/checklist/{index}", {"done": True})
            manager.call("POST", f"/tasks/{task['id']}/complete")
    late = head.call("POST", "/tasks", {
        "title": "Сдать отчёт по звонкам", "assignee_id": manager_id(managers[0]),
        "due_at": (datetime.now(UTC) + timedelta(seconds=3)).isoformat(),
        "checklist": ["Собрать цифры", "Отправить руководителю"], "penalty": {"amount": "500.00", "currency": "RUB"},
    })
    client = managers[0].call("GET", "/clients?limit=1")["items"]
    if client:
        managers[0].call("POST", "/complaints", {"client_id": client[0]["id"], "subject": "Доставка опоздала",
                                                 "text": fake.sentence(nb_words=12), "channel": "phone"})
    return late["id"]


def manager_id(manager: Api) -> str:
    return manager.call("GET", "/me")["id"]


def wait_for_penalties(admin: Api, task_ids: list[str], timeout_s: float = 90.0) -> bool:
    """The late tasks get their penalty at the next deadline check (every CRM_TASK_CHECK_INTERVAL_S)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        penalised = {p["task_id"] for p in admin.call("GET", "/penalties?limit=200")["items"]}
        if set(task_ids) <= penalised:
            return True
        time.sleep(2)
    return False


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    print(seed(*sys.argv[1:]))
