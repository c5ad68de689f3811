"""validate_event: every event is completed with its id and time and checked against its contract."""

import uuid
from datetime import UTC, datetime

import pytest

from crm_common.events import EVENT_SOURCES, EVENTS, validate_event
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
