"""to_wire_error: a service's own error leaves it as the shared category the gateway knows."""

import marshmallow
import pytest

from clients.exceptions import ClientNotFound, DuplicateContact
from crm_common.errors import Conflict, DuplicateClient, NotFound, ValidationError, VersionConflict
from crm_common.rpc import to_wire_error


def test_client_not_found_travels_as_not_found_with_its_message():
    wire = to_wire_error(ClientNotFound())

    assert type(wire) is NotFound
    assert wire.message == "client not found"
    assert wire.status == 404


def test_a_duplicate_contact_travels_as_duplicate_client_with_the_existing_id():
    wire = to_wire_error(DuplicateContact("c-1"))

    assert type(wire) is DuplicateClient
    assert wire.details == {"existing_id": "c-1"}
    assert wire.message == "a client with this phone or email already exists in the branch"


class ClientArchived(Conflict):
    """The client is archived."""


def test_a_service_specific_conflict_keeps_its_fields_and_details():
    error = ClientArchived("the client is archived", fields={"id": ["Archived."]}, details={"archived_at": "x"})

    wire = to_wire_error(error)

    assert type(wire) is Conflict
    assert (wire.message, wire.fields, wire.details) == ("the client is archived", {"id": ["Archived."]}, {"archived_at": "x"})


@pytest.mark.parametrize("error", [NotFound("gone"), VersionConflict("stale"), ValidationError("bad")])
def test_a_shared_error_is_sent_as_it_is(error):
    assert to_wire_error(error) is error


def test_a_marshmallow_error_travels_as_a_validation_error_with_flat_fields():
    error = marshmallow.ValidationError({"phones": {1: ["Not a valid string."]}, "name": ["Required."]})

    wire = to_wire_error(error)

    assert type(wire) is ValidationError
    assert wire.fields == {"phones.1": ["Not a valid string."], "name": ["Required."]}


def test_an_unexpected_error_is_left_alone():
    error = RuntimeError("boom")

    assert to_wire_error(error) is error
