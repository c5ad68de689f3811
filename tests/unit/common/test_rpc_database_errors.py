"""A service whose database is down answers 'unavailable', which the gateway turns into 503."""

from sqlalchemy.exc import OperationalError

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
