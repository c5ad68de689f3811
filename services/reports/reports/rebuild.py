"""Rebuilding the whole read model from the services that own the records (``crm-reports rebuild``).

For a new report, a restored backup or a lost reports database: every kind of record listed in ``EXPORTS``
is read page by page from its owner's ``export`` RPC (``crm_common.exports``), turned into the same states
the event handlers keep, and the counters are recomputed from them with the same ``domain`` rules, so a
rebuilt model answers exactly as the one built live. Plans, miss reasons and channel spend are the reports
service's own records: a rebuild never touches them.

While a rebuild runs (a flag in ``rebuild_state``) the event handlers put their events back on the queue
instead of applying them; everything is replaced in one transaction, so the reports keep answering from
the old model until it commits. The events that waited are then applied; those already reflected in the
export change nothing (states only move forward by version, facts are added once by id).

A service that does not answer is skipped with a message: its records keep the state they have here, and
the counters are recomputed from that state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from crm_common.clock import utcnow
from reports import domain, projection
from reports.gate import LOCK_KEY
from reports.models import (
    COUNTERS,
    RBranch,
    RCampaign,
    RClient,
    RDeal,
    RebuildState,
    RInteraction,
    RPenalty,
    RPipeline,
    RScript,
    RStage,
    RTask,
    RTouchpoint,
    RUser,
    RVisit,
)

log = logging.getLogger(__name__)

# (owning service, kind of record), in the order they are read: clients before deals (a deal's channel is
# its client's source). A new service's records are one more line here and a loader below.
EXPORTS: tuple[tuple[str, str], ...] = (
    ("gateway", "branches"),
    ("gateway", "users"),
    ("deals", "pipelines"),
    ("deals", "scripts"),
    ("clients", "clients"),
    ("clients", "interactions"),
    ("clients", "touchpoints"),
    ("clients", "campaigns"),
    ("deals", "deals"),
    ("tasks", "tasks"),
    ("tasks", "penalties"),
)

TABLES = {
    "branches": (RBranch,), "users": (RUser,), "pipelines": (RPipeline, RStage), "scripts": (RScript,),
    "clients": (RClient,), "interactions": (RInteraction,), "touchpoints": (RTouchpoint,),
    "deals": (RDeal, RVisit), "tasks": (RTask,), "penalties": (RPenalty,), "campaigns": (RCampaign,),
}

PAGE_SIZE = 2000


def _set_flag(engine, running: bool, summary: dict | None = None) -> None:
    with Session(engine) as session, session.begin():
        state = session.get(RebuildState, 1, with_for_update=True)
        if state is None:
            state = RebuildState(id=1)
            session.add(state)
        state.running = running
        if running:
            state.started_at, state.finished_at = utcnow(), None
        else:
            state.finished_at, state.summary = utcnow(), summary


def _wait_for_handlers(engine) -> None:
    """Handlers that checked the flag before it was set finish before anything is read (PostgreSQL); on
    SQLite their snapshot is stale once the flag commits, so their write fails and is retried."""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_KEY})
        connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
        connection.commit()


# ---- turning exported records into rows and counters


@dataclass
class Loader:
    session: Session
    counters: domain.Contributions = field(default_factory=dict)
    sources: dict[str, str | None] | None = None  # client id -> source, once clients are known

    def _insert(self, model, rows: list[dict]) -> None:
        """Core executemany: the driver sends the rows in batches of 1000 in one statement each."""
        if rows:
            self.session.execute(model.__table__.insert(), rows)


    def load(self, kind: str, items: list[dict]) -> None:
        getattr(self, f"_load_{kind}")(items)

    def _load_branches(self, items):
        self._insert(RBranch, [{"id": b["id"], "name": b.get("name"), "code": b.get("code")} for b in items])

    def _load_users(self, items):
        self._insert(RUser, [{
            "id": u["id"], "name": u.get("name"), "email": u.get("email"), "role": u.get("role"),
            "branch_id": u.get("branch_id"), "active": bool(u.get("active", True)),
            "updated_at": domain.parse_time(u.get("updated_at")),
        } for u in items])

    def _load_pipelines(self, items):
        self._insert(RPipeline, [{"id": p["id"], "branch_id": p["branch_id"], "name": p.get("name"),
                                  "version": int(p.get("version") or 1)} for p in items])
        stages = []
        for p in items:
            for removed, listed in ((False, p.get("stages") or []), (True, p.get("removed_stages") or [])):
                stages += [{"id": s["id"], "pipeline_id": p["id"], "name": s.get("name"), "kind": s.get("kind"),
                            "position": s.get("position"), "removed": removed} for s in listed]
        self._insert(RStage, stages)

    def _load_scripts(self, items):
        self._insert(RScript, [{"id": s["id"], "branch_id": s.get("branch_id"), "title": s.get("title"),
                                "version": int(s.get("version") or 1)} for s in items])

    def _load_clients(self, items):
        rows = []
        self.sources = self.sources if self.sources is not None else {}
        for item in items:
            state = projection.client_state(item)
            self.sources[state.id] = state.source
            rows.append({"id": state.id, "branch_id": state.branch_id, "source": state.source, "tags": state.tags,
                         "created_at": state.created_at, "archived_at": state.archived_at, "version": state.version})
            domain.client_contributions(state, out=self.counters)
        self._insert(RClient, rows)

    def _load_interactions(self, items):
        rows = []
        for item in items:
            fact = projection.interaction_fact(item)
            rows.append(vars(fact).copy())
            domain.interaction_contributions(fact, out=self.counters)
        self._insert(RInteraction, rows)

    def _load_touchpoints(self, items):
        rows = []
        for item in items:
            fact = projection.touchpoint_fact(item, item["created_at"])
            rows.append(vars(fact).copy())
            domain.touchpoint_contributions(fact, out=self.counters)
        self._insert(RTouchpoint, rows)

    def _load_campaigns(self, items):
        self._insert(RCampaign, [projection.campaign_row(item) for item in items])

    def source_of(self, client_id: str | None) -> str | None:
        if self.sources is None:  # clients were not exported: the sources as this database knows them
            self.sources = dict(self.session.execute(select(RClient.id, RClient.source)).all())
        return self.sources.get(client_id)

    def _load_deals(self, items):
        deals, visits = [], []
        for item in items:
            state = projection.deal_state(item, self.source_of(item.get("client_id")),
                                          projection.visits_from_history(item.get("history") or []))
            deals.append({name: getattr(state, name) for name in (
                "id", "branch_id", "pipeline_id", "client_id", "owner_id", "status", "stage_id", "amount_minor",
                "currency", "created_at", "closed_at", "version", "source")})
            visits += [{"deal_id": state.id, **vars(v)} for v in state.visits]
            domain.deal_contributions(state, out=self.counters)
        self._insert(RDeal, deals)
        self._insert(RVisit, visits)

    def _load_tasks(self, items):
        rows = []
        for item in items:
            state = projection.task_state(item)
            rows.append(vars(state).copy())
            domain.task_contributions(state, out=self.counters)
        self._insert(RTask, rows)

    def _load_penalties(self, items):
        rows = []
        for item in items:
            state = projection.penalty_state(item)
            rows.append(vars(state).copy())
            domain.penalty_contributions(state, out=self.counters)
        self._insert(RPenalty, rows)

    def count_kept(self, kind: str) -> int:
        """Counters of records a skipped service owns, from the state this database keeps of them."""
        session, kept = self.session, 0
        if kind == "clients":
            for row in session.scalars(select(RClient)):
                domain.client_contributions(projection._client_of(row), out=self.counters)
                kept += 1
        elif kind == "interactions":
            for row in session.scalars(select(RInteraction)):
                domain.interaction_contributions(domain.InteractionFact(
                    row.id, row.branch_id, row.client_id, row.author_id, row.type, row.occurred_at, row.script_id),
                    out=self.counters)
                kept += 1
        elif kind == "touchpoints":
            for row in session.scalars(select(RTouchpoint)):
                domain.touchpoint_contributions(domain.TouchpointFact(
                    row.id, row.branch_id, row.client_id, row.source, row.occurred_at, row.campaign_id,
                    bool(row.created_client)), out=self.counters)
                kept += 1
        elif kind == "campaigns":  # a campaign counts nothing itself
            kept = session.scalar(select(func.count()).select_from(RCampaign)) or 0
        elif kind == "deals":
            projector = projection.Projector(session)
            for row in session.scalars(select(RDeal)):
                row.source = self.source_of(row.client_id)
                domain.deal_contributions(projector._deal_of(row), out=self.counters)
                kept += 1
        elif kind == "tasks":
            for row in session.scalars(select(RTask)):
                domain.task_contributions(projection._task_of(row), out=self.counters)
                kept += 1
        elif kind == "penalties":
            for row in session.scalars(select(RPenalty)):
                domain.penalty_contributions(projection._penalty_of(row), out=self.counters)
                kept += 1
        return kept

    def write_counters(self) -> int:
        rows = 0
        by_table: dict[str, list[dict]] = {}
        for (table, key), amounts in self.counters.items():
            if not any(v for column, v in amounts.items() if column not in domain.MIN_COLUMNS):
                continue
            model = COUNTERS[table]
            keys = [c.name for c in model.__table__.primary_key.columns]
            by_table.setdefault(table, []).append({**dict(zip(keys, key)), **amounts})
        for table, table_rows in by_table.items():
            model = COUNTERS[table]
            columns = [c.name for c in model.__table__.columns]
            self._insert(model, [{c: row.get(c, 0) for c in columns} for row in table_rows])
            rows += len(table_rows)
        return rows


class Progress:
    """What a rebuild tells as it goes (the command line draws bars from it)."""

    def skipped(self, service: str, kinds: list[str], reason: str) -> None: ...
    def started(self, service: str, kind: str, total: int | None) -> None: ...
    def advanced(self, service: str, kind: str, count: int) -> None: ...
    def finished(self, service: str, kind: str) -> None: ...
    def writing(self) -> None: ...


Fetch = Callable[[str, str, str | None, int], dict]


def rebuild(engine, fetch: Fetch, unavailable: Callable[[str], str | None], progress: Progress | None = None,
            page_size: int = PAGE_SIZE, exports=EXPORTS) -> dict:
    """Rebuild the read model; ``fetch(service, kind, cursor, limit)`` reads an export page, ``unavailable
    (service)`` says why a service cannot be asked (None when it answers). Returns a summary."""
    progress = progress or Progress()
    reasons: dict[str, str | None] = {}
    for service, _ in exports:
        if service not in reasons:
            reasons[service] = unavailable(service)
    skipped = [kind for service, kind in exports if reasons[service]]
    for service, reason in reasons.items():
        if reason:
            progress.skipped(service, [k for s, k in exports if s == service], reason)
    summary: dict = {"records": {}, "skipped": {s: r for s, r in reasons.items() if r}, "kept": {}}
    started = utcnow()
    _set_flag(engine, True)
    try:
        _wait_for_handlers(engine)
        with Session(engine) as session, session.begin():
            for model in COUNTERS.values():
                session.execute(delete(model))
            for _, kind in exports:
                if kind not in skipped:
                    for model in TABLES[kind]:
                        session.execute(delete(model))
            loader = Loader(session)
            with ThreadPoolExecutor(max_workers=1) as reader:
                for service, kind in exports:
                    if kind not in skipped:
                        summary["records"][kind] = _read_all(loader, fetch, service, kind, page_size, progress, reader)
            for kind in skipped:
                summary["kept"][kind] = loader.count_kept(kind)
            progress.writing()
            summary["counter_rows"] = loader.write_counters()
        summary["seconds"] = round((utcnow() - started).total_seconds(), 1)
    finally:
        _set_flag(engine, False, summary)
    return summary


def _read_all(loader: Loader, fetch: Fetch, service: str, kind: str, page_size: int, progress: Progress,
              reader: ThreadPoolExecutor) -> int:
    """Read every page of a kind; the next page is fetched (by the one reader thread, so a client that is not
    thread-safe is fine) while this one is loaded."""
    count = 0
    pending = reader.submit(fetch, service, kind, None, page_size)
    first = True
    while True:
        page = pending.result()
        cursor = page.get("next_cursor")
        if cursor:
            pending = reader.submit(fetch, service, kind, cursor, page_size)
        if first:
            progress.started(service, kind, page.get("total"))
            first = False
        items = page.get("items") or []
        loader.load(kind, items)
        count += len(items)
        progress.advanced(service, kind, len(items))
        if not cursor:
            progress.finished(service, kind)
            return count
