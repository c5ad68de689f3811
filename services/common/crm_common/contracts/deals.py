"""The deals service's RPC contract: pipelines with timed stages, deals, stage history, sales scripts."""

from __future__ import annotations

from decimal import Decimal

import pycountry
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from crm_common.schemas import (
    AwareDateTime,
    Id,
    Money,
    PageQuerySchema,
    StrictSchema,
    Text,
    UpdateSchema,
)

STAGE_KINDS = ("open", "won", "lost")
DEAL_STATUSES = ("open", "won", "lost")
DEAL_SORTS = ("-created_at", "created_at", "-updated_at", "stage_entered_at")
MAX_STAGES = 30


class MaxDays(fields.Float):
    """Days a deal may stay in a stage; fractions allowed (0.5 = 12 hours)."""

    def _validated(self, value):
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
            raise self.make_error("invalid")
        return super()._validated(value)


class CurrencyCode(fields.String):
    default_error_messages = {"currency": "Not an ISO 4217 currency code (e.g. RUB, USD, EUR)."}

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        if len(value) != 3 or not value.isalpha() or not value.isupper() or pycountry.currencies.get(alpha_3=value) is None:
            raise self.make_error("currency")
        return value


class StageInputSchema(StrictSchema):
    id = Id(load_default=None, allow_none=True, metadata={"description": "an existing stage (in PATCH); omit for a new one"})
    name = Text(100, required=True)
    kind = fields.String(required=True, validate=validate.OneOf(STAGE_KINDS))
    max_days = MaxDays(allow_none=True, load_default=None, validate=validate.Range(min=0, max=3650, min_inclusive=False))
    script_id = Id(allow_none=True, load_default=None)

    @validates_schema
    def _only_open_stages_are_timed(self, data, **kwargs):
        if data.get("kind") != "open" and data.get("max_days") is not None:
            raise ValidationError("Only open stages have a time limit.", "max_days")


def _check_stages(stages: list[dict]) -> None:
    if not stages:
        raise ValidationError("At least one stage is required.", "stages")
    if stages[0]["kind"] != "open":
        raise ValidationError("The first stage must be an open stage: deals start there.", "stages")
    kinds = {stage["kind"] for stage in stages}
    if not {"won", "lost"} <= kinds:
        raise ValidationError("A pipeline needs at least one won and one lost stage.", "stages")
    names = [stage["name"].lower() for stage in stages]
    if len(set(names)) != len(names):
        raise ValidationError("Stage names must be unique within a pipeline.", "stages")
    ids = [stage["id"] for stage in stages if stage.get("id")]
    if len(set(ids)) != len(ids):
        raise ValidationError("A stage id appears twice.", "stages")


class PipelineCreateSchema(StrictSchema):
    name = Text(100, required=True)
    stages = fields.List(fields.Nested(StageInputSchema), required=True, validate=validate.Length(max=MAX_STAGES))
    branch_id = Id(allow_none=True, load_default=None)

    @validates_schema(skip_on_field_errors=True)
    def _stages(self, data, **kwargs):
        _check_stages(data["stages"])


class PipelineUpdateSchema(UpdateSchema):
    name = Text(100)
    stages = fields.List(
        fields.Nested(StageInputSchema), validate=validate.Length(max=MAX_STAGES),
        metadata={"description": "the whole new list: stages with an id are kept and changed, new ones added, "
                                 "missing ones removed (refused while deals are in them)"},
    )

    @validates_schema(skip_on_field_errors=True)
    def _stages(self, data, **kwargs):
        if "stages" in data:
            _check_stages(data["stages"])


class ScriptRefSchema(Schema):
    id = fields.String()
    title = fields.String()
    body = fields.String()
    version = fields.Integer()


class StageSchema(Schema):
    id = fields.String()
    name = fields.String()
    kind = fields.String()
    position = fields.Integer()
    max_days = fields.Float(allow_none=True)
    script_id = fields.String(allow_none=True)


class PipelineSchema(Schema):
    id = fields.String()
    branch_id = fields.String()
    name = fields.String()
    stages = fields.List(fields.Nested(StageSchema))
    created_at = AwareDateTime()
    updated_at = AwareDateTime()
    version = fields.Integer()


class PipelineQuerySchema(PageQuerySchema):
    branch_id = Id()


class DealCreateSchema(StrictSchema):
    client_id = Id(required=True)
    pipeline_id = Id(required=True)
    title = Text(200, required=True)
    amount = Money(required=True)
    currency = CurrencyCode(required=True)
    owner_id = Id(allow_none=True, load_default=None)


class DealUpdateSchema(UpdateSchema):
    title = Text(200)
    amount = Money()
    currency = CurrencyCode()
    owner_id = Id()


class StageMoveSchema(StrictSchema):
    stage_id = Id(required=True)
    lost_reason = Text(500, allow_none=True, load_default=None)


class CurrentStageSchema(Schema):
    id = fields.String()
    name = fields.String()
    kind = fields.String()
    max_days = fields.Float(allow_none=True)
    script = fields.Nested(ScriptRefSchema, allow_none=True, metadata={"description": "the stage's current script"})


class DealSchema(Schema):
    id = fields.String()
    client_id = fields.String()
    pipeline_id = fields.String()
    stage_id = fields.String()
    stage = fields.Nested(CurrentStageSchema)
    status = fields.String()
    title = fields.String()
    amount = Money()
    currency = fields.String()
    owner_id = fields.String(allow_none=True)
    branch_id = fields.String()
    stage_entered_at = AwareDateTime()
    stage_due_at = AwareDateTime(allow_none=True)
    stuck = fields.Boolean()
    lost_reason = fields.String(allow_none=True)
    closed_at = AwareDateTime(allow_none=True)
    created_at = AwareDateTime()
    updated_at = AwareDateTime()
    version = fields.Integer()


class DealQuerySchema(PageQuerySchema):
    pipeline_id = Id()
    stage_id = Id()
    status = fields.String(validate=validate.OneOf(DEAL_STATUSES))
    owner_id = Id()
    client_id = Id()
    stuck = fields.Boolean()
    sort = fields.String(load_default="-created_at", validate=validate.OneOf(DEAL_SORTS))


class StageVisitSchema(Schema):
    id = fields.String()
    deal_id = fields.String()
    stage_id = fields.String()
    stage_name = fields.String()
    stage_kind = fields.String()
    from_stage_id = fields.String(allow_none=True)
    entered_at = AwareDateTime()
    exited_at = AwareDateTime(allow_none=True)
    time_spent_s = fields.Float(allow_none=True, metadata={"description": "seconds in the stage (null: still there)"})
    moved_by = fields.String(allow_none=True)
    lost_reason = fields.String(allow_none=True)


class ScriptCreateSchema(StrictSchema):
    title = Text(200, required=True)
    body = Text(50000, required=True)
    stage_id = Id(allow_none=True, load_default=None)
    branch_id = Id(allow_none=True, load_default=None)


class ScriptUpdateSchema(UpdateSchema):
    title = Text(200)
    body = Text(50000)
    stage_id = Id(allow_none=True)


class ScriptSchema(Schema):
    id = fields.String()
    branch_id = fields.String()
    title = fields.String()
    body = fields.String()
    stage_id = fields.String(allow_none=True)
    version = fields.Integer()
    created_at = AwareDateTime()
    updated_at = AwareDateTime()


class ScriptVersionSchema(Schema):
    script_id = fields.String()
    version = fields.Integer()
    title = fields.String()
    body = fields.String()
    stage_id = fields.String(allow_none=True)
    author_id = fields.String(allow_none=True)
    created_at = AwareDateTime()


class ScriptQuerySchema(PageQuerySchema):
    stage_id = Id()
    branch_id = Id()
