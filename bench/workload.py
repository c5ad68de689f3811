"""What the load workers send, drawn from the seeded data: ids, search terms, filters, deals to move."""

from __future__ import annotations

import random
import re

import psycopg2

from bench.people import LOAD_OPERATOR_CODE
from bench.seed import Identity
from bench.system import AMQP_URI, database_url

PHONE_BLOCK = 20_000  # numbers one create_client worker may use in one run; far more than it can send


def _query(service: str, sql: str, params=()) -> list[tuple]:
    conn = psycopg2.connect(database_url(service))
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


class Workload:
    def __init__(self, identity: Identity, sample: int, rng: random.Random | None = None):
        self.identity = identity
        self.rng = rng or random.Random(11)
        rows = _query("clients", "SELECT id, name, kind, phones, emails FROM clients WHERE archived_at IS NULL "
                                 "ORDER BY random() LIMIT %s", (sample,))
        self.client_ids = [row[0] for row in rows]
        self.terms = [self._term(name, kind, phones, emails) for _, name, kind, phones, emails in rows[:2000]]

    def _term(self, name: str, kind: str, phones: list[str], emails: list[str]) -> str:
        """What a person types into the search box: the start of a surname or company, part of a phone
        written their way, or the start of an email."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.5 or (roll >= 0.8 and not emails):
            word = name.split("«", 1)[-1] if kind == "company" else name
            word = re.split(r"[\s,»]+", word.strip())[0]
            return word[: rng.randint(4, 6)].lower()
        if roll < 0.8:
            digits = phones[0][2:]  # +7 9161234567 → 9161234567
            return rng.choice((
                digits[3:10],                                  # 1234567
                f"{digits[:3]} {digits[3:6]}",                 # 916 123
                f"8 {digits[:3]} {digits[3:6]}-{digits[6:8]}",  # 8 916 123-45 (trunk prefix)
                f"+7{digits[:6]}",                             # +7916123
            ))
        return emails[0].split("@")[0][: rng.randint(5, 8)]

    def plan_deal_filter(self) -> tuple[str, str]:
        """The busiest filter: the first stage of the bigger pipeline, one manager."""
        return self.identity.pipelines[0]["stages"][0]["id"], self.identity.managers[0].id

    def data(self, scenario: str, concurrency: int) -> dict:
        identity = self.identity
        if scenario in ("echo", "echo_crm"):
            caller = {"id": identity.managers[0].id, "role": "head", "branch_id": identity.branch_id}
            return {"payload": {"caller": caller, "client_id": self.client_ids[0]}}
        if scenario == "get_client":
            return {"client_ids": self.client_ids, "token": identity.head_token}
        if scenario == "search_clients":
            return {"terms": self.terms, "token": identity.head_token}
        if scenario == "list_deals":
            stages = [s["id"] for p in identity.pipelines for s in p["stages"]]
            return {"filters": [(s, m.id) for s in stages for m in identity.managers], "token": identity.head_token}
        if scenario == "create_client":
            return {"tokens": [m.token for m in identity.managers], "phone_base": self._next_load_phone(),
                    "block": PHONE_BLOCK}
        if scenario == "move_deal":
            return self._moves(concurrency)
        if scenario == "create_task":
            return self._task_makers()
        raise ValueError(f"unknown scenario {scenario}")

    def _task_makers(self, per_manager: int = 200) -> dict:
        """Each manager sets tasks about their own clients (the tasks service asks the clients service to show them)."""
        workers = []
        for manager in self.identity.managers:
            rows = _query("clients", "SELECT id FROM clients WHERE owner_id = %s AND archived_at IS NULL LIMIT %s",
                          (manager.id, per_manager))
            workers.append({"token": manager.token, "client_ids": [row[0] for row in rows]})
        return {"workers": workers}

    def _next_load_phone(self) -> int:
        """After the last number an earlier create_client run used, so a run never meets a duplicate."""
        prefix = f"+7{LOAD_OPERATOR_CODE}"
        (last,), = _query("clients", "SELECT max(value) FROM client_contacts WHERE kind = 'phone' AND value LIKE %s",
                          (prefix + "%",))
        return int(last[len(prefix):]) + 1 if last else 0

    def _moves(self, concurrency: int, per_worker: int = 100) -> dict:
        """Each worker gets its own deals of one manager, open and not near their time limit."""
        managers = self.identity.managers
        open_stages = {p["id"]: [s["id"] for s in p["stages"] if s["kind"] == "open"] for p in self.identity.pipelines}
        workers = []
        taken: dict[str, list] = {}
        for worker in range(concurrency):
            manager = managers[worker % len(managers)]
            if manager.id not in taken:
                sharing = len(range(worker, concurrency, len(managers)))
                taken[manager.id] = _query(
                    "deals",
                    "SELECT id, pipeline_id, stage_id FROM deals WHERE owner_id = %s AND status = 'open' "
                    "AND stage_due_at > now() + interval '1 hour' ORDER BY random() LIMIT %s",
                    (manager.id, sharing * per_worker),
                )
            deals, taken[manager.id] = taken[manager.id][:per_worker], taken[manager.id][per_worker:]
            workers.append({"token": manager.token, "deals": deals})
        return {"workers": workers, "open_stages": open_stages}


def spec(scenario: str, data: dict, port: int) -> dict:
    return {"scenario": scenario, "data": data, "port": port, "amqp_uri": AMQP_URI}
