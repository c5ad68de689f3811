"""The reports service's contract: report queries and answers, plans, miss reasons and channel spend.

Months are ``YYYY-MM`` in UTC. Periods run from the first day of ``from`` to the last day of ``to``.
Query strings and bodies are both answered 422 ``validation_error`` naming the field when a value is wrong.
"""

from __future__ import annotations

import re

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from crm_common.contracts.deals import CurrencyCode
from crm_common.schemas import AwareDateTime, Id, Money, StrictSchema, Text

MISS_CATEGORIES = ("demand", "leads", "conversion", "capacity", "other")
MAX_PERIOD_MONTHS = 120
# a month from 1970-01 on, as the server reads it (the OpenAPI document states the same pattern)
MONTH_PATTERN = r"^(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])$"
MONTH = re.compile(MONTH_PATTERN)
BRANCH_RULE = "an existing branch (422); a head names only their own (403 or 422 as the message says)"


def month_index(month: str) -> int:
    year, number = month.split("-")
    return int(year) * 12 + int(number) - 1


class Month(fields.String):
    """A calendar month, ``YYYY-MM`` (UTC)."""

    default_error_messages = {"month": "Must be a month as YYYY-MM, e.g. 2026-11."}

    def __init__(self, **kwargs):
        metadata = dict(kwargs.pop("metadata", None) or {})
        metadata.setdefault("pattern", MONTH_PATTERN)
        metadata.setdefault("example", "2026-11")
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not MONTH.fullmatch(value):
            raise self.make_error("month")
        return value


class PeriodQuerySchema(StrictSchema):
    """``from`` and ``to`` (months, inclusive); both default to the current month."""

    from_ = Month(data_key="from", load_default=None, metadata={
        "description": "first month, YYYY-MM",
        "x-server-rule": f"not after to (default: this month), at most {MAX_PERIOD_MONTHS} months before it (422)"})
    to = Month(load_default=None, metadata={"description": "last month, YYYY-MM (inclusive)",
                                            "x-server-rule": "not before from (422)"})
    branch_id = Id(load_default=None, metadata={"description": "an admin narrows to one branch"})

    @validates_schema(skip_on_field_errors=True)
    def _ordered(self, data, **kwargs):
        start, end = data.get("from_"), data.get("to")
        if start and end:
            if start > end:
                raise ValidationError("Must not be before from.", "to")
            if month_index(end) - month_index(start) >= MAX_PERIOD_MONTHS:
                raise ValidationError(f"A period is at most {MAX_PERIOD_MONTHS} months.", "from")


class ClientBaseQuerySchema(PeriodQuerySchema):
    """``from`` defaults to eleven months before ``to``: a year of months."""


class FunnelQuerySchema(PeriodQuerySchema):
    pipeline_id = Id(required=True)
    owner_id = Id(load_default=None, metadata={"description": "deals of one owner only"})


class MonthQuerySchema(StrictSchema):
    month = Month(load_default=None, metadata={"description": "YYYY-MM; the current month by default"})
    branch_id = Id(load_default=None, metadata={"description": "an admin narrows to one branch"})


class PlanSetSchema(StrictSchema):
    month = Month(required=True)
    user_id = Id(load_default=None, metadata={"description": "a manager's plan",
                                              "x-server-rule": "a manager of the plan's branch (422)"})
    branch_id = Id(load_default=None, metadata={"description": "a branch's plan (a head's own by default)",
                                                "x-server-rule": BRANCH_RULE})
    amount = Money(required=True)
    currency = CurrencyCode(required=True)

    @validates_schema(skip_on_field_errors=True)
    def _one_target(self, data, **kwargs):
        if data.get("user_id") and data.get("branch_id"):
            raise ValidationError("Give user_id or branch_id, not both.", "user_id")


class MissReasonSchema(StrictSchema):
    reason = Text(2000, required=True)
    category = fields.String(required=True, validate=validate.OneOf(MISS_CATEGORIES))


class SpendSetSchema(StrictSchema):
    month = Month(required=True)
    amount = Money(required=True)
    currency = CurrencyCode(required=True)
    branch_id = Id(load_default=None, metadata={"description": "required for an admin; a head's own branch",
                                                "x-server-rule": "required for an admin; " + BRANCH_RULE})


SOURCE = Text(64)


# ---- answers


class MoneySchema(Schema):
    amount = fields.String()
    currency = fields.String()


class MissReasonOutSchema(Schema):
    category = fields.String()
    reason = fields.String()
    recorded_by = fields.String(allow_none=True)
    recorded_at = AwareDateTime()


class PlanSchema(Schema):
    id = fields.String()
    month = fields.String()
    branch_id = fields.String()
    user_id = fields.String(allow_none=True)
    amount = fields.String()
    currency = fields.String()
    miss_reason = fields.Nested(MissReasonOutSchema, allow_none=True)
    created_at = AwareDateTime()
    updated_at = AwareDateTime()


class SpendSchema(Schema):
    id = fields.String()
    branch_id = fields.String()
    source = fields.String()
    month = fields.String()
    amount = fields.String()
    currency = fields.String()
    updated_at = AwareDateTime()


class ClientBaseMonthSchema(Schema):
    month = fields.String()
    total = fields.Integer(metadata={"description": "clients in the base (not archived) at the month's end"})
    new = fields.Integer()
    archived = fields.Integer(metadata={"description": "clients archived in the month and not restored since"})
    net = fields.Integer(metadata={"description": "new - archived"})


class ClientBaseSchema(Schema):
    branch_id = fields.String(allow_none=True)
    from_ = fields.String(data_key="from")
    to = fields.String()
    months = fields.List(fields.Nested(ClientBaseMonthSchema))
    by_source = fields.List(fields.Dict(), metadata={"description": "[{source, new}]: new clients of the period"})
    by_tag = fields.List(fields.Dict(), metadata={"description": "[{tag, total}]: clients in the base at the end"})


class FunnelStageSchema(Schema):
    stage_id = fields.String()
    name = fields.String()
    kind = fields.String()
    position = fields.Integer(allow_none=True)
    removed = fields.Boolean()
    entered = fields.Integer(metadata={"description": "stage entries in the period"})
    moved_on = fields.Integer(metadata={"description": "of those, went on to a later open or won stage"})
    lost = fields.Integer(metadata={"description": "of those, lost while in the stage"})
    conversion = fields.Float(allow_none=True, metadata={"description": "moved_on / entered"})
    median_days = fields.Float(allow_none=True, metadata={"description": "days in the stage, of the entries that left it"})
    mean_days = fields.Float(allow_none=True)


class FunnelSchema(Schema):
    pipeline_id = fields.String()
    name = fields.String(allow_none=True)
    branch_id = fields.String()
    owner_id = fields.String(allow_none=True)
    from_ = fields.String(data_key="from")
    to = fields.String()
    stages = fields.List(fields.Nested(FunnelStageSchema))


class CurrencyFactSchema(Schema):
    currency = fields.String()
    fact = fields.String()
    deals_won = fields.Integer()


class PlanLineSchema(Schema):
    user_id = fields.String(metadata={"description": "managers only"})
    branch_id = fields.String()
    name = fields.String(allow_none=True)
    plan_id = fields.String(allow_none=True)
    plan = fields.String(allow_none=True, metadata={"description": "the plan's amount, null without a plan"})
    currency = fields.String(allow_none=True)
    fact = fields.String(metadata={"description": "amounts of deals won in the month, in the plan's currency"})
    deals_won = fields.Integer()
    fulfilment = fields.Float(allow_none=True, metadata={"description": "fact / plan"})
    miss_reason = fields.Nested(MissReasonOutSchema, allow_none=True)
    other_currencies = fields.List(fields.Nested(CurrencyFactSchema),
                                   metadata={"description": "deals won in other currencies, never summed in"})


class PlanReportSchema(Schema):
    branch_id = fields.String(allow_none=True, metadata={"description": "the branch narrowed to; null: every branch"})
    month = fields.String()
    branches = fields.List(fields.Nested(PlanLineSchema))
    managers = fields.List(fields.Nested(PlanLineSchema))


class ChannelLineSchema(Schema):
    source = fields.String(allow_none=True, metadata={"description": "null: clients and deals with no source"})
    touchpoints = fields.Integer()
    new_clients = fields.Integer()
    deals_won = fields.Integer()
    currency = fields.String(allow_none=True)
    revenue = fields.String()
    spend = fields.String()
    roi = fields.Float(allow_none=True, metadata={"description": "(revenue - spend) / spend"})
    cost_per_client = fields.String(allow_none=True, metadata={"description": "spend / new_clients"})
    other_currencies = fields.List(fields.Dict())


class ChannelsSchema(Schema):
    branch_id = fields.String(allow_none=True, metadata={"description": "the branch narrowed to; null: every branch"})
    from_ = fields.String(data_key="from")
    to = fields.String()
    channels = fields.List(fields.Nested(ChannelLineSchema))


class ManagerLineSchema(Schema):
    user_id = fields.String()
    name = fields.String(allow_none=True)
    branch_id = fields.String(allow_none=True)
    role = fields.String(allow_none=True)
    calls = fields.Integer()
    meetings = fields.Integer()
    interactions = fields.Integer()
    tasks_done_on_time = fields.Integer()
    tasks_overdue = fields.Integer()
    penalties = fields.Integer()
    penalty_amounts = fields.List(fields.Nested(MoneySchema))
    deals_moved = fields.Integer()
    deals_won = fields.Integer()
    revenue = fields.List(fields.Nested(MoneySchema))


class ManagersSchema(Schema):
    branch_id = fields.String(allow_none=True, metadata={"description": "the branch narrowed to; null: every branch"})
    month = fields.String()
    managers = fields.List(fields.Nested(ManagerLineSchema))


class ScriptLineSchema(Schema):
    script_id = fields.String()
    title = fields.String(allow_none=True)
    uses = fields.Integer()
    clients = fields.Integer()
    deals_won = fields.Integer(metadata={"description": "deals won in the period by clients after a use"})


class ScriptsSchema(Schema):
    branch_id = fields.String(allow_none=True, metadata={"description": "the branch narrowed to; null: every branch"})
    from_ = fields.String(data_key="from")
    to = fields.String()
    scripts = fields.List(fields.Nested(ScriptLineSchema))
