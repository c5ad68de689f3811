"""Event contracts: every event on the bus, its name and its payload schema.

Names are ``<entity>_<past participle>``; every payload carries ``event_id`` (for idempotent
handlers), ``occurred_at`` and ``branch_id``. Only the owning service emits an event, always through
its outbox (``self.db.emit``), which validates the payload against the schema registered here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from marshmallow import RAISE, Schema, fields

from crm_common.contracts.clients import ClientSchema, InteractionSchema
from crm_common.contracts.deals import DealSchema, PipelineSchema, ScriptSchema
from crm_common.contracts.identity import BranchSchema, UserSchema
from crm_common.contracts.integrations import CallSchema, RecordingSchema
from crm_common.contracts.segments import CampaignSchema
from crm_common.contracts.tasks import ComplaintSchema, PenaltySchema, TaskSchema
from crm_common.contracts.webhooks import WebhookRefSchema
from crm_common.schemas import AwareDateTime, iso, new_id


class EventSchema(Schema):
    class Meta:
        unknown = RAISE

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


class ClientMerged(EventSchema):
    """``client`` is the client that was kept, as it is after the merge; ``merged_id`` the one merged into it,
    now a redirect. Services holding records of ``merged_id`` re-point them to ``client.id`` (idempotently:
    the event may come again, e.g. for a deal made for the merged client just before the merge)."""

    client = fields.Nested(ClientSchema, required=True)
    merged_id = fields.String(required=True)


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


class CallMissed(EventSchema):
    """An incoming call nobody answered: the tasks service gives the client's owner a call-back task."""

    call = fields.Nested(CallSchema, required=True)
    client_id = fields.String(required=True)
    owner_id = fields.String(allow_none=True)


class CallRecorded(EventSchema):
    """A call's recording was stored (its metadata only: recordings never travel over the bus)."""

    recording = fields.Nested(RecordingSchema, required=True)
    client_id = fields.String(required=True)


class CampaignCreated(EventSchema):
    """A campaign planned for a segment; ``campaign.audience`` is the segment's size in its branch then."""

    campaign = fields.Nested(CampaignSchema, required=True)


class CampaignUpdated(CampaignCreated):
    changed = fields.List(fields.String(), required=True)


class UserCreated(EventSchema):
    user = fields.Nested(UserSchema, required=True)


class UserUpdated(EventSchema):
    user = fields.Nested(UserSchema, required=True)
    changed = fields.List(fields.String(), required=True)


class BranchCreated(EventSchema):
    branch = fields.Nested(BranchSchema, required=True)


class StageRef(Schema):
    class Meta:
        unknown = RAISE

    id = fields.String(required=True)
    name = fields.String(required=True)
    kind = fields.String(required=True)
    # the stage's place in its pipeline at the moment of the event: reports judge "moved on" by it
    position = fields.Integer(allow_none=True)


def _deal_snapshot():
    return fields.Nested(DealSchema(exclude=("stage",)), required=True)


class DealEvent(EventSchema):
    deal = _deal_snapshot()


class DealCreated(DealEvent):
    stage = fields.Nested(StageRef)


class DealUpdated(DealEvent):
    changed = fields.List(fields.String(), required=True)


class DealStageChanged(DealEvent):
    from_stage = fields.Nested(StageRef, required=True)
    to_stage = fields.Nested(StageRef, required=True)
    time_in_stage_s = fields.Float(required=True)
    # the number of the stage visit this move starts in the deal's history (its first stage is 1)
    seq = fields.Integer(required=True)


class DealWon(DealEvent):
    stage = fields.Nested(StageRef, required=True)


class DealLost(DealEvent):
    stage = fields.Nested(StageRef, required=True)
    reason = fields.String(required=True)


class DealReopened(DealEvent):
    from_status = fields.String(required=True)
    stage = fields.Nested(StageRef, required=True)


class DealStuck(DealEvent):
    stage = fields.Nested(StageRef, required=True)
    max_days = fields.Float(required=True)
    days_in_stage = fields.Float(required=True)


class PipelineEvent(EventSchema):
    pipeline = fields.Nested(PipelineSchema, required=True)


class ScriptEvent(EventSchema):
    script = fields.Nested(ScriptSchema, required=True)


class BackupEvent(EventSchema):
    backup_id = fields.String(required=True)
    trigger = fields.String(required=True)  # manual | schedule


class BackupStarted(BackupEvent):
    pass


class BackupCompleted(BackupEvent):
    size_bytes = fields.Integer(required=True)
    sha256 = fields.String(required=True)
    services = fields.List(fields.String(), required=True)
    copies = fields.List(fields.Dict(), required=True)  # [{target, status}]


class BackupFailed(BackupEvent):
    # capture (the backup itself), copy (one off-site target) or verify (a restore test that did not match)
    stage = fields.String(required=True)
    error = fields.String(required=True)
    target = fields.String(load_default=None, allow_none=True)


class BackupVerified(BackupEvent):
    verified_at = AwareDateTime(required=True)
    tables = fields.Integer(required=True)  # how many tables were compared
class TaskEvent(EventSchema):
    task = fields.Nested(TaskSchema, required=True)


class TaskUpdated(TaskEvent):
    changed = fields.List(fields.String(), required=True)


class TaskCompleted(TaskEvent):
    on_time = fields.Boolean(required=True)


class TaskCancelled(TaskEvent):
    reason = fields.String(required=True)


class PenaltyEvent(EventSchema):
    penalty = fields.Nested(PenaltySchema, required=True)


class PenaltyWaived(PenaltyEvent):
    reason = fields.String(required=True)


class ComplaintEvent(EventSchema):
    complaint = fields.Nested(ComplaintSchema, required=True)


class WebhookFailed(EventSchema):
    """A webhook's delivery failed for the whole retry period: its deliveries are held until it is re-activated."""

    webhook = fields.Nested(WebhookRefSchema, required=True)
    delivery_id = fields.String(required=True)
    attempts = fields.Integer(required=True)
    error = fields.String(required=True)


class BulkReadDetected(EventSchema):
    """A user read more than ``threshold`` distinct clients within the last hour (``count``, the gateway's audit);
    raised at most once an hour per user. ``user``: ``{id, name, role}``."""

    user = fields.Dict(required=True)
    count = fields.Integer(required=True)
    threshold = fields.Integer(required=True)
    window_s = fields.Integer(required=True)


# Every event, once, under the service that owns it (a name from crm_common/registry.py).
EVENTS_BY_SOURCE: dict[str, dict[str, type[EventSchema]]] = {
    "clients": {
        "client_created": ClientCreated,
        "client_updated": ClientUpdated,
        "client_archived": ClientArchived,
        "client_restored": ClientRestored,
        "client_merged": ClientMerged,
        "interaction_logged": InteractionLogged,
        "touchpoint_recorded": TouchpointRecorded,
        "call_missed": CallMissed,
        "campaign_created": CampaignCreated,
        "campaign_updated": CampaignUpdated,
    },
    "deals": {
        "deal_created": DealCreated,
        "deal_updated": DealUpdated,
        "deal_stage_changed": DealStageChanged,
        "deal_won": DealWon,
        "deal_lost": DealLost,
        "deal_reopened": DealReopened,
        "deal_stuck": DealStuck,
        "pipeline_created": PipelineEvent,
        "pipeline_updated": PipelineEvent,
        "script_created": ScriptEvent,
        "script_updated": ScriptEvent,
    },
    "tasks": {
        "task_created": TaskEvent,
        "task_updated": TaskUpdated,
        "task_completed": TaskCompleted,
        "task_cancelled": TaskCancelled,
        "task_overdue": TaskEvent,
        "penalty_recorded": PenaltyEvent,
        "penalty_waived": PenaltyWaived,
        "complaint_created": ComplaintEvent,
        "complaint_resolved": ComplaintEvent,
    },
    "backup": {
        "backup_started": BackupStarted,
        "backup_completed": BackupCompleted,
        "backup_failed": BackupFailed,
        "backup_verified": BackupVerified,
    },
    "webhooks": {
        "webhook_failed": WebhookFailed,
    },
    "gateway": {
        "user_created": UserCreated,
        "user_updated": UserUpdated,
        "branch_created": BranchCreated,
        "call_recorded": CallRecorded,
        "bulk_read_detected": BulkReadDetected,
    },
}

EVENTS: dict[str, type[EventSchema]] = {
    name: schema for events in EVENTS_BY_SOURCE.values() for name, schema in events.items()
}
EVENT_SOURCES: dict[str, str] = {name: source for source, events in EVENTS_BY_SOURCE.items() for name in events}


def validate_event(event_type: str, payload: dict, full: bool = True) -> dict:
    """Complete ``event_id``/``occurred_at`` and check the payload against its contract.

    Returns the JSON-ready payload. An unknown type or a payload that breaks its contract is a
    programming error and raises ``ValueError`` before anything is written. ``full=False`` checks
    only the top-level fields: for the second and later events of a batch built by the same code
    from the same schema dumps as a first one that was checked in full.
    """
    schema = _schema(event_type)
    payload = dict(payload)
    payload.setdefault("event_id", new_id())
    payload.setdefault("occurred_at", datetime.now(UTC))
    jsonable = jsonable_copy(payload)
    if full:
        errors = schema.validate(jsonable)
    else:
        missing = [name for name, field in schema.fields.items() if field.required and name not in jsonable]
        unknown = [name for name in jsonable if name not in schema.fields]
        errors = {**{m: ["Missing."] for m in missing}, **{u: ["Unknown field."] for u in unknown}}
    if errors:
        raise ValueError(f"{event_type} payload breaks its contract: {errors}")
    return jsonable


_SCHEMAS: dict[str, EventSchema] = {}


def _schema(event_type: str) -> EventSchema:
    """One schema instance per event type: building one costs more than validating a payload."""
    if event_type not in _SCHEMAS:
        schema_cls = EVENTS.get(event_type)
        if schema_cls is None:
            raise ValueError(f"unknown event type {event_type!r}")
        _SCHEMAS[event_type] = schema_cls()
    return _SCHEMAS[event_type]


_SCALARS = (str, int, float, bool)


def jsonable_copy(value):
    """What ``json.loads(json.dumps(value, default=_to_json))`` gives (times as ISO text, decimals as text,
    tuples as lists), built without the text in between: an import checks tens of thousands of payloads. Anything
    unusual (a subclass of a scalar, a key that is not text) takes the round trip itself."""
    kind = type(value)
    if value is None or kind in _SCALARS:
        return value
    if kind is dict:
        copy = {}
        for key, item in value.items():
            if type(key) is not str:
                break
            copy[key] = jsonable_copy(item)
        else:
            return copy
    elif kind is list or kind is tuple:
        return [jsonable_copy(item) for item in value]
    elif kind is datetime or kind is Decimal:
        return _to_json(value)
    return json.loads(json.dumps(value, default=_to_json))


def _to_json(value):
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
