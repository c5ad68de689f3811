"""The event contracts: every event on the bus has a realistic payload that validates, refuses unknown
fields, is named <entity>_<past participle>, is sent by one service and is handled under its own name."""

import importlib
import inspect
import json
import re
import uuid

import pytest
from marshmallow import Schema, fields
from marshmallow import ValidationError as MarshmallowError
from nameko.events import EventHandler

from crm_common.events import EVENT_SOURCES, EVENTS, EventSchema, validate_event
from crm_common.registry import REGISTRY
from crm_common.schemas import AwareDateTime, Money

EVENT_NAME = re.compile(
    r"^[a-z]+(_[a-z]+)*_(created|updated|archived|restored|logged|recorded|changed|won|lost|reopened|stuck|overdue|[a-z]+ed)$"
)
SERVICES = tuple(spec.name for spec in REGISTRY)

# realistic values for fields recognised by name; anything else is built from the field's type
BY_NAME = {
    "name": "Иван Петров",
    "title": "Поставка оборудования",
    "email": "ivan.petrov@example.ru",
    "phones": ["+79161234567"],
    "emails": ["ivan.petrov@example.ru"],
    "tags": ["vip", "опт"],
    "currency": "RUB",
    "code": "MSK",
    "role": "manager",
    "channel": "web_form",
    "source": "yandex",
    "reason": "Выбрали конкурента",
    "lost_reason": None,
    "status": "open",
    "from_status": "won",
    "kind": "open",
    "type": "call",
    "direction": "in",
    "text": "Просил перезвонить",
    "changed": ["name", "phones"],
    "utm": {"utm_source": "yandex", "utm_campaign": "spring"},
    "custom_fields": {"inn": "7701234567"},
}
CLIENT_KIND = "person"


def sample_value(name: str, field: fields.Field):
    if isinstance(field, fields.Nested):
        nested = field.schema
        value = sample_payload(nested)
        return [value] if field.many else value
    if name in BY_NAME:
        return BY_NAME[name]
    if name == "id" or name.endswith("_id"):
        return str(uuid.uuid4())
    if isinstance(field, AwareDateTime):
        return "2026-11-26T10:00:00Z"
    if isinstance(field, Money):
        return "1250.50"
    if isinstance(field, fields.Boolean):
        return False
    if isinstance(field, fields.Integer):
        return 3
    if isinstance(field, fields.Float):
        return 2.5
    if isinstance(field, fields.List):
        return [sample_value(name, field.inner)]
    if isinstance(field, fields.Dict):
        return {"note": "значение"}
    if isinstance(field, fields.String):
        return "Пример"
    raise AssertionError(f"no sample for {name}: {type(field).__name__}")


def sample_payload(schema: Schema) -> dict:
    # keyed as on the wire: a field's data_key ("from") when it has one
    payload = {field.data_key or name: sample_value(field.data_key or name, field) for name, field in schema.fields.items()}
    if "kind" in payload and "phones" in payload:
        payload["kind"] = CLIENT_KIND
    return payload


def sample_event(event_type: str) -> dict:
    payload = sample_payload(EVENTS[event_type]())
    payload.pop("event_id")
    payload.pop("occurred_at")
    return payload


def nested_names(schema: Schema) -> list[str]:
    return [name for name, field in schema.fields.items() if isinstance(field, fields.Nested) and not field.many]


ALL_EVENTS = sorted(EVENTS)


@pytest.mark.parametrize("event_type", ALL_EVENTS)
def test_a_realistic_payload_of_every_event_validates(event_type):
    payload = validate_event(event_type, sample_event(event_type))

    assert uuid.UUID(payload["event_id"])
    assert payload["occurred_at"].endswith("Z")
    assert EVENTS[event_type]().load(payload)["branch_id"] == payload["branch_id"]


@pytest.mark.parametrize("event_type", ALL_EVENTS)
def test_a_validated_payload_is_plain_json(event_type):
    payload = validate_event(event_type, sample_event(event_type))

    assert json.loads(json.dumps(payload)) == payload


@pytest.mark.parametrize("event_type", ALL_EVENTS)
def test_every_event_carries_an_event_id_the_time_and_the_branch(event_type):
    schema = EVENTS[event_type]()

    assert issubclass(EVENTS[event_type], EventSchema)
    assert {"event_id", "occurred_at", "branch_id"} <= set(schema.fields)
    assert all(schema.fields[name].required for name in ("event_id", "occurred_at", "branch_id"))


@pytest.mark.parametrize("event_type", ALL_EVENTS)
def test_an_event_contract_refuses_an_unknown_field(event_type):
    payload = validate_event(event_type, sample_event(event_type))

    with pytest.raises(MarshmallowError) as error:
        EVENTS[event_type]().load({**payload, "surprise": "x"})

    assert "surprise" in error.value.messages


@pytest.mark.parametrize("event_type", ALL_EVENTS)
def test_emitting_an_event_with_an_unknown_field_is_refused(event_type):
    with pytest.raises(ValueError):
        validate_event(event_type, {**sample_event(event_type), "surprise": "x"})


NESTED = [(event_type, name) for event_type in ALL_EVENTS for name in nested_names(EVENTS[event_type]())]


@pytest.mark.parametrize(("event_type", "nested"), NESTED)
def test_an_event_contract_refuses_an_unknown_field_inside_a_nested_object(event_type, nested):
    payload = validate_event(event_type, sample_event(event_type))
    payload[nested] = {**payload[nested], "surprise": "x"}

    with pytest.raises(MarshmallowError):
        EVENTS[event_type]().load(payload)


@pytest.mark.parametrize("event_type", ALL_EVENTS)
def test_an_event_without_its_required_fields_is_refused(event_type):
    schema = EVENTS[event_type]()
    required = [name for name, field in schema.fields.items() if field.required and name not in ("event_id", "occurred_at")]
    for name in required:
        payload = sample_event(event_type)
        payload.pop(name)
        with pytest.raises(ValueError, match="breaks its contract"):
            validate_event(event_type, payload)


@pytest.mark.parametrize("event_type", ALL_EVENTS)
def test_event_names_are_an_entity_and_a_past_participle(event_type):
    assert EVENT_NAME.match(event_type)


@pytest.mark.parametrize("event_type", ALL_EVENTS)
def test_every_event_is_sent_by_exactly_one_known_service(event_type):
    assert EVENT_SOURCES.get(event_type) in SERVICES


def test_no_service_is_named_as_the_source_of_an_event_that_has_no_contract():
    assert set(EVENT_SOURCES) == set(EVENTS)


def event_handlers(service_cls):
    for name, method in inspect.getmembers(service_cls, inspect.isfunction):
        for entrypoint in getattr(method, "nameko_entrypoints", ()):
            if isinstance(entrypoint, EventHandler):
                yield name, entrypoint


# every registered process's nameko class, so a new service's handlers are checked without editing this file
SERVICE_CLASSES = tuple(
    getattr(importlib.import_module(spec.entry.split(":")[0]), spec.entry.split(":")[1]) for spec in REGISTRY
)
HANDLERS = [(service.name, name, ep) for service in SERVICE_CLASSES for name, ep in event_handlers(service)]


@pytest.mark.parametrize(
    ("service", "method", "entrypoint"), HANDLERS, ids=[f"{service}.{method}" for service, method, _ in HANDLERS]
)
def test_every_event_handler_listens_to_a_contracted_event_from_its_sender_under_its_name(service, method, entrypoint):
    assert entrypoint.event_type in EVENTS
    assert entrypoint.source_service == EVENT_SOURCES[entrypoint.event_type]
    assert entrypoint.source_service != service
    assert method == f"handle_{entrypoint.event_type}"
