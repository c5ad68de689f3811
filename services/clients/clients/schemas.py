"""Schemas of the clients service's RPC inputs and outputs (the contract lives in crm_common)."""

from crm_common.contracts.clients import (
    ClientCreateSchema,
    ClientMergeSchema,
    ClientQuerySchema,
    ClientSchema,
    ClientUpdateSchema,
    InteractionCreateSchema,
    InteractionSchema,
    TimelineEntrySchema,
    TimelineQuerySchema,
    TouchpointCreateSchema,
)
from crm_common.contracts.imports import ImportCreateSchema, ImportErrorsQuerySchema, ImportQuerySchema, ImportSchema

client_create = ClientCreateSchema()
client_merge = ClientMergeSchema()
client_update = ClientUpdateSchema()
client_query = ClientQuerySchema()
client_out = ClientSchema()
interaction_create = InteractionCreateSchema()
interaction_out = InteractionSchema()
touchpoint_create = TouchpointCreateSchema()
timeline_query = TimelineQuerySchema()
timeline_out = TimelineEntrySchema()
import_create = ImportCreateSchema()
import_query = ImportQuerySchema()
import_errors_query = ImportErrorsQuerySchema()
import_out = ImportSchema()
