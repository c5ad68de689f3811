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
    QueryBoolean,
    StrictSchema,
    Text,
    UpdateSchema,
)

STAGE_KINDS = ("open", "won", "lost")
DEAL_STATUSES = ("open", "won", "lost")
DEAL_SORTS = ("-created_at", "created_at", "-updated_at", "stage_entered_at")
MAX_STAGES = 30
CURRENCIES = tuple(sorted(currency.alpha_3 for currency in pycountry.currencies))
STAGES_RULE = ("the first stage is open; at least one won and one lost stage; names unique (case-insensitive); "
               "max_days only on open stages; an id names a stage of this pipeline, once (422 otherwise)")
SCRIPT_RULE = "a sales script of the pipeline's branch (422)"


class MaxDays(fields.Float):
    """Days a deal may stay in a stage; fractions allowed (0.5 = 12 hours)."""

    def _validated(self, value):
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
            raise self.make_error("invalid")
        return super()._validated(value)


class CurrencyCode(fields.String):
    """An ISO 4217 code, upper case: the document lists every one (``enum``)."""

    default_error_messages = {"currency": "Not an ISO 4217 currency code (e.g. RUB, USD, EUR)."}

    def __init__(self, **kwargs):
        metadata = {"enum": list(CURRENCIES), **(kwargs.pop("metadata", None) or {})}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        if value not in _CURRENCY_SET:
            raise self.make_error("currency")
        return value


_CURRENCY_SET = frozenset(CURRENCIES)


class StageInputSchema(StrictSchema):
    id = Id(load_default=None, allow_none=True, metadata={
        "description": "an existing stage (in PATCH); omit for a new one", "x-server-rule": STAGES_RULE})
    name = Text(100, required=True)
    kind = fields.String(required=True, validate=validate.OneOf(STAGE_KINDS))
    max_days = MaxDays(allow_none=True, load_default=None, validate=validate.Range(min=0, max=3650, min_inclusive=False),
                       metadata={"x-server-rule": "only on open stages (422)"})
    script_id = Id(allow_none=True, load_default=None, metadata={"x-server-rule": SCRIPT_RULE})

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
    stages = fields.List(fields.Nested(StageInputSchema), required=True, validate=validate.Length(max=MAX_STAGES),
                         metadata={"x-server-rule": STAGES_RULE})
    branch_id = Id(allow_none=True, load_default=None, metadata={
        "x-server-rule": "an existing branch (422); only an admin names another branch (403)"})

    @validates_schema(skip_on_field_errors=True)
    def _stages(self, data, **kwargs):
        _check_stages(data["stages"])


class PipelineUpdateSchema(UpdateSchema):
    name = Text(100)
    stages = fields.List(
        fields.Nested(StageInputSchema), validate=validate.Length(max=MAX_STAGES),
        metadata={"description": "the whole new list: stages with an id are kept and changed, new ones added, "
                                 "missing ones removed (refused while deals are in them)", "x-server-rule": STAGES_RULE},
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


OWNER_RULE = "an active user of the deal's branch; only a head or an admin names someone else (403 for a manager)"


class DealCreateSchema(StrictSchema):
    client_id = Id(required=True, metadata={"x-server-rule": "a client you can see, not archived (422)"})
    pipeline_id = Id(required=True, metadata={"x-server-rule": "a pipeline of the client's branch (422)"})
    title = Text(200, required=True)
    amount = Money(required=True)
    currency = CurrencyCode(required=True)
    owner_id = Id(allow_none=True, load_default=None, metadata={"x-server-rule": OWNER_RULE})


class DealUpdateSchema(UpdateSchema):
    title = Text(200)
    amount = Money()
    currency = CurrencyCode()
    owner_id = Id(metadata={"x-server-rule": OWNER_RULE})


class StageMoveSchema(StrictSchema):
    stage_id = Id(required=True, metadata={"x-server-rule": "a current stage of the deal's pipeline (422)"})
    lost_reason = Text(500, allow_none=True, load_default=None, metadata={
        "x-server-rule": "required when moving to a lost stage (422)"})


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
    stuck = QueryBoolean()
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


STAGE_RULE = "a stage of a pipeline of the script's branch (422)"


class ScriptCreateSchema(StrictSchema):
    title = Text(200, required=True)
    body = Text(50000, required=True)
    stage_id = Id(allow_none=True, load_default=None, metadata={"x-server-rule": STAGE_RULE})
    branch_id = Id(allow_none=True, load_default=None, metadata={
        "x-server-rule": "an existing branch (422); only an admin names another branch (403)"})


class ScriptUpdateSchema(UpdateSchema):
    title = Text(200)
    body = Text(50000)
    stage_id = Id(allow_none=True, metadata={"x-server-rule": STAGE_RULE})


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
