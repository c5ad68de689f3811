"""Event contracts: every event on the bus, its name and its payload schema.

Names are ``<entity>_<past participle>``; every payload carries ``event_id`` (for idempotent
handlers), ``occurred_at`` and ``branch_id``. Only the owning service emits an event, always through
its outbox (``self.db.emit``), which validates the payload against the schema registered here.
"""

from __future__ import annotations

from datetime import datetime, timezone

from marshmallow import RAISE, Schema, fields

from crm_common.contracts.clients import ClientSchema, InteractionSchema
from crm_common.contracts.identity import BranchSchema, UserSchema
from crm_common.schemas import AwareDateTime, new_id


class EventSchema(Schema):
    class Meta:
        unknown = RAISE
        ordered = True

    event_id = fields.String(required=True)
    occurred_at = AwareDateTime(required=True)
    branch_id = fields.String(required=True, allow_none=True)
    actor_id = fields.String(load_default=None, allow_none=True)


class ClientCreated(EventSchema):
    client = fields.Nested(ClientSchema, required=True)


class ClientUpdated(EventSchema):
    client = fields.Nested(ClientSchema, required=True)
    changed = fields.List(fields.String(), required=True)


class ClientArchived(EventSchema):
    client = fields.Nested(ClientSchema, required=True)


class ClientRestored(EventSchema):
    client = fields.Nested(ClientSchema, required=True)


class InteractionLogged(EventSchema):
    client_id = fields.String(required=True)
    owner_id = fields.String(allow_none=True)
    interaction = fields.Nested(InteractionSchema, required=True)


class TouchpointRecorded(EventSchema):
    client_id = fields.String(required=True)
    touchpoint_id = fields.String(required=True)
    channel = fields.String(required=True)
    source = fields.String(allow_none=True)
    created = fields.Boolean(required=True)
    owner_id = fields.String(allow_none=True)
    utm = fields.Dict()


class UserCreated(EventSchema):
    user = fields.Nested(UserSchema, required=True)


class UserUpdated(EventSchema):
    user = fields.Nested(UserSchema, required=True)
    changed = fields.List(fields.String(), required=True)


class BranchCreated(EventSchema):
    branch = fields.Nested(BranchSchema, required=True)


EVENTS: dict[str, type[EventSchema]] = {
    "client_created": ClientCreated,
    "client_updated": ClientUpdated,
    "client_archived": ClientArchived,
    "client_restored": ClientRestored,
    "interaction_logged": InteractionLogged,
    "touchpoint_recorded": TouchpointRecorded,
    "user_created": UserCreated,
    "user_updated": UserUpdated,
    "branch_created": BranchCreated,
}

EVENT_SOURCES: dict[str, str] = {
    "client_created": "clients",
    "client_updated": "clients",
    "client_archived": "clients",
    "client_restored": "clients",
    "interaction_logged": "clients",
    "touchpoint_recorded": "clients",
    "user_created": "gateway",
    "user_updated": "gateway",
    "branch_created": "gateway",
}


def register(source: str, event_type: str, schema: type[EventSchema]) -> None:
    EVENTS[event_type] = schema
    EVENT_SOURCES[event_type] = source


def validate_event(event_type: str, payload: dict) -> dict:
    """Complete ``event_id``/``occurred_at`` and check the payload against its contract.

    Returns the JSON-ready payload. An unknown type or a payload that breaks its contract is a
    programming error and raises ``ValueError`` before anything is written.
    """
    schema_cls = EVENTS.get(event_type)
    if schema_cls is None:
        raise ValueError(f"unknown event type {event_type!r}")
    payload = dict(payload)
    payload.setdefault("event_id", new_id())
    payload.setdefault("occurred_at", datetime.now(timezone.utc))
    schema = schema_cls()
    dumped = schema.dump(payload)
    errors = schema.validate(dumped)
    if errors:
        raise ValueError(f"{event_type} payload breaks its contract: {errors}")
    return dumped
