"""Schemas of the deals service's RPC inputs and outputs (the contract lives in crm_common.contracts.deals).

Inputs are loaded with the schema classes (``load_or_raise`` keeps one instance per class); outputs are
dumped with the instances below.
"""

from crm_common.contracts.deals import (
    DealCreateSchema,
    DealQuerySchema,
    DealSchema,
    DealUpdateSchema,
    PipelineCreateSchema,
    PipelineQuerySchema,
    PipelineSchema,
    PipelineUpdateSchema,
    ScriptCreateSchema,
    ScriptQuerySchema,
    ScriptSchema,
    ScriptUpdateSchema,
    ScriptVersionSchema,
    StageMoveSchema,
    StageVisitSchema,
)

__all__ = [
    "DealCreateSchema", "DealQuerySchema", "DealUpdateSchema", "PipelineCreateSchema", "PipelineQuerySchema",
    "PipelineUpdateSchema", "ScriptCreateSchema", "ScriptQuerySchema", "ScriptUpdateSchema", "StageMoveSchema",
    "deal_out", "pipeline_out", "script_out", "script_version_out", "visit_out",
]

pipeline_out = PipelineSchema()
deal_out = DealSchema()
visit_out = StageVisitSchema()
script_out = ScriptSchema()
script_version_out = ScriptVersionSchema()
