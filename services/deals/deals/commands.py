"""Use cases of the deals service: pipelines, deals and their stage moves, stuck deals, scripts.

Each takes the unit of work (``uow.session``, ``uow.emit``), the caller and the raw input; committing is
the entrypoint's job. Outside information (the client of a deal, the users the gateway vouches for)
comes in as arguments, so these functions never make remote calls while a transaction is open.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm.exc import StaleDataError

from crm_common.caller import Caller
from crm_common.clock import utcnow
from crm_common.errors import Conflict, Forbidden, ValidationError, VersionConflict, require
from crm_common.schemas import load_or_raise, new_id
from deals import domain, views
from deals import repository as repo
from deals.exceptions import DealNotFound, PipelineNotFound, ScriptNotFound
from deals.models import Deal, Pipeline, Script, ScriptVersion, Stage, StageVisit
from deals.schemas import (
    DealCreateSchema,
    DealUpdateSchema,
    PipelineCreateSchema,
    PipelineUpdateSchema,
    ScriptCreateSchema,
    ScriptUpdateSchema,
    StageMoveSchema,
    script_out,
    visit_out,
)

MANAGERS_OF_PROCESS = ("admin", "head")


def _require_process_manager(caller: Caller, what: str) -> None:
    if caller.role not in MANAGERS_OF_PROCESS:
        raise Forbidden(f"only a head of sales or an administrator may change {what}")


# ---- pipelines

def _check_scripts(session, branch_id: str, stages: list[dict]) -> None:
    wanted = {stage["script_id"] for stage in stages if stage.get("script_id")}
    found = repo.scripts_by_id(session, wanted)
    for position, stage in enumerate(stages):
        script = found.get(stage.get("script_id"))
        if stage.get("script_id") and (script is None or script.branch_id != branch_id):
            raise ValidationError(
                "unknown script", fields={f"stages.{position}.script_id": ["No such script in this branch."]}
            )


def create_pipeline(uow, caller: Caller, raw: dict) -> dict:
    _require_process_manager(caller, "pipelines")
    data = load_or_raise(PipelineCreateSchema, raw)
    branch_id = caller.target_branch(data["branch_id"])
    _check_scripts(uow.session, branch_id, data["stages"])
    now = utcnow()
    pipeline = Pipeline(id=new_id(), branch_id=branch_id, name=data["name"], created_at=now, updated_at=now)
    uow.session.add(pipeline)
    uow.session.flush()
    for position, stage in enumerate(data["stages"]):
        uow.session.add(_new_stage(pipeline.id, stage, position))
    uow.session.flush()
    out = views.dump_pipeline(uow.session, pipeline)
    uow.emit("pipeline_created", {"branch_id": pipeline.branch_id, "actor_id": caller.id, "pipeline": out})
    return out


def _new_stage(pipeline_id: str, stage: dict, position: int) -> Stage:
    return Stage(
        id=new_id(), pipeline_id=pipeline_id, name=stage["name"], kind=stage["kind"], position=position,
        max_days=stage.get("max_days"), script_id=stage.get("script_id"),
    )


def require_pipeline(session, caller: Caller, pipeline_id: str) -> Pipeline:
    return require(repo.get_pipeline(session, caller, pipeline_id), PipelineNotFound)


def update_pipeline(uow, caller: Caller, pipeline_id: str, raw: dict, expected_version=None) -> dict:
    """Rename, re-time, reorder, add or remove stages. History keeps the names stages had when entered."""
    _require_process_manager(caller, "pipelines")
    data = load_or_raise(PipelineUpdateSchema, raw)
    session = uow.session
    pipeline = require_pipeline(session, caller, pipeline_id)  # an invisible or stale one waits for nothing
    VersionConflict.check("pipeline", pipeline.version, expected_version)
    repo.lock_pipeline(session, pipeline.id, exclusive=True)  # waits for deals entering its stages
    session.refresh(pipeline)  # as it is now that nothing else changes it
    VersionConflict.check("pipeline", pipeline.version, expected_version)
    now = utcnow()
    with session.no_autoflush:  # one change, one new version: nothing is written before the final flush
        _apply_pipeline_changes(session, pipeline, data, now)
    pipeline.updated_at = now
    try:
        session.flush()
    except StaleDataError:
        raise VersionConflict("the pipeline changed while you were saving it") from None
    out = views.dump_pipeline(session, pipeline)
    uow.emit("pipeline_updated", {"branch_id": pipeline.branch_id, "actor_id": caller.id, "pipeline": out})
    return out


def _apply_pipeline_changes(session, pipeline: Pipeline, data: dict, now) -> None:
    if "name" in data:
        pipeline.name = data["name"]
    if "stages" in data:
        _check_scripts(session, pipeline.branch_id, data["stages"])
        existing = {s.id: s for s in repo.stages_of(session, [pipeline.id])}
        infos = {s.id: domain.StageInfo(s.id, s.name, s.kind, s.pipeline_id) for s in existing.values()}
        plan = domain.plan_stages(infos, data["stages"], repo.deals_per_stage(session, pipeline.id))
        for stage_id in plan.remove:
            existing[stage_id].removed_at = now
        for stage_id, wanted, position in plan.keep:
            stage = existing[stage_id]
            retimed = stage.max_days != wanted.get("max_days")
            stage.name, stage.kind, stage.position = wanted["name"], wanted["kind"], position
            stage.max_days, stage.script_id = wanted.get("max_days"), wanted.get("script_id")
            if retimed:
                _retime_open_deals(session, stage, now)
        for wanted, position in plan.add:
            session.add(_new_stage(pipeline.id, wanted, position))


def _retime_open_deals(session, stage: Stage, now) -> None:
    """A new time limit applies to the deals in the stage now, counted from when each entered it.

    A deal already raised as stuck that is still past the new limit is not raised again for the same
    stage entry; one the new limit gives more time may be raised again when that time runs out.
    """
    deals = session.execute(
        select(Deal.id, Deal.stage_entered_at).where(Deal.stage_id == stage.id, Deal.status == "open")
    ).all()
    for deal_id, entered_at in deals:
        due = domain.due_at(entered_at, stage.max_days)
        still_late = due is not None and due <= now
        # a deal still late keeps its stuck mark as the database has it now (the stuck timer may have set
        # it since the read); one the new limit gives more time loses it
        values = {"stage_due_at": due} if still_late else {"stage_due_at": due, "stuck_raised_at": None}
        session.execute(
            # the same stage entry only: never re-time a deal that has moved on since it was read
            update(Deal).where(Deal.id == deal_id, Deal.stage_id == stage.id, Deal.status == "open",
                               Deal.stage_entered_at == entered_at)
            .values(**values)
            .execution_options(synchronize_session=False)
        )


# ---- deals

def _stage_ref(stage) -> dict:
    return {"id": stage.id, "name": stage.name, "kind": stage.kind, "position": stage.position}


def load_new_deal(raw: dict) -> dict:
    return load_or_raise(DealCreateSchema, raw)


def create_deal(uow, caller: Caller, data: dict, client: dict | None, directory: dict | None) -> dict:
    """``data`` was loaded with ``load_new_deal``; ``client`` is what the clients service showed the caller."""
    session = uow.session
    if client is None:
        raise ValidationError("unknown client", fields={"client_id": ["No such client (or not yours)."]})
    if client.get("archived"):
        raise ValidationError("archived client", fields={"client_id": ["The client is archived; restore it first."]})
    pipeline = repo.get_pipeline(session, caller, data["pipeline_id"])
    if pipeline is None:
        raise ValidationError("unknown pipeline", fields={"pipeline_id": ["No such pipeline."]})
    if pipeline.branch_id != client["branch_id"]:
        raise ValidationError(
            "pipeline of another branch", fields={"pipeline_id": ["The pipeline belongs to another branch than the client."]}
        )
    repo.lock_pipeline(session, pipeline.id)  # its first stage stays put until the deal is in it
    first = repo.stages_of(session, [pipeline.id])[0]
    default_owner = client.get("owner_id") or (caller.id if caller.branch_id == pipeline.branch_id else None)
    owner_id = caller.owner_for(data["owner_id"], pipeline.branch_id, directory, default_owner, record="deal")
    now = utcnow()
    deal = Deal(
        id=new_id(), branch_id=pipeline.branch_id, client_id=client["id"], pipeline_id=pipeline.id,
        stage_id=first.id, status="open", title=data["title"], amount_minor=domain.to_minor(data["amount"]),
        currency=data["currency"], owner_id=owner_id, stage_entered_at=now,
        stage_due_at=domain.due_at(now, first.max_days), created_at=now, updated_at=now,
    )
    session.add(deal)
    session.flush()
    session.add(_visit(deal, first, None, now, caller.id, None, seq=1))
    out = views.dump_deal(session, deal)
    uow.emit("deal_created", {"branch_id": deal.branch_id, "actor_id": caller.id, "deal": views.snapshot(out),
                              "stage": _stage_ref(first)})
    return out


def _visit(deal: Deal, stage: Stage, from_stage_id, when, actor_id, lost_reason, seq: int) -> StageVisit:
    return StageVisit(
        id=new_id(), deal_id=deal.id, pipeline_id=deal.pipeline_id, stage_id=stage.id, stage_name=stage.name,
        stage_kind=stage.kind, from_stage_id=from_stage_id, entered_at=when, moved_by=actor_id,
        lost_reason=lost_reason, seq=seq,
    )


def require_deal(session, caller: Caller, deal_id: str) -> Deal:
    return require(repo.get_deal(session, caller, deal_id), DealNotFound)


def _flush(session) -> None:
    try:
        session.flush()
    except StaleDataError:
        raise VersionConflict("the deal was changed by someone else at the same moment; read it again") from None


def move_deal(
    uow, caller: Caller, deal_id: str, raw: dict, expected_version=None, client_branch_id: str | None = None
) -> dict:
    """Move a deal to another stage of its pipeline, closing the current stage visit in its history.

    ``client_branch_id``: where the clients service says the deal's client is now ("" if it does not know
    the client), asked before a reopen; a deal is not reopened for a client that left its branch."""
    data = load_or_raise(StageMoveSchema, raw)
    session = uow.session
    deal = require_deal(session, caller, deal_id)
    VersionConflict.check("deal", deal.version, expected_version)
    repo.lock_pipeline(session, deal.pipeline_id)  # before reading the stages: none changes until we commit
    current = session.get(Stage, deal.stage_id)
    target = session.get(Stage, data["stage_id"])
    move = domain.plan_move(_info(current), _info(target) if target else None, deal.pipeline_id, data["lost_reason"])
    if move is None:
        return views.dump_deal(session, deal)
    reopening = deal.status != "open" and target.kind == "open"
    if reopening and client_branch_id is not None and client_branch_id != deal.branch_id:
        raise Conflict(
            "the deal's client is no longer in this branch, so the deal cannot be reopened; "
            "open a new deal for the client in its branch",
            fields={"stage_id": ["The client has moved to another branch."]},
        )
    now = utcnow()
    previous_status = deal.status
    time_in_stage = (now - deal.stage_entered_at).total_seconds()
    visit = repo.last_visit(session, deal.id)  # the stage the deal is in: still open
    seq = (visit.seq if visit else 0) + 1
    deal.stage_id, deal.status, deal.stage_entered_at = target.id, domain.status_of(target.kind), now
    deal.stage_due_at = domain.due_at(now, target.max_days) if target.kind == "open" else None
    deal.stuck_raised_at = None
    deal.lost_reason = data["lost_reason"] if target.kind == "lost" else None
    deal.closed_at = now if target.kind in ("won", "lost") else None
    deal.updated_at = now
    _flush(session)  # the version check: of two simultaneous moves only one gets past this line
    if visit is not None and visit.exited_at is None:
        visit.exited_at, visit.time_spent_s = now, (now - visit.entered_at).total_seconds()
    session.add(_visit(deal, target, current.id, now, caller.id, deal.lost_reason, seq))
    session.flush()
    out = views.dump_deal(session, deal)
    base = {"branch_id": deal.branch_id, "actor_id": caller.id, "deal": views.snapshot(out)}
    for event in move.events:
        if event == "deal_stage_changed":
            uow.emit(event, {**base, "from_stage": _stage_ref(current), "to_stage": _stage_ref(target),
                             "time_in_stage_s": time_in_stage, "seq": seq})
        elif event == "deal_won":
            uow.emit(event, {**base, "stage": _stage_ref(target)})
        elif event == "deal_lost":
            uow.emit(event, {**base, "stage": _stage_ref(target), "reason": deal.lost_reason})
        elif event == "deal_reopened":
            uow.emit(event, {**base, "stage": _stage_ref(target), "from_status": previous_status})
    return out


def _info(stage: Stage) -> domain.StageInfo:
    return domain.StageInfo(stage.id, stage.name, stage.kind, stage.pipeline_id, stage.removed_at is not None)


def update_deal(uow, caller: Caller, deal_id: str, raw: dict, expected_version, directory) -> dict:
    changes = load_or_raise(DealUpdateSchema, raw)
    session = uow.session
    deal = require_deal(session, caller, deal_id)
    VersionConflict.check("deal", deal.version, expected_version)
    if "owner_id" in changes and changes["owner_id"] != deal.owner_id:
        if caller.is_manager:
            raise Forbidden("a manager cannot give a deal to someone else")
        changes["owner_id"] = caller.owner_for(changes["owner_id"], deal.branch_id, directory, deal.owner_id, record="deal")
    if "amount" in changes:
        changes["amount_minor"] = domain.to_minor(changes.pop("amount"))
    changed = [name for name, value in changes.items() if getattr(deal, name) != value]
    if not changed:
        return views.dump_deal(session, deal)
    for name in changed:
        setattr(deal, name, changes[name])
    deal.updated_at = utcnow()
    _flush(session)
    out = views.dump_deal(session, deal)
    public = ["amount" if name == "amount_minor" else name for name in changed]
    uow.emit("deal_updated", {"branch_id": deal.branch_id, "actor_id": caller.id, "deal": views.snapshot(out), "changed": public})
    return out


def deal_history(session, caller: Caller, deal_id: str, page: dict) -> dict:
    deal = require_deal(session, caller, deal_id)
    return repo.history(session, deal.id, page["cursor"], page["limit"], visit_out.dump)


# Deals per transaction of the stuck check: as the tasks' deadline check (decisions.md 82), a batch's events go out when
# it commits and their fan-out competes with the rest of the check.
STUCK_BATCH = 2000


def raise_stuck_deals(uow, now: datetime | None = None, batch: int = STUCK_BATCH) -> int:
    """Raise ``deal_stuck`` once per stage entry for every open deal past its stage's time limit."""
    session = uow.session
    now = now or utcnow()
    raised = 0
    while True:
        deals = repo.due_for_stuck(session, now, batch)
        if not deals:
            return raised
        stages = {s.id: s for s in session.scalars(select(Stage).where(Stage.id.in_({d.stage_id for d in deals})))}
        session.execute(
            update(Deal).where(Deal.id.in_([d.id for d in deals])).values(stuck_raised_at=now)
            .execution_options(synchronize_session=False)
        )
        view = views.DealView(session, with_script=False, now=now)
        # one INSERT for the batch's events: the first is checked in full, the rest (built the same way) for keys
        uow.emit_many("deal_stuck", [_stuck(view, deal, stages[deal.stage_id], now) for deal in deals])
        uow.commit()
        raised += len(deals)
        if len(deals) < batch:
            return raised


def _stuck(view: views.DealView, deal: Deal, stage: Stage, now: datetime) -> dict:
    return {"branch_id": deal.branch_id, "actor_id": None, "deal": views.snapshot(view.one(deal, stage, None)),
            "stage": _stage_ref(stage), "max_days": stage.max_days or 0.0,
            "days_in_stage": domain.days_between(deal.stage_entered_at, now)}


def open_deals_of_client(session, client_id: str) -> list[dict]:
    return [{"id": d.id, "title": d.title} for d in repo.open_deals_of_client(session, client_id)]


# ---- scripts

def create_script(uow, caller: Caller, raw: dict) -> dict:
    _require_process_manager(caller, "the sales book")
    data = load_or_raise(ScriptCreateSchema, raw)
    session = uow.session
    branch_id = caller.target_branch(data["branch_id"])
    _script_stage(session, data["stage_id"], branch_id)
    now = utcnow()
    script = Script(
        id=new_id(), branch_id=branch_id, title=data["title"], body=data["body"], stage_id=data["stage_id"],
        version=1, created_at=now, updated_at=now,
    )
    session.add(script)
    session.flush()
    session.add(_script_version(script, caller.id))
    out = script_out.dump(script)
    uow.emit("script_created", {"branch_id": script.branch_id, "actor_id": caller.id, "script": out})
    return out


def _script_stage(session, stage_id, branch_id: str) -> None:
    """Check that a script is written for a live stage of its own branch."""
    if stage_id is None:
        return
    stage = session.get(Stage, stage_id)
    pipeline = session.get(Pipeline, stage.pipeline_id) if stage else None
    if stage is None or stage.removed_at is not None or pipeline.branch_id != branch_id:
        raise ValidationError("unknown stage", fields={"stage_id": ["No such stage in this branch."]})


def _script_version(script: Script, author_id) -> ScriptVersion:
    return ScriptVersion(
        script_id=script.id, version=script.version, title=script.title, body=script.body,
        stage_id=script.stage_id, author_id=author_id, created_at=script.updated_at,
    )


def require_script(session, caller: Caller, script_id: str, for_update: bool = False) -> Script:
    return require(repo.get_script(session, caller, script_id, for_update), ScriptNotFound)


def update_script(uow, caller: Caller, script_id: str, raw: dict, expected_version=None) -> dict:
    """Every change is a new version; the old versions stay readable."""
    _require_process_manager(caller, "the sales book")
    changes = load_or_raise(ScriptUpdateSchema, raw)
    session = uow.session
    script = require_script(session, caller, script_id, for_update=True)
    VersionConflict.check("script", script.version, expected_version)
    if changes.get("stage_id"):
        _script_stage(session, changes["stage_id"], script.branch_id)
    changed = [name for name, value in changes.items() if getattr(script, name) != value]
    if not changed:
        return script_out.dump(script)
    for name in changed:
        setattr(script, name, changes[name])
    script.version += 1
    script.updated_at = utcnow()
    session.add(_script_version(script, caller.id))
    session.flush()
    out = script_out.dump(script)
    uow.emit("script_updated", {"branch_id": script.branch_id, "actor_id": caller.id, "script": out})
    return out


# ---- clients merged elsewhere

def repoint_merged_client(uow, payload: dict) -> int:
    """``client_merged``: the merged client's deals now belong to the client it became; one ``deal_updated``
    (``changed: ["client_id"]``) per deal. Idempotent: a repeated event finds nothing left to move."""
    if not uow.first_delivery(payload["event_id"], "client_merged"):
        return 0
    kept_id = payload["client"]["id"]
    now = utcnow()
    session = uow.session
    moved = session.scalars(
        update(Deal).where(Deal.client_id == payload["merged_id"])
        .values(client_id=kept_id, updated_at=now, version=Deal.version + 1)
        .returning(Deal.id).execution_options(synchronize_session=False)
    ).all()
    if not moved:
        return 0
    deals = session.scalars(select(Deal).where(Deal.id.in_(moved)).order_by(Deal.id)
                            .execution_options(populate_existing=True)).all()
    for index, out in enumerate(views.DealView(session, with_script=False, now=now).dump(deals)):
        uow.emit("deal_updated", {"branch_id": out["branch_id"], "actor_id": payload.get("actor_id"),
                                  "deal": views.snapshot(out), "changed": ["client_id"]}, full_check=index == 0)
    return len(moved)
