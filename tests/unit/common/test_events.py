"""validate_event: every event is completed with its id and time and checked against its contract."""

import enum
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from crm_common.events import EVENT_SOURCES, EVENTS, _to_json, jsonable_copy, validate_event
from crm_common.registry import REGISTRY

BRANCH = str(uuid.uuid4())


def branch_created(**extra):
    branch = {"id": BRANCH, "name": "Москва", "code": "MSK", "created_at": "2026-11-26T10:00:00Z"}
    return {"branch_id": BRANCH, "branch": branch, **extra}


def test_a_validated_event_gets_an_event_id_and_the_time_it_occurred():
    before = datetime.now(UTC)

    payload = validate_event("branch_created", branch_created())

    assert uuid.UUID(payload["event_id"])
    assert payload["occurred_at"].endswith("Z")
    occurred = datetime.fromisoformat(payload["occurred_at"].replace("Z", "+00:00"))
    assert before <= occurred <= datetime.now(UTC)


def test_two_events_get_different_ids():
    assert (
        validate_event("branch_created", branch_created())["event_id"]
        != validate_event("branch_created", branch_created())["event_id"]
    )


def test_an_event_id_and_time_given_by_the_sender_are_kept():
    payload = validate_event(
        "branch_created",
        branch_created(event_id="evt-1", occurred_at=datetime(2026, 11, 26, 13, 0, tzinfo=UTC)),
    )

    assert payload["event_id"] == "evt-1"
    assert payload["occurred_at"] == "2026-11-26T13:00:00Z"


def test_validating_does_not_change_the_senders_payload():
    original = branch_created()

    validate_event("branch_created", original)

    assert "event_id" not in original and "occurred_at" not in original


def test_an_unknown_event_type_is_refused():
    with pytest.raises(ValueError, match="unknown event type"):
        validate_event("client_teleported", branch_created())


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"branch_id": BRANCH}, id="missing-branch"),
        pytest.param({"branch": {"id": BRANCH, "name": "Москва", "code": "MSK"}}, id="missing-branch-id"),
        pytest.param(branch_created(occurred_at="2026-11-26T10:00:00"), id="naive-occurred-at"),
        pytest.param(branch_created(occurred_at="last tuesday"), id="garbage-occurred-at"),
    ],
)
def test_a_payload_that_breaks_its_contract_is_refused(payload):
    with pytest.raises(ValueError, match="breaks its contract"):
        validate_event("branch_created", payload)


def test_a_payload_with_a_field_the_contract_does_not_know_is_refused():
    with pytest.raises(ValueError):
        validate_event("branch_created", branch_created(branch_name="Москва"))


def test_every_event_has_the_service_that_sends_it():
    assert set(EVENT_SOURCES) == set(EVENTS)
    assert set(EVENT_SOURCES.values()) <= {spec.name for spec in REGISTRY}


class Level(enum.IntEnum):
    HIGH = 3


class Name(str):
    pass


@pytest.mark.parametrize("value", [
    {"a": 1, "b": [1.5, None, True, "ё"], "c": {"d": ("x", 2)}, "e": []},
    {"when": datetime(2026, 11, 30, 21, 0, tzinfo=UTC),
     "local": datetime(2026, 11, 30, 21, 0, tzinfo=timezone(timedelta(hours=3))),
     "sum": Decimal("10.50"), "nested": [{"at": datetime(2026, 1, 1, tzinfo=UTC)}]},
    {1: "a key that is not text", "b": {2: "x"}},
    {"level": Level.HIGH, "name": Name("Ольга"), "nan": float("nan")},
    ["top", "level", ("list",)],
    "text",
])
def test_a_payload_is_made_json_ready_exactly_as_a_round_trip_through_json_text_makes_it(value):
    copied = jsonable_copy(value)

    expected = json.loads(json.dumps(value, default=_to_json))
    assert json.dumps(copied, sort_keys=True) == json.dumps(expected, sort_keys=True)
    assert [type(v) for v in _leaves(copied)] == [type(v) for v in _leaves(expected)]


def _leaves(value):
    if isinstance(value, dict):
        return [leaf for key in sorted(value, key=str) for leaf in [key, *_leaves(value[key])]]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def test_a_json_ready_copy_shares_no_list_or_dict_with_the_original():
    original = {"client": {"tags": ["vip"]}}

    copied = jsonable_copy(original)
    copied["client"]["tags"].append("опт")

    assert original == {"client": {"tags": ["vip"]}}
