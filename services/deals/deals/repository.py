"""Queries of the deals service. Reads of deals go through the caller's visibility condition."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, not_, or_, select, text
from sqlalchemy.orm import Session

from crm_common.caller import Caller
from crm_common.pagination import SortKey, paginate
from crm_common.schemas import is_uuid
from deals.models import Deal, Pipeline, Script, ScriptVersion, Stage, StageVisit

DEAL_SORT_KEYS = {
    "-created_at": [SortKey(Deal.created_at, True, "datetime"), SortKey(Deal.id, True)],
    "created_at": [SortKey(Deal.created_at, False, "datetime"), SortKey(Deal.id, False)],
    "-updated_at": [SortKey(Deal.updated_at, True, "datetime"), SortKey(Deal.id, True)],
    "stage_entered_at": [SortKey(Deal.stage_entered_at, False, "datetime"), SortKey(Deal.id, False)],
}
PIPELINE_KEYS = [SortKey(Pipeline.created_at, True, "datetime"), SortKey(Pipeline.id, True)]
SCRIPT_KEYS = [SortKey(Script.updated_at, True, "datetime"), SortKey(Script.id, True)]
HISTORY_KEYS = [SortKey(StageVisit.seq, False, "int"), SortKey(StageVisit.id, False)]
VERSION_KEYS = [SortKey(ScriptVersion.version, True, "int"), SortKey(ScriptVersion.script_id, True)]


def branch_condition(caller: Caller, column):
    """Pipelines and scripts belong to a branch: everyone in it may read them, an admin reads all."""
    return column.is_not(None) if caller.is_admin else column == caller.branch_id


def get_pipeline(session: Session, caller: Caller, pipeline_id: str) -> Pipeline | None:
    if not is_uuid(pipeline_id):
        return None
    return session.scalars(
        select(Pipeline).where(Pipeline.id == pipeline_id, branch_condition(caller, Pipeline.branch_id))
    ).first()


PIPELINE_LOCKS = 0x5049  # the advisory-lock key space of pipelines in the deals database ("PI")


def lock_pipeline(session: Session, pipeline_id: str, exclusive: bool = False) -> None:
    """Hold the pipeline until the transaction ends: shared by a deal entering one of its stages (a new
    deal, a move), exclusively by a change of its stages. So a stage is never removed or re-timed while a
    deal is entering it (that deal would land in a deleted stage or keep the old limit), and moves do not
    wait for each other.

    A transaction-level advisory lock rather than a row lock: PostgreSQL's lock manager queues a new
    shared request behind a waiting exclusive one, so a busy pipeline's moves cannot starve its change,
    and taking it writes nothing to the pipelines table (FOR SHARE by many movers at once would). Take
    it before reading the stages. SQLite needs none of it: a service on SQLite is one process, and its
    commands do not yield between their reads and their writes."""
    if session.bind.dialect.name != "postgresql":
        return
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    session.execute(text(f"SELECT {function}(:space, hashtext(:pipeline_id))"),
                    {"space": PIPELINE_LOCKS, "pipeline_id": pipeline_id})


def stages_of(session: Session, pipeline_ids, include_removed: bool = False) -> list[Stage]:
    query = select(Stage).where(Stage.pipeline_id.in_(list(pipeline_ids)))
    if not include_removed:
        query = query.where(Stage.removed_at.is_(None))
    return list(session.scalars(query.order_by(Stage.pipeline_id, Stage.position)).all())


def list_pipelines(session: Session, caller: Caller, filters: dict, dump) -> dict:
    query = select(Pipeline).where(branch_condition(caller, Pipeline.branch_id))
    if filters.get("branch_id"):
        query = query.where(Pipeline.branch_id == filters["branch_id"])
    return paginate(session, query, PIPELINE_KEYS, filters.get("cursor"), filters["limit"], dump)


def deals_per_stage(session: Session, pipeline_id: str) -> dict[str, int]:
    rows = session.execute(
        select(Deal.stage_id, func.count()).where(Deal.pipeline_id == pipeline_id).group_by(Deal.stage_id)
    ).all()
    return {stage_id: count for stage_id, count in rows}


def get_deal(session: Session, caller: Caller, deal_id: str) -> Deal | None:
    if not is_uuid(deal_id):
        return None
    return session.scalars(select(Deal).where(Deal.id == deal_id, caller.visibility(Deal))).first()


def stuck_condition(now: datetime):
    return and_(Deal.status == "open", Deal.stage_due_at.is_not(None), Deal.stage_due_at <= now)


def list_deals(session: Session, caller: Caller, filters: dict, now: datetime, dump_page) -> dict:
    query = select(Deal).where(caller.visibility(Deal))
    for name in ("pipeline_id", "stage_id", "status", "owner_id", "client_id"):
        if filters.get(name):
            query = query.where(getattr(Deal, name) == filters[name])
    if filters.get("stuck") is True:
        query = query.where(stuck_condition(now))
    elif filters.get("stuck") is False:
        query = query.where(or_(Deal.stage_due_at.is_(None), not_(stuck_condition(now))))
    keys = DEAL_SORT_KEYS[filters.get("sort", "-created_at")]
    page = paginate(session, query, keys, filters.get("cursor"), filters["limit"], lambda deal: deal)
    page["items"] = dump_page(page["items"])
    return page


def last_visit(session: Session, deal_id: str) -> StageVisit | None:
    """The deal's latest stage entry: the stage it is in now, not yet exited."""
    return session.scalars(
        select(StageVisit).where(StageVisit.deal_id == deal_id).order_by(StageVisit.seq.desc()).limit(1)
    ).first()


def history(session: Session, deal_id: str, cursor: str | None, limit: int, dump) -> dict:
    query = select(StageVisit).where(StageVisit.deal_id == deal_id)
    return paginate(session, query, HISTORY_KEYS, cursor, limit, dump)


def open_deals_of_client(session: Session, client_id: str) -> list[Deal]:
    return list(
        session.scalars(select(Deal).where(Deal.client_id == client_id, Deal.status == "open").limit(100)).all()
    )


def due_for_stuck(session: Session, now: datetime, batch: int) -> list[Deal]:
    query = (
        select(Deal)
        .where(Deal.status == "open", Deal.stuck_raised_at.is_(None), Deal.stage_due_at <= now)
        .order_by(Deal.stage_due_at)
        .limit(batch)
    )
    if session.bind.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query).all())


def get_script(session: Session, caller: Caller, script_id: str, for_update: bool = False) -> Script | None:
    if not is_uuid(script_id):
        return None
    query = select(Script).where(Script.id == script_id, branch_condition(caller, Script.branch_id))
    if for_update and session.bind.dialect.name == "postgresql":
        query = query.with_for_update()  # two edits at once become versions n+1 and n+2, not a clash
    return session.scalars(query).first()


def scripts_by_id(session: Session, script_ids) -> dict[str, Script]:
    ids = [s for s in set(script_ids) if s]
    if not ids:
        return {}
    return {script.id: script for script in session.scalars(select(Script).where(Script.id.in_(ids)))}


def latest_script_for_stages(session: Session, stage_ids) -> dict[str, Script]:
    """For stages without an explicit script: the most recently changed script written for them."""
    ids = [s for s in set(stage_ids) if s]
    if not ids:
        return {}
    newest = (
        select(Script.id, func.row_number().over(partition_by=Script.stage_id, order_by=Script.updated_at.desc()).label("n"))
        .where(Script.stage_id.in_(ids))
        .subquery()
    )
    scripts = session.scalars(select(Script).join(newest, Script.id == newest.c.id).where(newest.c.n == 1))
    return {script.stage_id: script for script in scripts}


def list_scripts(session: Session, caller: Caller, filters: dict, dump) -> dict:
    query = select(Script).where(branch_condition(caller, Script.branch_id))
    if filters.get("stage_id"):
        query = query.where(Script.stage_id == filters["stage_id"])
    if filters.get("branch_id"):
        query = query.where(Script.branch_id == filters["branch_id"])
    return paginate(session, query, SCRIPT_KEYS, filters.get("cursor"), filters["limit"], dump)


def script_versions(session: Session, script_id: str, cursor: str | None, limit: int, dump) -> dict:
    query = select(ScriptVersion).where(ScriptVersion.script_id == script_id)
    return paginate(session, query, VERSION_KEYS, cursor, limit, dump)
