"""The shared error classes: one body shape, one wire category per error, flat field messages."""

import pytest

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
    flatten_messages,
    wire_class,
)


def test_an_error_body_carries_code_message_fields_and_details():
    error = DuplicateClient("already there", fields={"phones": ["Taken."]}, details={"existing_id": "c-1"})

    assert error.to_body() == {
        "error": {
            "code": "duplicate_client",
            "message": "already there",
            "fields": {"phones": ["Taken."]},
            "existing_id": "c-1",
        }
    }


def test_an_error_without_fields_has_no_fields_member():
    assert NotFound("client not found").to_body() == {"error": {"code": "not_found", "message": "client not found"}}


def test_an_error_without_a_message_uses_its_description():
    assert Forbidden().message == "The caller's role may not do this."


def test_an_error_with_fields_names_them_when_printed():
    assert str(ValidationError("invalid input", fields={"name": ["Required."]})) == ("invalid input: {'name': ['Required.']}")


@pytest.mark.parametrize(
    ("error_cls", "status", "code"),
    [
        (BadRequest, 400, "bad_request"),
        (Unauthorized, 401, "unauthorized"),
        (Forbidden, 403, "forbidden"),
        (NotFound, 404, "not_found"),
        (Conflict, 409, "conflict"),
        (DuplicateClient, 409, "duplicate_client"),
        (VersionConflict, 409, "version_conflict"),
        (PayloadTooLarge, 413, "payload_too_large"),
        (ValidationError, 422, "validation_error"),
        (RateLimited, 429, "rate_limited"),
        (Unavailable, 503, "unavailable"),
    ],
)
def test_each_shared_error_has_the_documented_status_and_code(error_cls, status, code):
    assert (error_cls.status, error_cls.code) == (status, code)


@pytest.mark.parametrize(
    ("error", "category"),
    [
        (ClientNotFound(), NotFound),
        (DuplicateContact("c-1"), DuplicateClient),
        (ClientHasOpenDeals([{"id": "d-1"}]), Conflict),
        (VersionConflict(), VersionConflict),
        (DuplicateClient(), DuplicateClient),
        (ValidationError(), ValidationError),
        (CrmError(), CrmError),
    ],
)
def test_an_error_travels_as_its_most_specific_shared_category(error, category):
    assert wire_class(error) is category


@pytest.mark.parametrize(
    ("messages", "flat"),
    [
        ({"name": ["Required."]}, {"name": ["Required."]}),
        ({"phones": {0: ["Not a valid phone number."]}}, {"phones.0": ["Not a valid phone number."]}),
        ({"phones": {"0": ["Bad."], "3": ["Worse."]}}, {"phones.0": ["Bad."], "phones.3": ["Worse."]}),
        ({"stages": {1: {"name": ["Required."]}}}, {"stages.1.name": ["Required."]}),
        ({"_schema": ["Nothing to change."]}, {"body": ["Nothing to change."]}),
        ({"utm": {"_schema": ["Too many."]}}, {"utm": ["Too many."]}),
        ({"custom_fields": {"color": {"value": ["Invalid."]}}}, {"custom_fields.color.value": ["Invalid."]}),
        (["Must be a JSON object."], {"body": ["Must be a JSON object."]}),
        ("Invalid input type.", {"body": ["Invalid input type."]}),
        ([{"name": ["Required."]}, {"kind": ["Bad."]}], {"0.name": ["Required."], "1.kind": ["Bad."]}),
    ],
)
def test_nested_marshmallow_messages_become_flat_dotted_field_names(messages, flat):
    assert flatten_messages(messages) == flat
