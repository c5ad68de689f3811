"""Errors over RPC: what a service raises reaches the gateway as the shared class, with everything it carried."""

import marshmallow
import pytest
from nameko.exceptions import RemoteError, deserialize, serialize

from clients.exceptions import ClientHasOpenDeals, ClientNotFound, DuplicateContact
from crm_common.errors import (
    BadRequest,
    Conflict,
    CrmError,
    DuplicateClient,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    Unavailable,
    ValidationError,
    VersionConflict,
)
from crm_common.rpc import to_wire_error
from gateway.errors import error_response


def over_the_wire(exc: BaseException) -> BaseException:
    """What the calling side gets: the service's Rpc entrypoint converts, nameko serializes and deserializes."""
    return deserialize(serialize(to_wire_error(exc)))


@pytest.mark.parametrize(
    ("error", "shared_cls"),
    [
        (ClientNotFound(), NotFound),
        (DuplicateContact("6f1c2b4e-0d1a-4c3b-9e6f-1a2b3c4d5e6f"), DuplicateClient),
        (ClientHasOpenDeals([{"id": "d-1"}]), Conflict),
        (BadRequest("bad cursor", fields={"cursor": ["Not a cursor."]}), BadRequest),
        (Unauthorized("no"), Unauthorized),
        (Forbidden("a manager cannot assign clients to someone else"), Forbidden),
        (NotFound("deal not found"), NotFound),
        (Conflict("busy"), Conflict),
        (DuplicateClient("dup", details={"existing_id": "c-1"}), DuplicateClient),
        (VersionConflict("stale", details={"current_version": "4"}), VersionConflict),
        (PayloadTooLarge("big"), PayloadTooLarge),
        (ValidationError("invalid input", fields={"phones.0": ["Not a valid phone number."]}), ValidationError),
        (RateLimited("slow down", details={"retry_after": "3"}), RateLimited),
        (Unavailable("deals did not answer"), Unavailable),
    ],
)
def test_an_error_crosses_the_wire_as_its_shared_class_with_message_fields_and_details(error, shared_cls):
    received = over_the_wire(error)

    assert type(received) is shared_cls
    assert received.message == error.message
    assert received.fields == error.fields
    assert received.details == error.details


def test_a_duplicate_contact_reaches_the_gateway_as_409_duplicate_client_with_the_existing_id():
    received = over_the_wire(DuplicateContact("6f1c2b4e-0d1a-4c3b-9e6f-1a2b3c4d5e6f"))

    status, body, _ = error_response(received)

    assert status == 409
    assert body["error"]["code"] == "duplicate_client"
    assert body["error"]["existing_id"] == "6f1c2b4e-0d1a-4c3b-9e6f-1a2b3c4d5e6f"


def test_a_client_not_found_reaches_the_gateway_as_404():
    status, body, _ = error_response(over_the_wire(ClientNotFound()))

    assert (status, body["error"]["code"]) == (404, "not_found")


def test_a_marshmallow_error_that_escaped_a_service_reaches_the_gateway_as_422_with_flat_fields():
    received = over_the_wire(marshmallow.ValidationError({"stages": {0: {"kind": ["Must be one of: open."]}}}))

    assert type(received) is ValidationError
    assert received.fields == {"stages.0.kind": ["Must be one of: open."]}
    assert error_response(received)[0] == 422


@pytest.mark.parametrize(
    "details",
    [
        pytest.param({"current_version": 4}, id="integer"),
        pytest.param({"retry_after": 3, "limit": 1200}, id="integers"),
        pytest.param({"existing_id": "c-1", "archived": True}, id="boolean"),
        pytest.param({"missing": None}, id="null"),
    ],
)
def test_details_keep_their_json_types_across_the_wire(details):
    received = over_the_wire(VersionConflict("the client changed since you read it", details=details))

    assert received.details == details


def test_an_error_that_is_not_a_crm_error_is_a_remote_error_on_the_other_side():
    received = over_the_wire(KeyError("name"))

    assert isinstance(received, RemoteError)
    assert error_response(received)[0] == 500


def test_a_crm_error_outside_the_shared_classes_is_not_mistaken_for_one():
    class Mystery(CrmError):
        pass

    received = over_the_wire(Mystery("who knows"))

    assert isinstance(received, RemoteError)


def test_an_incomplete_checklist_reaches_the_gateway_as_409_checklist_incomplete_with_the_steps():
    from crm_common.errors import ChecklistIncomplete
    from tasks.exceptions import ChecklistItemNotFound, TaskNotFound

    received = over_the_wire(ChecklistIncomplete("1 step(s) not done", fields={"checklist.1": ["Not done."]},
                                                 details={"undone": [1]}))
    status, body, _ = error_response(received)
    assert status == 409 and body["error"]["code"] == "checklist_incomplete" and body["error"]["undone"] == [1]
    assert body["error"]["fields"] == {"checklist.1": ["Not done."]}
    for missing in (TaskNotFound(), ChecklistItemNotFound()):
        assert error_response(over_the_wire(missing))[0] == 404
