"""error_response: every failure becomes one JSON error shape with the documented status."""

import amqp.exceptions
import pytest
from kombu.exceptions import OperationalError as BusError
from nameko.exceptions import ContainerBeingKilled, MalformedRequest, MethodNotFound, RemoteError, UnknownService

from clients.exceptions import ClientNotFound, DuplicateContact
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
from gateway.errors import ERROR_STATUSES, error_response


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
def test_each_crm_error_answers_with_its_status_code_and_message(error_cls, status, code):
    answer_status, body, _ = error_response(error_cls("something went wrong"))

    assert answer_status == status
    assert body == {"error": {"code": code, "message": "something went wrong"}}


def test_a_validation_error_lists_its_fields():
    status, body, _ = error_response(ValidationError("invalid input", fields={"phones.0": ["Not a valid phone."]}))

    assert status == 422
    assert body["error"]["fields"] == {"phones.0": ["Not a valid phone."]}


def test_a_duplicate_client_names_the_existing_client():
    status, body, _ = error_response(DuplicateContact("c-1"))

    assert status == 409
    assert body["error"]["code"] == "duplicate_client"
    assert body["error"]["existing_id"] == "c-1"


def test_a_service_specific_not_found_is_a_404():
    status, body, _ = error_response(ClientNotFound())

    assert (status, body["error"]["code"]) == (404, "not_found")


@pytest.mark.parametrize(("retry_after", "header"), [(7, "7"), (2.4, "2"), ("30", "30")])
def test_rate_limited_tells_when_to_retry(retry_after, header):
    status, body, headers = error_response(RateLimited("slow down", details={"retry_after": retry_after}))

    assert status == 429
    assert headers["Retry-After"] == header
    assert body["error"]["code"] == "rate_limited"


def test_unauthorized_asks_for_a_bearer_token():
    status, _, headers = error_response(Unauthorized("the token has expired"))

    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("error", [NotFound(), Forbidden(), ValidationError(fields={"a": ["b"]})])
def test_other_errors_carry_no_special_headers(error):
    assert error_response(error)[2] == {}


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (UnknownService("clients"), 503, "unavailable"),
        (MethodNotFound("create_client"), 503, "unavailable"),
        (ConnectionRefusedError("rabbit"), 503, "unavailable"),
        (BusError("[Errno 111] ECONNREFUSED"), 503, "unavailable"),
        (amqp.exceptions.RecoverableConnectionError("connection already closed"), 503, "unavailable"),
        (amqp.exceptions.ConnectionForced("broker forced connection closure"), 503, "unavailable"),
        (ContainerBeingKilled(), 503, "unavailable"),
        (RemoteError("KeyError", "'name'"), 500, "internal_error"),
        (MalformedRequest("bad"), 500, "internal_error"),
        (KeyError("name"), 500, "internal_error"),
        (CrmError("unclassified"), 500, "error"),
    ],
)
def test_foreign_errors_become_unavailable_or_internal_errors(error, status, code):
    answer_status, body, _ = error_response(error)

    assert answer_status == status
    assert body["error"]["code"] == code
    assert body["error"]["message"]


def test_an_internal_error_does_not_reveal_what_failed():
    _, body, _ = error_response(RemoteError("KeyError", "'password_hash' in /srv/secret.py"))

    assert "password_hash" not in body["error"]["message"]


def test_every_documented_status_has_an_error_code():
    assert {400, 401, 403, 404, 409, 422, 429, 503} <= set(ERROR_STATUSES)


@pytest.mark.parametrize(
    "error", [Unavailable("deals did not answer"), UnknownService("deals"), BusError("refused"), ContainerBeingKilled()]
)
def test_every_unavailable_answer_says_when_to_come_back(error):
    status, _, headers = error_response(error)

    assert status == 503
    assert int(headers["Retry-After"]) > 0
