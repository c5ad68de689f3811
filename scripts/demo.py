#!/usr/bin/env python3
"""Fill a running CRM with realistic demo data through its public API (Faker, ru_RU).

    make demo                       # starts the CRM and loads this once it is up
    .venv/bin/python scripts/demo.py http://127.0.0.1:8000/api/v1 admin@crm.local admin12345

Two branches, a head and three managers each (password ``demo-pass-1``), clients from several
channels with interactions (calls citing the sales scripts, some dated in earlier months) and
touchpoints, a sales pipeline with scripts, deals at every stage; process steps (task templates: first
call, send proposal, after-sale call, upsell offer) and the automations that set them, tasks with
checklists, one task that misses its deadline (and so gets its penalty at the next deadline check) and a
complaint; for the reports, sales plans of the last three months per branch and manager (with a miss
reason), and marketing spend per channel, so every report and every chart of the dashboard shows something.
It loads on top of whatever is there: every record it would make is looked up first (a branch by its code, a
user by email, a pipeline, template or script by name, a client by its phone and email, ...) and only the missing
ones are made, so a second run adds nothing, and a run cut short is finished by the next. It ends with what it
did, per kind ("created 80 clients, 2 already there"); a failure names the step and what to do.
"""

from __future__ import annotations

import random
import sys
import time
from collections import Counter
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

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
MISS_REASONS = [("leads", "Мало входящих заявок после сезона"), ("conversion", "Много отказов на этапе КП")]


def months_back(count: int) -> list[str]:
    """This month and the ``count - 1`` before it, oldest first (YYYY-MM, UTC)."""
    now = datetime.now(UTC)
    index = now.year * 12 + now.month - 1
    return [f"{(index - back) // 12:04d}-{(index - back) % 12 + 1:02d}" for back in reversed(range(count))]


PHONE_FORMATS = ["+7 9{a}{b} {c}-{d}-{e}", "8 (9{a}{b}) {c}-{d}-{e}", "89{a}{b}{c}{d}{e}"]


def phone(rnd: random.Random) -> str:
    """A Russian mobile number written the way people write them (Faker's numbers are mostly not real)."""
    return rnd.choice(PHONE_FORMATS).format(
        a=rnd.randint(0, 9), b=rnd.randint(0, 9), c=rnd.randint(100, 999), d=rnd.randint(10, 99), e=rnd.randint(10, 99)
    )


class DemoStepFailed(RuntimeError):
    """A step of loading could not be done; the message names it and says what to do."""


class CallFailed(RuntimeError):
    def __init__(self, method: str, path: str, status: int, text: str):
        super().__init__(f"{method} {path} → {status}: {text[:300]}")
        self.status = status


AGAIN = ("then run `make demo` (or scripts/demo.py) again: what is there is kept and only the rest is added")


@contextmanager
def step(name: str, advice: str = ""):
    try:
        yield
    except DemoStepFailed:
        raise
    except requests.RequestException as exc:
        raise DemoStepFailed(f"demo data stopped at '{name}': the CRM did not answer ({exc}). Check that it runs "
                             f"(GET /health), {AGAIN}.") from exc
    except Exception as exc:  # noqa: BLE001 - told to the person with the step it happened in
        raise DemoStepFailed(f"demo data stopped at '{name}': {exc}. {advice or 'Fix what it says'}; {AGAIN}.") from exc


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
            raise CallFailed(method, path, response.status_code, response.text)
        return response.json()

    def every(self, path: str) -> list[dict]:
        """Every item of a list, page by page."""
        items, cursor = [], None
        separator = "&" if "?" in path else "?"
        while True:
            page = self.call("GET", f"{path}{separator}limit=200" + (f"&cursor={cursor}" if cursor else ""))
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return items


class Report:
    """What a run made and what it found already there, per kind of record."""

    def __init__(self):
        self.made: Counter = Counter()
        self.found: Counter = Counter()
        self.order: list[str] = []

    def count(self, kind: str, created: bool, n: int = 1) -> None:
        if kind not in self.order:
            self.order.append(kind)
        (self.made if created else self.found)[kind] += n

    @staticmethod
    def _counted(n: int, kind: str) -> str:
        return f"{n} {kind if n != 1 else kind.removesuffix('es' if kind.endswith('ches') else 's')}"

    def __str__(self) -> str:
        made = ", ".join(self._counted(self.made[k], k) for k in self.order if self.made[k]) or "nothing"
        found = ", ".join(self._counted(self.found[k], k) for k in self.order if self.found[k]) or "nothing"
        return f"created {made}; already there {found}"


def seed(base: str, admin_email: str, admin_password: str, clients_per_branch: int = 40,
         report: Report | None = None) -> str:
    """Load what is missing of the demo data; a summary of what was created and what was already there (also
    counted in ``report``)."""
    report = report if report is not None else Report()
    with step("log in as the administrator", f"Check CRM_ADMIN_EMAIL / CRM_ADMIN_PASSWORD ({admin_email})"):
        admin = Api(base).login(admin_email, admin_password)
    overdue: list[str] = []
    for branch_name, code in BRANCHES:
        rnd = random.Random(f"demo-{code}")
        fake = Faker("ru_RU")
        fake.seed_instance(f"demo-{code}")
        with step(f"{code}: the branch"):
            branch = ensure_branch(admin, branch_name, code, report)
        with step(f"{code}: the head and managers", "A demo user whose password was changed cannot be logged in to: "
                  f"set it back to {DEMO_PASSWORD} (PATCH /users/{{id}}) or delete that user's email from the demo"):
            head, managers = ensure_people(base, admin, branch, code, fake, report)
        with step(f"{code}: the pipeline and its scripts"):
            pipeline = ensure_pipeline(head, report)
            scripts = ensure_scripts(head, pipeline, report)
        with step(f"{code}: process steps and automations"):
            process_steps(head, pipeline, report)
        with step(f"{code}: clients, interactions and deals"):
            for index in range(clients_per_branch):
                demo_client(head, managers, pipeline, scripts, code, index, report)
        with step(f"{code}: touchpoints"):
            touchpoints(head, code, report)
        with step(f"{code}: plans and channel spend"):
            plan_and_spend(head, managers, rnd, report)
        with step(f"{code}: tasks and a complaint"):
            late = tasks_and_complaints(head, managers, fake, rnd, report)
            if late:
                overdue.append(late)
    penalties = ""
    if overdue:
        with step("penalties for the overdue demo tasks"):
            penalties = ("; the overdue demo tasks have their penalties" if wait_for_penalties(admin, overdue)
                         else "; the overdue demo tasks get their penalties at the next deadline check")
    return (f"demo data: {report}{penalties}. "
            f"Logins: head.msk@demo.crm, manager1.msk@demo.crm … (password {DEMO_PASSWORD})")


def ensure_branch(admin: Api, name: str, code: str, report: Report) -> dict:
    for branch in admin.every("/branches"):
        if branch["code"] == code:
            report.count("branches", False)
            return branch
    report.count("branches", True)
    return admin.call("POST", "/branches", {"name": name, "code": code})


def ensure_user(creator: Api, email: str, body: dict, report: Report) -> None:
    found = creator.call("GET", f"/users?q={requests.utils.quote(email)}&limit=50")["items"]
    if any(user["email"] == email for user in found):
        report.count("users", False)
        return
    creator.call("POST", "/users", {"email": email, "password": DEMO_PASSWORD, **body})
    report.count("users", True)


def ensure_people(base: str, admin: Api, branch: dict, code: str, fake, report: Report) -> tuple[Api, list[Api]]:
    head_email = f"head.{code.lower()}@demo.crm"
    names = [fake.name() for _ in range(4)]
    ensure_user(admin, head_email, {"name": names[0], "role": "head", "branch_id": branch["id"]}, report)
    head = Api(base).login(head_email, DEMO_PASSWORD)
    managers = []
    for index in range(3):
        email = f"manager{index + 1}.{code.lower()}@demo.crm"
        ensure_user(head, email, {"name": names[index + 1], "role": "manager"}, report)
        managers.append(Api(base).login(email, DEMO_PASSWORD))
    return head, managers


def ensure_pipeline(head: Api, report: Report) -> dict:
    """The branch's pipeline with the demo's stages: one that has them all is used (it is "there"); otherwise
    "Продажи" is made, or "Продажи (демо)" when the branch has its own "Продажи" with other stages (the README's)."""
    pipelines = head.every("/pipelines")
    wanted = {stage["name"] for stage in STAGES}
    for pipeline in pipelines:
        if wanted <= {stage["name"] for stage in pipeline["stages"]}:
            report.count("pipelines", False)
            return pipeline
    taken = {pipeline["name"] for pipeline in pipelines}
    report.count("pipelines", True)
    name = "Продажи" if "Продажи" not in taken else "Продажи (демо)"
    return head.call("POST", "/pipelines", {"name": name, "stages": STAGES})


def ensure_scripts(head: Api, pipeline: dict, report: Report) -> list[str]:
    existing = {script["title"]: script["id"] for script in head.every("/scripts")}
    ids = []
    for stage in pipeline["stages"][:3]:
        title = f"Скрипт: {stage['name']}"
        if title in existing:
            report.count("scripts", False)
            ids.append(existing[title])
            continue
        ids.append(head.call("POST", "/scripts", {
            "title": title, "stage_id": stage["id"],
            "body": "1. Поздоровайтесь и представьтесь.\n2. Уточните задачу клиента.\n"
                    "3. Договоритесь о следующем шаге и сроке.",
        })["id"])
        report.count("scripts", True)
    return ids


def demo_client(head: Api, managers: list[Api], pipeline: dict, scripts: list[str], code: str, index: int,
                report: Report) -> None:
    """One client with its contacts and maybe a deal, from its own seed: whether the others exist changes nothing.
    A client already there (its phone or email is: 409) is left as it is, with whatever it has."""
    rnd = random.Random(f"demo-{code}-client-{index}")
    fake = Faker("ru_RU")
    fake.seed_instance(f"demo-{code}-client-{index}")
    manager = rnd.choice(managers)
    is_company = rnd.random() < 0.4
    local, _, domain = fake.email().partition("@")
    body = {
        "kind": "company" if is_company else "person",
        "name": fake.company() if is_company else fake.name(),
        "phones": [phone(rnd)],
        "emails": [f"{local}.{code.lower()}{index}@{domain}"],
        "source": rnd.choice(SOURCES),
        "tags": rnd.sample(TAGS, rnd.randint(0, 2)),
        "custom_fields": {"city": fake.city()},
    }
    try:
        client = manager.call("POST", "/clients", body)
    except CallFailed as exc:
        if exc.status != 409:  # 409: a client with this phone or email is there
            raise
        report.count("clients", False)
        return
    report.count("clients", True)
    stages = pipeline["stages"]
    for _ in range(rnd.randint(1, 3)):
        kind = rnd.choice(["call", "call", "email", "meeting", "note"])
        # some contacts happened in earlier months: the manager and script reports have a history
        occurred = datetime.now(UTC) - timedelta(days=rnd.choice([0, 0, 0, 1, 2, 35, 65]))
        manager.call("POST", f"/clients/{client['id']}/interactions", {
            "type": kind, "direction": rnd.choice(["in", "out"]), "text": fake.sentence(nb_words=8),
            "duration_s": rnd.randint(30, 900), "occurred_at": occurred.isoformat(),
            "script_id": rnd.choice(scripts) if kind == "call" and rnd.random() < 0.6 else None,
        })
        report.count("interactions", True)
    if rnd.random() >= 0.7:
        return
    deal = manager.call("POST", "/deals", {
        "client_id": client["id"], "pipeline_id": pipeline["id"], "title": f"Заказ {fake.bs()}"[:200],
        "amount": f"{rnd.randint(5, 900) * 1000}.00", "currency": "RUB",
    })
    report.count("deals", True)
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
        manager.call("POST", f"/deals/{deal['id']}/stage", {"stage_id": lost["id"], "lost_reason": rnd.choice(LOST_REASONS)})


def touchpoints(head: Api, code: str, report: Report) -> None:
    """Five website and phone leads; one whose email is already a client's is left out."""
    for index in range(5):
        rnd = random.Random(f"demo-{code}-lead-{index}")
        fake = Faker("ru_RU")
        fake.seed_instance(f"demo-{code}-lead-{index}")
        local, _, domain = fake.email().partition("@")
        email = f"{local}.lead.{code.lower()}{index}@{domain}"
        if head.call("GET", f"/clients?q={requests.utils.quote(email)}&limit=1")["items"]:
            report.count("touchpoints", False)
            continue
        head.call("POST", "/touchpoints", {
            "channel": rnd.choice(["web_form", "call", "telegram", "walk_in"]), "name": fake.name(), "email": email,
            "message": "Хочу узнать цены", "utm": {"utm_source": rnd.choice(SOURCES)},
        })
        report.count("touchpoints", True)


def process_steps(head: Api, pipeline: dict, report: Report) -> None:
    """The branch's task templates and the automations that set them off: a first call for every new client,
    a proposal when a deal reaches "КП отправлено", an after-sale call a week after a win, an upsell a month later."""
    made = {template["name"]: template["id"] for template in head.every("/task-templates")}
    for name, process, instruction, checklist, hours, penalty in TEMPLATES:
        if name in made:
            report.count("task templates", False)
            continue
        body = {"name": name, "process": process, "instruction": instruction, "checklist": checklist,
                "due_in_hours": hours}
        if penalty:
            body["penalty"] = {"amount": penalty, "currency": "RUB"}
        made[name] = head.call("POST", "/task-templates", body)["id"]
        report.count("task templates", True)
    there = {(a["event"], a["template_id"]) for a in head.every("/automations")}
    proposal_stage = next(s["id"] for s in pipeline["stages"] if s["name"] == "КП отправлено")
    for event, name, extra in (
        ("client_created", "Первый звонок", {}),
        ("deal_stage_changed", "Отправить КП", {"pipeline_id": pipeline["id"], "stage_id": proposal_stage}),
        ("deal_won", "Звонок после продажи", {"delay_hours": 24 * 7}),
        ("deal_won", "Предложение допродажи", {"delay_hours": 24 * 30}),
    ):
        if (event, made[name]) in there:
            report.count("automations", False)
            continue
        head.call("POST", "/automations", {"event": event, "template_id": made[name], "assign_to": "owner", **extra})
        report.count("automations", True)


def has_task(head: Api, assignee_id: str, title: str) -> bool:
    return any(task["title"] == title for task in head.every(f"/tasks?assignee_id={assignee_id}"))


def tasks_and_complaints(head: Api, managers: list[Api], fake, rnd: random.Random, report: Report) -> str | None:
    """Tasks with checklists (one done), one that misses its deadline in a few seconds, and a complaint.
    Returns the id of the task that becomes overdue, when it was made now."""
    soon = datetime.now(UTC)
    for manager in managers:
        me = manager.call("GET", "/me")
        if has_task(head, me["id"], "Обзвонить клиентов без сделок"):
            report.count("tasks", False)
            continue
        report.count("tasks", True)
        task = head.call("POST", "/tasks", {
            "title": "Обзвонить клиентов без сделок", "assignee_id": me["id"],
            "due_at": (soon + timedelta(days=rnd.randint(1, 5))).isoformat(),
            "checklist": ["Выгрузить список", "Позвонить каждому", "Записать итоги"],
        })
        if rnd.random() < 0.5:
            for index in range(3):
                manager.call("POST", f"/tasks/{task['id']}/checklist/{index}", {"done": True})
            manager.call("POST", f"/tasks/{task['id']}/complete")
    late = None
    if has_task(head, manager_id(managers[0]), "Сдать отчёт по звонкам"):
        report.count("tasks", False)
    else:
        late = head.call("POST", "/tasks", {
            "title": "Сдать отчёт по звонкам", "assignee_id": manager_id(managers[0]),
            "due_at": (datetime.now(UTC) + timedelta(seconds=3)).isoformat(),
            "checklist": ["Собрать цифры", "Отправить руководителю"], "penalty": {"amount": "500.00", "currency": "RUB"},
        })["id"]
        report.count("tasks", True)
    if any(c["subject"] == "Доставка опоздала" for c in head.every("/complaints")):
        report.count("complaints", False)
        return late
    client = managers[0].call("GET", "/clients?limit=1&sort=created_at")["items"]
    if client:
        managers[0].call("POST", "/complaints", {"client_id": client[0]["id"], "subject": "Доставка опоздала",
                                                 "text": fake.sentence(nb_words=12), "channel": "phone"})
        report.count("complaints", True)
    return late


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
def plan_and_spend(head: Api, managers: list[Api], rnd: random.Random, report: Report) -> None:
    """Plans for the branch and each manager over three months, a miss reason, and spend on every channel;
    a plan or a month's spend already set (by the demo or by you) is kept."""
    months = months_back(3)
    for month in months:
        planned = head.call("GET", f"/reports/plan?month={month}")
        branch_planned = any(line.get("plan") for line in planned["branches"])
        managers_planned = {line["user_id"] for line in planned["managers"] if line.get("plan")}
        amount = f"{rnd.randint(30, 60) * 100000}.00"
        if branch_planned:
            report.count("plans", False)
        else:
            head.call("PUT", "/plans", {"month": month, "amount": amount, "currency": "RUB"})
            report.count("plans", True)
        for manager in managers:
            me = manager.call("GET", "/me")
            amount = f"{rnd.randint(8, 20) * 100000}.00"
            miss = month != months[-1] and rnd.random() < 0.5
            category, reason = rnd.choice(MISS_REASONS)
            if me["id"] in managers_planned:
                report.count("plans", False)
                continue
            plan = head.call("PUT", "/plans", {"month": month, "user_id": me["id"], "currency": "RUB", "amount": amount})
            report.count("plans", True)
            if miss:
                head.call("POST", f"/plans/{plan['id']}/miss-reason", {"category": category, "reason": reason})
        spent = {line["source"] for line in head.call("GET", f"/reports/channels?from={month}&to={month}")["channels"]
                 if Decimal(line.get("spend") or "0") > 0}
        for source in SOURCES:
            amount = f"{rnd.randint(5, 80) * 1000}.00"
            if source in spent:
                report.count("channel spends", False)
                continue
            head.call("POST", f"/channels/{source}/spend", {"month": month, "currency": "RUB", "amount": amount})
            report.count("channel spends", True)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    try:
        print(seed(*sys.argv[1:]))
    except DemoStepFailed as exc:
        sys.exit(str(exc))
