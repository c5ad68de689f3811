"""A service whose database is down answers 'unavailable' (503); unforeseen races and limits are 409/422."""

import pytest
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.orm.exc import StaleDataError

from crm_common.errors import Unavailable
from crm_common.rpc import to_wire_error
from gateway.errors import error_response


def test_a_lost_database_connection_travels_as_unavailable():
    wire = to_wire_error(OperationalError("SELECT 1", {}, Exception("server closed the connection")))
    assert isinstance(wire, Unavailable)
    status, body, _ = error_response(wire)
    assert status == 503 and body["error"]["code"] == "unavailable"


def test_the_gateways_own_database_down_is_503_not_500():
    status, body, _ = error_response(OperationalError("SELECT 1", {}, Exception("connection refused")))
    assert status == 503 and body["error"]["code"] == "unavailable"


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        pytest.param(StaleDataError("UPDATE clients matched 0 rows"), 409, "version_conflict", id="lost-update"),
        pytest.param(IntegrityError("INSERT", {}, Exception("duplicate key")), 409, "conflict", id="unique-race"),
        pytest.param(DataError("INSERT", {}, Exception("value too long")), 422, "validation_error", id="out-of-range"),
    ],
)
def test_a_race_or_limit_a_command_did_not_foresee_is_a_4xx_not_a_500(error, status, code):
    from_service = error_response(to_wire_error(error))
    from_gateway = error_response(error)

    assert from_service[:2] == from_gateway[:2] == (status, from_service[1])
    assert from_service[0] == status and from_service[1]["error"]["code"] == code
