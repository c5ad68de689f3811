"""Schemas of the clients service's RPC inputs and outputs (the contract lives in crm_common)."""

from crm_common.contracts.clients import (
    ClientCreateSchema,
    ClientQuerySchema,
    ClientSchema,
    ClientUpdateSchema,
    InteractionCreateSchema,
    InteractionSchema,
    TimelineEntrySchema,
    TimelineQuerySchema,
    TouchpointCreateSchema,
)

client_create = ClientCreateSchema()
client_update = ClientUpdateSchema()
client_query = ClientQuerySchema()
client_out = ClientSchema()
interaction_create = InteractionCreateSchema()
interaction_out = InteractionSchema()
touchpoint_create = TouchpointCreateSchema()
timeline_query = TimelineQuerySchema()
timeline_out = TimelineEntrySchema()
