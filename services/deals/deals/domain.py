"""The rules of the sales process, free of nameko and of the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from crm_common.errors import Conflict, ValidationError

CENTS = Decimal(100)


def to_minor(amount: Decimal) -> int:
    return int((amount * CENTS).to_integral_value())


def from_minor(amount_minor: int) -> Decimal:
    return (Decimal(amount_minor) / CENTS).quantize(Decimal("0.01"))


def due_at(entered_at: datetime, max_days: float | None) -> datetime | None:
    """When a deal that entered a stage at ``entered_at`` becomes stuck there."""
    if max_days is None:
        return None
    return entered_at + timedelta(days=max_days)


def status_of(stage_kind: str) -> str:
    return stage_kind  # open, won and lost stages give deals of the same status


def days_between(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() / 86400


@dataclass(frozen=True)
class StageInfo:
    id: str
    name: str
    kind: str
    pipeline_id: str
    removed: bool = False


@dataclass
class Move:
    """What moving a deal from one stage to another means: the events it raises."""

    events: list[str] = field(default_factory=list)


def plan_move(current: StageInfo, target: StageInfo | None, pipeline_id: str, lost_reason: str | None) -> Move | None:
    """Check a stage move and name its events; None when the deal is already there."""
    if target is None or target.pipeline_id != pipeline_id:
        raise ValidationError("not a stage of this deal's pipeline", fields={"stage_id": ["Not a stage of the deal's pipeline."]})
    if target.removed:
        raise ValidationError("this stage was removed", fields={"stage_id": ["This stage was removed from the pipeline."]})
    if target.kind == "lost" and not lost_reason:
        raise ValidationError("a lost deal needs a reason", fields={"lost_reason": ["Required when moving to a lost stage."]})
    if target.kind != "lost" and lost_reason:
        raise ValidationError("only lost deals have a reason", fields={"lost_reason": ["Only for a lost stage."]})
    if target.id == current.id:
        return None
    events = ["deal_stage_changed"]
    if target.kind == "won":
        events.append("deal_won")
    elif target.kind == "lost":
        events.append("deal_lost")
    elif current.kind in ("won", "lost"):
        events.append("deal_reopened")
    return Move(events)


@dataclass
class StagePlan:
    """How a pipeline's stages change: kept (with new values), added, removed."""

    keep: list[tuple[str, dict, int]] = field(default_factory=list)
    add: list[tuple[dict, int]] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)


def plan_stages(existing: dict[str, StageInfo], wanted: list[dict], occupied: dict[str, int]) -> StagePlan:
    """Compare the stages a pipeline has with the list wanted; refuse what would strand deals.

    ``occupied`` maps a stage id to the number of deals in it now.
    """
    plan = StagePlan()
    for position, stage in enumerate(wanted):
        stage_id = stage.get("id")
        if stage_id is None:
            plan.add.append((stage, position))
            continue
        current = existing.get(stage_id)
        if current is None or current.removed:
            raise ValidationError("unknown stage", fields={f"stages.{position}.id": ["Not a stage of this pipeline."]})
        if stage["kind"] != current.kind and occupied.get(stage_id):
            raise Conflict(
                f"stage '{current.name}' has {occupied[stage_id]} deal(s); its kind cannot change",
                fields={f"stages.{position}.kind": ["Move the deals out of this stage first."]},
            )
        plan.keep.append((stage_id, stage, position))
    kept = {stage_id for stage_id, _, _ in plan.keep}
    for stage_id, current in existing.items():
        if current.removed or stage_id in kept:
            continue
        if occupied.get(stage_id):
            raise Conflict(
                f"stage '{current.name}' has {occupied[stage_id]} deal(s) and cannot be removed",
                fields={"stages": [f"Stage '{current.name}' still has deals; move them first."]},
                details={"stage_id": stage_id, "deals": occupied[stage_id]},
            )
        plan.remove.append(stage_id)
    return plan
