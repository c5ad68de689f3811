"""What the deals service exports for rebuilding read models (``crm_common.exports``).

A deal is exported as its events carry it, plus its whole stage history: each visit with its ``seq``
and the stage's current ``position``, which is what the funnel needs to tell a move on from a move back.
"""

from __future__ import annotations

from sqlalchemy import select

from crm_common.clock import utcnow
from crm_common.exports import check_export_args, export_page
from crm_common.schemas import iso
from deals import domain, views
from deals.models import Deal, Pipeline, Script, Stage, StageVisit
from deals.schemas import script_out

KINDS = ("deals", "pipelines", "scripts")


DEAL_FIELDS = ("id", "client_id", "pipeline_id", "stage_id", "status", "title", "currency", "owner_id", "branch_id",
               "lost_reason", "version")
VISIT_COLUMNS = (StageVisit.deal_id, StageVisit.seq, StageVisit.stage_id, StageVisit.stage_name, StageVisit.stage_kind,
                 StageVisit.entered_at, StageVisit.exited_at, StageVisit.time_spent_s, StageVisit.moved_by)


def _time(value):
    return iso(value) if value is not None else None


def _deals(session):
    """Deals as ``views.snapshot`` shows them, built directly: a million of them through marshmallow would
    take most of a rebuild (tests/unit/deals/test_exports.py holds the two shapes equal)."""

    def dump_rows(deals: list[Deal]) -> list[dict]:
        if not deals:
            return []
        now = utcnow()
        visits = session.execute(
            select(*VISIT_COLUMNS).where(StageVisit.deal_id.in_([d.id for d in deals]))
            .order_by(StageVisit.deal_id, StageVisit.seq)
        ).all()
        positions = dict(session.execute(
            select(Stage.id, Stage.position).where(Stage.id.in_({v.stage_id for v in visits} | {d.stage_id for d in deals}))
        ).all())
        history: dict[str, list[dict]] = {}
        for visit in visits:
            history.setdefault(visit.deal_id, []).append({
                "seq": visit.seq, "stage_id": visit.stage_id, "stage_name": visit.stage_name,
                "stage_kind": visit.stage_kind, "position": positions.get(visit.stage_id),
                "entered_at": iso(visit.entered_at), "exited_at": _time(visit.exited_at),
                "time_spent_s": visit.time_spent_s, "moved_by": visit.moved_by,
            })
        items = []
        for deal in deals:
            item = {name: getattr(deal, name) for name in DEAL_FIELDS}
            item.update(
                amount=f"{domain.from_minor(deal.amount_minor):.2f}", stage_entered_at=iso(deal.stage_entered_at),
                stage_due_at=_time(deal.stage_due_at), closed_at=_time(deal.closed_at),
                created_at=iso(deal.created_at), updated_at=iso(deal.updated_at),
                stuck=bool(deal.status == "open" and deal.stage_due_at and deal.stage_due_at <= now),
                history=history.get(deal.id, []),
            )
            items.append(item)
        return items

    return dump_rows


def _pipeline(session, pipeline: Pipeline) -> dict:
    """As ``pipeline_created`` carries it, plus the stages removed since (history still names them)."""
    item = views.dump_pipeline(session, pipeline)
    removed = session.scalars(
        select(Stage).where(Stage.pipeline_id == pipeline.id, Stage.removed_at.is_not(None)).order_by(Stage.position)
    )
    item["removed_stages"] = [{"id": s.id, "name": s.name, "kind": s.kind, "position": s.position} for s in removed]
    return item


def export(session, kind, cursor, limit) -> dict:
    limit = check_export_args(KINDS, kind, cursor, limit)
    if kind == "deals":
        return export_page(session, Deal, cursor, limit, _deals(session))
    if kind == "pipelines":
        return export_page(session, Pipeline, cursor, limit, lambda rows: [_pipeline(session, p) for p in rows])
    return export_page(session, Script, cursor, limit, lambda rows: [script_out.dump(s) for s in rows])
