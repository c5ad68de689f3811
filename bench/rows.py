"""Rows of the clients and deals databases, generated the way the services would have written them."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from bench.bulk import cell, line, ts
from bench.people import People, seed_phone
from clients.domain import name_key, search_text

DAY = 86400.0
CLIENT_COLUMNS = ("id", "branch_id", "kind", "name", "owner_id", "source", "phones", "emails", "tags", "custom_fields",
                  "search_text", "name_key", "archived_at", "created_at", "updated_at", "version")
CONTACT_COLUMNS = ("client_id", "branch_id", "kind", "value")
TIMELINE_COLUMNS = ("id", "client_id", "kind", "type", "occurred_at", "ref_id", "actor_id", "data")
DEAL_COLUMNS = ("id", "branch_id", "client_id", "pipeline_id", "stage_id", "status", "title", "amount_minor", "currency",
                "owner_id", "stage_entered_at", "stage_due_at", "stuck_raised_at", "lost_reason", "closed_at",
                "created_at", "updated_at", "version")
VISIT_COLUMNS = ("id", "deal_id", "pipeline_id", "stage_id", "stage_name", "stage_kind", "from_stage_id", "entered_at",
                 "exited_at", "time_spent_s", "moved_by", "lost_reason", "seq")
TITLES = (
    "Поставка оборудования", "Годовой договор на обслуживание", "Закупка расходных материалов", "Внедрение CRM",
    "Аренда спецтехники", "Монтаж вентиляции", "Оптовая партия", "Разработка сайта", "Консультационные услуги",
    "Ремонт офиса", "Поставка мебели", "Лицензии на ПО", "Обучение персонала", "Корпоративный заказ",
    "Логистика и доставка", "Продление подписки", "Пусконаладочные работы", "Поставка запчастей",
)
LOST_REASONS = ("Дорого", "Выбрали конкурента", "Нет бюджета", "Не выходит на связь", "Отложили проект", "Не подошли сроки")
CURRENCIES = ("RUB",) * 92 + ("USD",) * 5 + ("EUR",) * 3
OPEN_STAGE_WEIGHTS = (40, 30, 20, 10)


def fast_id(rng: random.Random) -> str:
    """A version-4 UUID string; uuid.uuid4() costs four times as much, which shows at 3.5 million rows."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def client_chunks(count: int, branch_id: str, manager_ids: list[str], now: float, people: People,
                  chunk: int = 20_000) -> Iterator[tuple[list[str], list[str], list[str], list[tuple[str, str]]]]:
    """Chunks of (clients, contacts, timeline) COPY lines, and the (id, owner_id) of each client."""
    rng = people.rng
    email_number = 0
    for start in range(0, count, chunk):
        clients, contacts, timeline, made = [], [], [], []
        for index in range(start, min(count, start + chunk)):
            person = people.person()
            client_id = fast_id(rng)
            owner_id = rng.choice(manager_ids)
            phones = [seed_phone(2 * index)] + ([seed_phone(2 * index + 1)] if rng.random() < 0.3 else [])
            emails = []
            for _ in range(rng.choice((0, 1, 1, 1, 1, 1, 2))):
                email_number += 1
                emails.append(people.email(person, email_number))
            custom = {"inn": f"{rng.randrange(10**9, 10**10)}"} if person.kind == "company" else {}
            created = now - rng.random() * 3 * 365 * DAY
            updated = created + rng.random() * (now - created)
            archived = ts(updated) if rng.random() < 0.02 else None
            clients.append(line((
                client_id, branch_id, person.kind, person.name, owner_id, person.source, phones, emails, person.tags,
                custom, search_text(person.name, phones, emails), name_key(person.name, person.kind), archived, ts(created),
                ts(updated), 1,
            )))
            contacts += [line((client_id, branch_id, "phone", phone)) for phone in phones]
            contacts += [line((client_id, branch_id, "email", email)) for email in emails]
            timeline.append(line((fast_id(rng), client_id, "client", "client_created", ts(created), client_id, owner_id,
                                  {"name": person.name})))
            made.append((client_id, owner_id))
        yield clients, contacts, timeline, made


@dataclass(frozen=True)
class StageRow:
    id: str
    name: str
    kind: str
    max_days: float | None


@dataclass(frozen=True)
class PipelineRows:
    id: str
    open: tuple[StageRow, ...]
    won: StageRow
    lost: StageRow

    @classmethod
    def from_api(cls, pipeline: dict) -> PipelineRows:
        stages = [StageRow(s["id"], s["name"], s["kind"], s["max_days"]) for s in pipeline["stages"]]
        return cls(
            pipeline["id"], tuple(s for s in stages if s.kind == "open"),
            next(s for s in stages if s.kind == "won"), next(s for s in stages if s.kind == "lost"),
        )


def deal_chunks(count: int, branch_id: str, clients: list[tuple[str, str]], manager_ids: list[str],
                pipelines: list[PipelineRows], now: float, rng: random.Random,
                chunk: int = 50_000) -> Iterator[tuple[list[str], list[str]]]:
    """Chunks of (deals, stage_history) COPY lines.

    55% of deals are open, spread over the open stages (fewer further down the funnel), each with 1–4
    visits; won and lost deals went through 1–3 open stages first. An open deal has spent up to 1.25 times
    its stage's max_days there, so about a fifth are past it: those were raised already (stuck_raised_at a
    few seconds after the due time, as the service's timer would have), the scan's work is what becomes due
    next (see bench/stuck.py).
    """
    weights = OPEN_STAGE_WEIGHTS
    for start in range(0, count, chunk):
        deals, visits = [], []
        for _ in range(min(chunk, count - start)):
            client_id, owner_id = rng.choice(clients)
            if rng.random() < 0.05:
                owner_id = rng.choice(manager_ids)
            pipeline = pipelines[0] if rng.random() < 0.6 else pipelines[-1]
            roll = rng.random()
            if roll < 0.55:
                status = "open"
                depth = rng.choices(range(1, len(pipeline.open) + 1), weights[:len(pipeline.open)])[0]
                path = pipeline.open[:depth]
                entered = now - rng.random() * 1.25 * path[-1].max_days * DAY
            else:
                status = "won" if roll < 0.80 else "lost"
                path = pipeline.open[:rng.randint(1, min(3, len(pipeline.open)))]
                path += (pipeline.won if status == "won" else pipeline.lost,)
                entered = now - rng.random() * 365 * DAY
            times = [entered]
            for stage in reversed(path[:-1]):
                times.insert(0, times[0] - (0.05 + rng.random()) * stage.max_days * DAY)
            deal_id = fast_id(rng)
            current = path[-1]
            due = raised = closed = lost_reason = None
            if status == "open":
                due = entered + current.max_days * DAY
                if due <= now:
                    raised = ts(due + 5 + rng.random() * 55)
                due = ts(due)
            else:
                closed = ts(entered)
                lost_reason = rng.choice(LOST_REASONS) if status == "lost" else None
            amount_minor = int(rng.lognormvariate(11.0, 1.1)) * 100
            title = rng.choice(TITLES)
            deals.append("\t".join((
                deal_id, branch_id, client_id, pipeline.id, current.id, status, title, str(amount_minor),
                rng.choice(CURRENCIES), owner_id, ts(entered), due or "\\N", raised or "\\N", cell(lost_reason),
                closed or "\\N", ts(times[0]), ts(entered), str(len(path)),
            )) + "\n")
            previous = None
            for seq, stage in enumerate(path, start=1):
                entered_at = times[seq - 1]
                exited_at = times[seq] if seq < len(path) else None
                visits.append("\t".join((
                    fast_id(rng), deal_id, pipeline.id, stage.id, stage.name, stage.kind, previous or "\\N",
                    ts(entered_at), ts(exited_at) if exited_at else "\\N",
                    f"{exited_at - entered_at:.0f}" if exited_at else "\\N", owner_id,
                    cell(lost_reason if stage.kind == "lost" else None), str(seq),
                )) + "\n")
                previous = stage.id
        yield deals, visits
