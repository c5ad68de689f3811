"""Applying other services' events to the read model: each event updates the record it describes, and the
counters move by the difference of that record's contributions (``domain``).

Rules that make every handler idempotent and tolerant of order:
- a record's state is replaced only by a snapshot at least as new (``version``; users by ``updated_at``;
  a penalty only moves from active to waived);
- a deal's stage visits are keyed by their ``seq`` in the deal's history: the move into a stage is the
  authority on the visit's entry, the move out of it on its exit, whichever arrives first;
- facts that never change (interactions, touchpoints) are added once, by id;
- events of one client and its deals are applied one at a time (a lock on the client id), so a deal
  never misses the source of a client created at the same moment.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from reports import domain
from reports.domain import (
    ClientState,
    DealState,
    InteractionFact,
    PenaltyState,
    TaskState,
    TouchpointFact,
    VisitState,
    parse_time,
)
from reports.gate import raise_if_rebuilding
from reports.models import (
    COUNTERS,
    RBranch,
    RCampaign,
    RClient,
    RDeal,
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

# ---- snapshots (event payloads and export items alike) to states


def client_state(snapshot: dict) -> ClientState:
    return ClientState(
        id=snapshot["id"], branch_id=snapshot["branch_id"], source=snapshot.get("source") or None,
        tags=list(snapshot.get("tags") or []), created_at=parse_time(snapshot["created_at"]),
        archived_at=parse_time(snapshot.get("archived_at")), version=int(snapshot.get("version") or 0),
    )


def deal_state(snapshot: dict, source: str | None = None, visits=None) -> DealState:
    return DealState(
        id=snapshot["id"], branch_id=snapshot["branch_id"], pipeline_id=snapshot["pipeline_id"],
        client_id=snapshot.get("client_id"), owner_id=snapshot.get("owner_id"), status=snapshot["status"],
        stage_id=snapshot.get("stage_id"), amount_minor=domain.to_minor(snapshot["amount"]),
        currency=snapshot["currency"], created_at=parse_time(snapshot["created_at"]),
        closed_at=parse_time(snapshot.get("closed_at")), version=int(snapshot.get("version") or 0),
        source=source, visits=list(visits or []),
    )


def visits_from_history(history: list[dict]) -> list[VisitState]:
    """A deal's stage history (as the deals service exports it) as visits, each judged by the next one."""
    ordered = sorted(history, key=lambda h: h["seq"])
    visits = []
    for index, entry in enumerate(ordered):
        following = ordered[index + 1] if index + 1 < len(ordered) else None
        outcome = None
        if following is not None:
            outcome = domain.visit_outcome(entry["stage_kind"], entry.get("position"),
                                           following["stage_kind"], following.get("position"))
        visits.append(VisitState(
            seq=entry["seq"], stage_id=entry["stage_id"], kind=entry["stage_kind"], position=entry.get("position"),
            entered_at=parse_time(entry["entered_at"]), exited_at=parse_time(entry.get("exited_at")),
            duration_s=entry.get("time_spent_s") if following is not None else None, outcome=outcome,
            moved_by=entry.get("moved_by"), entry_known=True,
        ))
    return visits


def task_state(snapshot: dict, on_time: bool | None = None) -> TaskState:
    completed_at, due_at = parse_time(snapshot.get("completed_at")), parse_time(snapshot.get("due_at"))
    done = snapshot.get("status") == "done"
    if on_time is None and done:
        on_time = domain.task_on_time(completed_at, due_at)
    return TaskState(
        id=snapshot["id"], branch_id=snapshot["branch_id"], assignee_id=snapshot.get("assignee_id"),
        status=snapshot.get("status") or "open", due_at=due_at, completed_at=completed_at,
        overdue=bool(snapshot.get("overdue")), on_time=on_time if done else None,
        version=int(snapshot.get("version") or 0),
    )


def penalty_state(snapshot: dict) -> PenaltyState:
    return PenaltyState(
        id=snapshot["id"], branch_id=snapshot["branch_id"], user_id=snapshot["user_id"], month=snapshot["month"],
        amount_minor=domain.to_minor(snapshot["amount"]), currency=snapshot["currency"],
        status=snapshot.get("status") or "active",
    )


def interaction_fact(item: dict) -> InteractionFact:
    return InteractionFact(
        id=item["id"], branch_id=item["branch_id"], client_id=item["client_id"], author_id=item.get("author_id"),
        type=item["type"], occurred_at=parse_time(item["occurred_at"]), script_id=item.get("script_id"),
    )


def touchpoint_fact(item: dict, occurred_at) -> TouchpointFact:
    return TouchpointFact(
        id=item["touchpoint_id"], branch_id=item["branch_id"], client_id=item["client_id"],
        source=item.get("source") or item.get("channel"), occurred_at=parse_time(occurred_at),
        campaign_id=domain.campaign_of(item.get("utm")), created_client=bool(item.get("created")),
    )


def campaign_row(snapshot: dict) -> dict:
    """A campaign (as ``campaign_created`` carries it, or the clients service exports it) as an ``r_campaigns`` row."""
    budget = snapshot.get("budget") or None
    return {
        "id": snapshot["id"], "branch_id": snapshot["branch_id"], "segment_id": snapshot.get("segment_id"),
        "name": snapshot.get("name"), "channel": snapshot.get("channel"), "starts_on": snapshot["starts_on"],
        "ends_on": snapshot["ends_on"], "budget_minor": domain.to_minor(budget["amount"]) if budget else None,
        "budget_currency": budget["currency"] if budget else None, "audience": snapshot.get("audience"),
        "version": int(snapshot.get("version") or 0),
    }


# ---- counters


def _insert(session, model):
    return (pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert)(model)


_UPSERTS: dict[tuple[str, str], tuple] = {}


def _upsert_of(session, table: str):
    """One upsert statement per counter table and dialect, built once: executed with the rows as parameters,
    it is compiled once too."""
    dialect = session.bind.dialect.name
    if (dialect, table) not in _UPSERTS:
        model = COUNTERS[table]
        keys = [c.name for c in model.__table__.primary_key.columns]
        values = [c.name for c in model.__table__.columns if c.name not in keys]
        statement = _insert(session, model)
        updates = {}
        for column in values:
            current = getattr(model, column)
            if column in domain.MIN_COLUMNS:
                smallest = func.least if dialect == "postgresql" else func.min
                updates[column] = smallest(current, func.coalesce(statement.excluded[column], current))
            else:
                updates[column] = current + statement.excluded[column]
        _UPSERTS[(dialect, table)] = (statement.on_conflict_do_update(index_elements=keys, set_=updates), keys, values)
    return _UPSERTS[(dialect, table)]


def apply_counters(session, changes: domain.Contributions) -> None:
    """Move the counter rows by ``changes``: one upsert per table, rows in key order (so two transactions
    touching the same rows lock them in the same order)."""
    by_table: dict[str, list] = {}
    for (table, key), amounts in changes.items():
        by_table.setdefault(table, []).append((key, amounts))
    for table in sorted(by_table):
        statement, keys, values = _upsert_of(session, table)
        rows = []
        for key, amounts in sorted(by_table[table], key=lambda item: item[0]):
            row = dict(zip(keys, key))
            for column in values:
                row[column] = amounts.get(column, None if column in domain.MIN_COLUMNS else 0)
            rows.append(row)
        session.execute(statement, rows)


# ---- live projection of events

_KNOWN: set[str] = set()  # pipelines and stages this process knows to have a row


class Projector:
    """Applies events inside one transaction. The counters' changes add up in ``self.changes`` and are
    written by ``write_counters()``, once per counter row however many events moved it."""

    def __init__(self, session):
        self.session = session
        self.changes: domain.Contributions = {}
        self.learned: set[str] = set()  # pipelines and stages given a row here: known once this commits

    def _change(self, old, new) -> None:
        domain.merge_into(self.changes, domain.difference(old, new))

    def write_counters(self) -> None:
        """Write the changes summed so far (rows whose sums came back to zero are left alone)."""
        changes = {key: amounts for key, amounts in self.changes.items()
                   if any(amount for column, amount in amounts.items() if column not in domain.MIN_COLUMNS)}
        self.changes = {}
        if changes:
            apply_counters(self.session, changes)

    def remember(self) -> None:
        """After the commit: the pipelines and stages this transaction wrote are known to the process."""
        _KNOWN.update(self.learned)

    # identity

    def user(self, payload: dict) -> None:
        data = payload["user"]
        seen_at = parse_time(data.get("updated_at")) or parse_time(payload["occurred_at"])
        row = self.session.get(RUser, data["id"], with_for_update=True)
        if row is not None and row.updated_at is not None and seen_at is not None and row.updated_at > seen_at:
            return
        if row is None:
            row = RUser(id=data["id"])
            self.session.add(row)
        row.name, row.email, row.role = data.get("name"), data.get("email"), data.get("role")
        row.branch_id, row.active, row.updated_at = data.get("branch_id"), bool(data.get("active", True)), seen_at

    def branch(self, payload: dict) -> None:
        data = payload["branch"]
        row = self.session.get(RBranch, data["id"]) or RBranch(id=data["id"])
        row.name, row.code = data.get("name"), data.get("code")
        self.session.merge(row)

    # pipelines and scripts

    def pipeline(self, payload: dict) -> None:
        data = payload["pipeline"]
        row = self.session.get(RPipeline, data["id"])
        version = int(data.get("version") or 1)
        if row is not None and row.version > version:
            return
        if row is None:
            row = RPipeline(id=data["id"])
            self.session.add(row)
        row.branch_id, row.name, row.version = data["branch_id"], data.get("name"), version
        listed = set()
        for stage in data.get("stages") or []:
            listed.add(stage["id"])
            stage_row = self.session.get(RStage, stage["id"]) or RStage(id=stage["id"])
            stage_row.pipeline_id, stage_row.name, stage_row.kind = data["id"], stage.get("name"), stage.get("kind")
            stage_row.position, stage_row.removed = stage.get("position"), False
            self.session.merge(stage_row)
        self.session.flush()
        for stage_row in self.session.scalars(select(RStage).where(RStage.pipeline_id == data["id"])):
            if stage_row.id not in listed:
                stage_row.removed = True

    def script(self, payload: dict) -> None:
        data = payload["script"]
        row = self.session.get(RScript, data["id"])
        version = int(data.get("version") or 1)
        if row is not None and row.version > version:
            return
        row = row or RScript(id=data["id"])
        row.branch_id, row.title, row.version = data.get("branch_id"), data.get("title"), version
        self.session.merge(row)

    def _known_pipeline(self, pipeline_id: str, branch_id: str, stages: list[dict]) -> None:
        """A deal event may come before its pipeline's: remember the pipeline and stages it names. Ids already
        seen by this process are not looked up again (rows of pipelines and stages are never deleted but by a
        rebuild, which writes them all)."""
        def known(record_id: str) -> bool:
            return record_id in _KNOWN or record_id in self.learned

        stages = [stage for stage in stages if stage and not known(stage["id"])]
        if known(pipeline_id) and not stages:
            return
        if self.session.get(RPipeline, pipeline_id) is None:
            self.session.execute(_insert(self.session, RPipeline).values(
                id=pipeline_id, branch_id=branch_id, name=None, version=0).on_conflict_do_nothing())
        for stage in stages:
            if stage and self.session.get(RStage, stage["id"]) is None:
                self.session.execute(_insert(self.session, RStage).values(
                    id=stage["id"], pipeline_id=pipeline_id, name=stage.get("name"), kind=stage.get("kind"),
                    position=stage.get("position"), removed=False).on_conflict_do_nothing())
        self.learned.update([pipeline_id, *(stage["id"] for stage in stages)])

    # clients

    def client(self, payload: dict) -> None:
        new = client_state(payload["client"])
        row = self.session.get(RClient, new.id)
        if row is not None and row.version > new.version:
            return
        old = _client_of(row)
        if row is None:
            row = RClient(id=new.id)
            self.session.add(row)
        row.branch_id, row.source, row.tags = new.branch_id, new.source, new.tags
        row.created_at, row.archived_at, row.version = new.created_at, new.archived_at, new.version
        self._change(domain.client_contributions(old), domain.client_contributions(new))
        if old is None or old.source != new.source:
            self._source_of_deals(new.id, new.source)

    def merged(self, payload: dict) -> None:
        """``client_merged``: the kept client as the event carries it; the merged one leaves the base then."""
        self.client({"client": payload["client"]})
        row = self.session.get(RClient, payload["merged_id"])
        if row is None or row.archived_at is not None:
            return
        old = _client_of(row)
        row.archived_at, row.version = parse_time(payload["occurred_at"]), row.version + 1
        self._change(domain.client_contributions(old), domain.client_contributions(_client_of(row)))

    def _source_of_deals(self, client_id: str, source: str | None) -> None:
        for deal in self.session.scalars(select(RDeal).where(RDeal.client_id == client_id)):
            if deal.source != source:
                before = self._deal_of(deal)
                deal.source = source
                self._change(domain.deal_contributions(before), domain.deal_contributions(self._deal_of(deal)))

    def interaction(self, payload: dict) -> None:
        fact = interaction_fact(payload["interaction"])
        if self.session.get(RInteraction, fact.id) is not None:
            return
        self.session.add(RInteraction(
            id=fact.id, branch_id=fact.branch_id, client_id=fact.client_id, author_id=fact.author_id,
            type=fact.type, occurred_at=fact.occurred_at, script_id=fact.script_id,
        ))
        self.session.flush()  # a concurrent copy of the same interaction loses on the primary key here
        self._change({}, domain.interaction_contributions(fact))

    def touchpoint(self, payload: dict) -> None:
        fact = touchpoint_fact(payload, payload["occurred_at"])
        if self.session.get(RTouchpoint, fact.id) is not None:
            return
        self.session.add(RTouchpoint(id=fact.id, branch_id=fact.branch_id, client_id=fact.client_id,
                                     source=fact.source, occurred_at=fact.occurred_at, campaign_id=fact.campaign_id,
                                     created_client=fact.created_client))
        self.session.flush()
        self._change({}, domain.touchpoint_contributions(fact))

    def campaign(self, payload: dict) -> None:
        """Campaigns count nothing themselves: the report reads their plan (dates, budget, audience) from here."""
        new = campaign_row(payload["campaign"])
        row = self.session.get(RCampaign, new["id"])
        if row is not None and row.version > new["version"]:
            return
        if row is None:
            row = RCampaign(id=new["id"])
            self.session.add(row)
        for name, value in new.items():
            setattr(row, name, value)

    # deals

    def _deal_of(self, row: RDeal | None, visits=None) -> DealState | None:
        if row is None:
            return None
        if visits is None:
            visits = self.session.scalars(select(RVisit).where(RVisit.deal_id == row.id)).all()
        return DealState(
            id=row.id, branch_id=row.branch_id, pipeline_id=row.pipeline_id, client_id=row.client_id,
            owner_id=row.owner_id, status=row.status, stage_id=row.stage_id, amount_minor=row.amount_minor,
            currency=row.currency, created_at=row.created_at, closed_at=row.closed_at, version=row.version,
            source=row.source, visits=[_visit_of(v) for v in visits],
        )

    def deal(self, event_type: str, payload: dict) -> None:
        snapshot = payload["deal"]
        row = self.session.get(RDeal, snapshot["id"])
        visits = {v.seq: v for v in self.session.scalars(select(RVisit).where(RVisit.deal_id == snapshot["id"]))}
        old = self._deal_of(row, list(visits.values()))
        client = self.session.get(RClient, snapshot["client_id"]) if snapshot.get("client_id") else None
        new = deal_state(snapshot, client.source if client else None)
        if row is None:
            row = RDeal(id=new.id, version=-1)
            self.session.add(row)
        if new.version >= row.version:
            for name in ("branch_id", "pipeline_id", "client_id", "owner_id", "status", "stage_id", "amount_minor",
                         "currency", "created_at", "closed_at", "version"):
                setattr(row, name, getattr(new, name))
        row.source = new.source
        stages = self._visits_of_event(event_type, payload, visits)
        self._known_pipeline(row.pipeline_id, row.branch_id, stages)
        self.session.flush()
        self._change(domain.deal_contributions(old),
                     domain.deal_contributions(self._deal_of(row, list(visits.values()))))

    def _visits_of_event(self, event_type: str, payload: dict, visits: dict[int, RVisit]) -> list[dict]:
        """Record the stage entries and exits an event tells of; the stages it names."""
        snapshot = payload["deal"]
        entered_at = parse_time(snapshot["stage_entered_at"])
        if event_type == "deal_created":
            stage = payload.get("stage") or {"id": snapshot["stage_id"], "kind": "open", "position": None}
            self._enter(visits, snapshot["id"], 1, stage, entered_at, payload.get("actor_id"))
            return [payload.get("stage")]
        if event_type != "deal_stage_changed":
            return []
        seq, source, target = payload["seq"], payload["from_stage"], payload["to_stage"]
        spent = float(payload["time_in_stage_s"])
        left = visits.get(seq - 1)
        if left is None:  # the move out came before the move in: the entry as this event implies it
            left = RVisit(deal_id=snapshot["id"], seq=seq - 1, stage_id=source["id"], kind=source["kind"],
                          position=source.get("position"), moved_by=None, entry_known=False,
                          entered_at=entered_at - timedelta(seconds=spent))
            self.session.add(left)
            visits[seq - 1] = left
        left.exited_at, left.duration_s = entered_at, spent
        left.outcome = domain.visit_outcome(source["kind"], source.get("position"), target["kind"], target.get("position"))
        self._enter(visits, snapshot["id"], seq, target, entered_at, payload.get("actor_id"))
        return [source, target]

    def _enter(self, visits, deal_id, seq, stage, entered_at, actor_id) -> None:
        visit = visits.get(seq)
        if visit is None:
            visit = RVisit(deal_id=deal_id, seq=seq)
            self.session.add(visit)
            visits[seq] = visit
        visit.stage_id, visit.kind, visit.position = stage["id"], stage["kind"], stage.get("position")
        visit.entered_at, visit.moved_by, visit.entry_known = entered_at, actor_id, True

    # tasks

    def task(self, event_type: str, payload: dict) -> None:
        new = task_state(payload["task"], payload.get("on_time") if event_type == "task_completed" else None)
        row = self.session.get(RTask, new.id)
        if row is not None and row.version > new.version:
            return
        old = _task_of(row)
        if row is None:
            row = RTask(id=new.id)
            self.session.add(row)
        if old is not None and new.on_time is None and old.on_time is not None and new.status == "done":
            new.on_time = old.on_time  # a later snapshot of a done task keeps what its completion said
        for name in ("branch_id", "assignee_id", "status", "due_at", "completed_at", "overdue", "on_time", "version"):
            setattr(row, name, getattr(new, name))
        self._change(domain.task_contributions(old), domain.task_contributions(new))

    def penalty(self, payload: dict) -> None:
        new = penalty_state(payload["penalty"])
        row = self.session.get(RPenalty, new.id)
        old = _penalty_of(row)
        if old is not None and old.status == "waived":
            return  # waiving is final: a late "recorded" does not bring it back
        if row is None:
            row = RPenalty(id=new.id)
            self.session.add(row)
        for name in ("branch_id", "user_id", "month", "amount_minor", "currency", "status"):
            setattr(row, name, getattr(new, name))
        self._change(domain.penalty_contributions(old), domain.penalty_contributions(new))


def _client_of(row: RClient | None) -> ClientState | None:
    if row is None:
        return None
    return ClientState(id=row.id, branch_id=row.branch_id, source=row.source, tags=list(row.tags or []),
                       created_at=row.created_at, archived_at=row.archived_at, version=row.version)


def _visit_of(row: RVisit) -> VisitState:
    return VisitState(seq=row.seq, stage_id=row.stage_id, kind=row.kind, position=row.position,
                      entered_at=row.entered_at, exited_at=row.exited_at, duration_s=row.duration_s,
                      outcome=row.outcome, moved_by=row.moved_by, entry_known=row.entry_known)


def _task_of(row: RTask | None) -> TaskState | None:
    if row is None:
        return None
    return TaskState(id=row.id, branch_id=row.branch_id, assignee_id=row.assignee_id, status=row.status,
                     due_at=row.due_at, completed_at=row.completed_at, overdue=row.overdue, on_time=row.on_time,
                     version=row.version)


def _penalty_of(row: RPenalty | None) -> PenaltyState | None:
    if row is None:
        return None
    return PenaltyState(id=row.id, branch_id=row.branch_id, user_id=row.user_id, month=row.month,
                        amount_minor=row.amount_minor, currency=row.currency, status=row.status)


def _deal(projector, event_type, payload):
    projector.deal(event_type, payload)


def _task(projector, event_type, payload):
    projector.task(event_type, payload)


APPLY = {
    "user_created": lambda p, t, e: p.user(e),
    "user_updated": lambda p, t, e: p.user(e),
    "branch_created": lambda p, t, e: p.branch(e),
    "client_created": lambda p, t, e: p.client(e),
    "client_updated": lambda p, t, e: p.client(e),
    "client_archived": lambda p, t, e: p.client(e),
    "client_restored": lambda p, t, e: p.client(e),
    "client_merged": lambda p, t, e: p.merged(e),
    "interaction_logged": lambda p, t, e: p.interaction(e),
    "touchpoint_recorded": lambda p, t, e: p.touchpoint(e),
    "campaign_created": lambda p, t, e: p.campaign(e),
    "campaign_updated": lambda p, t, e: p.campaign(e),
    "pipeline_created": lambda p, t, e: p.pipeline(e),
    "pipeline_updated": lambda p, t, e: p.pipeline(e),
    "script_created": lambda p, t, e: p.script(e),
    "script_updated": lambda p, t, e: p.script(e),
    "deal_created": _deal,
    "deal_updated": _deal,
    "deal_stage_changed": _deal,
    "deal_won": _deal,
    "deal_lost": _deal,
    "deal_reopened": _deal,
    "task_created": _task,
    "task_updated": _task,
    "task_completed": _task,
    "task_cancelled": _task,
    "task_overdue": _task,
    "penalty_recorded": lambda p, t, e: p.penalty(e),
    "penalty_waived": lambda p, t, e: p.penalty(e),
}


def record_of(event_type: str, payload: dict) -> str | None:
    """The record whose events must apply one at a time: a deal's go with its client's, so a deal never
    misses the source of a client created at the same moment."""
    if "deal" in payload:
        deal = payload["deal"]
        return f"client:{deal['client_id']}" if deal.get("client_id") else f"deal:{deal['id']}"
    for name in ("client", "task", "penalty", "pipeline", "campaign"):
        if name in payload:
            return f"{name}:{payload[name]['id']}"
    return None


def apply_event(uow, event_type: str, payload: dict) -> Projector | None:
    """Apply one event in the unit of work's transaction; None if it had been applied before."""
    return apply_events(uow, [(event_type, payload)])


def apply_events(uow, events: list[tuple[str, dict]]) -> Projector | None:
    """Apply events in the unit of work's one transaction, in their order, each once (an event applied
    before, or listed twice, is skipped); the counters move once per row at the end. The projector that
    applied them (``remember()`` it after the commit), or None if every event had been applied before."""
    raise_if_rebuilding(uow.session, sorted({record for record in (record_of(*event) for event in events) if record}))
    fresh = uow.first_deliveries([(payload["event_id"], event_type) for event_type, payload in events])
    if not fresh:
        return None
    projector = Projector(uow.session)
    for event_type, payload in events:
        if payload["event_id"] in fresh:
            fresh.discard(payload["event_id"])
            APPLY[event_type](projector, event_type, payload)
    projector.write_counters()
    return projector


ATTEMPTS = 3


def commit_events(uow, events: list[tuple[str, dict]]) -> None:
    """Apply events and commit them, in one transaction (``crm_common.batching.GroupCommit``)."""
    with uow.transaction():
        projector = apply_events(uow, events)
    if projector is not None:
        projector.remember()


def commit_event(uow, event_type: str, payload: dict) -> None:
    """Apply one event and commit it. Two events creating the same record at the same moment collide on its
    key: the loser simply runs again and finds the record."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            commit_events(uow, [(event_type, payload)])
            return
        except IntegrityError:
            if attempt == ATTEMPTS:
                raise
