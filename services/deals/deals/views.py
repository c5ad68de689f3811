"""How the deals service shows its records: pipelines with their stages, deals with their stage and script.

Reads and the results of writes go through here, so a deal looks the same whichever RPC returns it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from crm_common.caller import Caller
from crm_common.clock import utcnow
from crm_common.schemas import iso
from deals import domain
from deals import repository as repo
from deals.models import Deal, Pipeline, Script, Stage
from deals.schemas import pipeline_out


def dump_pipeline(session, pipeline: Pipeline) -> dict:
    stages = repo.stages_of(session, [pipeline.id])
    return pipeline_out.dump({**columns(pipeline), "stages": stages})


def columns(row) -> dict:
    return {column.key: getattr(row, column.key) for column in row.__table__.columns}


def list_pipelines(session, caller: Caller, filters: dict) -> dict:
    page = repo.list_pipelines(session, caller, filters, lambda p: p)
    stages = repo.stages_of(session, [p.id for p in page["items"]])
    by_pipeline: dict[str, list[Stage]] = {}
    for stage in stages:
        by_pipeline.setdefault(stage.pipeline_id, []).append(stage)
    page["items"] = [pipeline_out.dump({**columns(p), "stages": by_pipeline.get(p.id, [])}) for p in page["items"]]
    return page


class DealView:
    """Turns deals into their public shape, looking up stages and scripts once per batch."""

    def __init__(self, session, with_script: bool, now: datetime | None = None):
        self.session = session
        self.with_script = with_script
        self.now = now or utcnow()

    def dump(self, deals: list[Deal]) -> list[dict]:
        if not deals:
            return []
        stage_ids = {d.stage_id for d in deals}
        if len(stage_ids) == 1:  # one deal: its stage is usually in the session already, no query
            stage = self.session.get(Stage, next(iter(stage_ids)))
            stages = {stage.id: stage}
        else:
            stages = {s.id: s for s in self.session.scalars(select(Stage).where(Stage.id.in_(stage_ids)))}
        scripts: dict[str, Script] = {}
        if self.with_script:
            explicit = repo.scripts_by_id(self.session, [s.script_id for s in stages.values()])
            unpinned = [s.id for s in stages.values() if s.script_id not in explicit]
            written_for = repo.latest_script_for_stages(self.session, unpinned)
            for stage in stages.values():
                script = explicit.get(stage.script_id) or written_for.get(stage.id)
                if script is not None:
                    scripts[stage.id] = script
        return [self.one(deal, stages[deal.stage_id], scripts.get(deal.stage_id)) for deal in deals]

    def one(self, deal: Deal, stage: Stage, script: Script | None) -> dict:
        """The deal as ``DealSchema`` (``deal_out``) dumps it, built directly: the stuck scan shows thousands of
        deals per pass and a list a page of them, and the schema's dump cost several times this. The unit tests
        hold the two equal for deals in every state."""
        stage_data = {"id": stage.id, "name": stage.name, "kind": stage.kind,
                      "max_days": None if stage.max_days is None else float(stage.max_days)}
        if self.with_script:
            stage_data["script"] = (
                {"id": script.id, "title": script.title, "body": script.body, "version": script.version}
                if script else None
            )
        return {
            "id": deal.id, "client_id": deal.client_id, "pipeline_id": deal.pipeline_id, "stage_id": deal.stage_id,
            "stage": stage_data, "status": deal.status, "title": deal.title,
            "amount": str(domain.from_minor(deal.amount_minor)), "currency": deal.currency, "owner_id": deal.owner_id,
            "branch_id": deal.branch_id, "stage_entered_at": _time(deal.stage_entered_at),
            "stage_due_at": _time(deal.stage_due_at),
            "stuck": bool(deal.status == "open" and deal.stage_due_at and deal.stage_due_at <= self.now),
            "lost_reason": deal.lost_reason, "closed_at": _time(deal.closed_at), "created_at": _time(deal.created_at),
            "updated_at": _time(deal.updated_at), "version": deal.version,
        }


def _time(value) -> str | None:
    return None if value is None or isinstance(value, str) else iso(value)


def dump_deal(session, deal: Deal) -> dict:
    return DealView(session, with_script=True).dump([deal])[0]


def snapshot(deal_dict: dict) -> dict:
    """A deal as events carry it: without its stage details."""
    return {k: v for k, v in deal_dict.items() if k != "stage"}


def list_deals(session, caller: Caller, filters: dict) -> dict:
    now = utcnow()
    return repo.list_deals(session, caller, filters, now, DealView(session, with_script=False, now=now).dump)
