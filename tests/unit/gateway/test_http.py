"""The JSON body of a request: parsed once, strictly, before any route runs."""

import json

import pytest
from kombu.exceptions import OperationalError as BusError
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from crm_common.contracts.clients import ClientCreateSchema
from crm_common.errors import BadRequest, PayloadTooLarge, Unavailable
from gateway.http import MAX_BODY_BYTES, ApiEntrypoint, json_response

WITH_BODY = ApiEntrypoint("POST", "/clients", body=ClientCreateSchema)
WITHOUT_BODY = ApiEntrypoint("POST", "/clients/<client_id>/restore")


def request(data=b"", content_type="application/json", method="POST", headers=None):
    return EnvironBuilder(
        path="/api/v1/clients", method=method, data=data, content_type=content_type, headers=headers
    ).get_request()


@pytest.mark.parametrize(
    ("data", "parsed"),
    [
        (b'{"kind": "person", "name": "Ivan"}', {"kind": "person", "name": "Ivan"}),
        ('{"name": "Иван Петров"}'.encode(), {"name": "Иван Петров"}),
        (b'{"name": "\\u0418\\u0432\\u0430\\u043d"}', {"name": "Иван"}),
        (b"{}", {}),
        (b'  {"a": [1, 2.5, null, true]}  ', {"a": [1, 2.5, None, True]}),
    ],
)
def test_a_json_object_body_is_parsed(data, parsed):
    assert WITH_BODY._parse_body(request(data)) == parsed


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"])
def test_the_json_content_type_may_name_its_charset(content_type):
    assert WITH_BODY._parse_body(request(b'{"a": 1}', content_type)) == {"a": 1}


@pytest.mark.parametrize(
    "data",
    [b'{"name": "Ivan"', b"{name: 'Ivan'}", b'{"a": 1,}', b"nul", b'{"a": 1} {"b": 2}', b"\xff\xfe{}"],
)
def test_malformed_json_is_a_bad_request_naming_the_body(data):
    with pytest.raises(BadRequest) as error:
        WITH_BODY._parse_body(request(data))

    assert list(error.value.fields) == ["body"]


@pytest.mark.parametrize("depth", [2_000, 100_000])
def test_json_nested_too_deeply_is_a_bad_request_not_a_crash(depth):
    data = b'{"a": ' + b"[" * depth + b"]" * depth + b"}"

    with pytest.raises(BadRequest) as error:
        WITH_BODY._parse_body(request(data))

    assert "body" in error.value.fields


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None]
)
def test_a_body_that_is_not_declared_json_is_a_bad_request_naming_the_content_type(content_type):
    with pytest.raises(BadRequest) as error:
        WITH_BODY._parse_body(request(b'{"name": "Ivan"}', content_type))

    assert list(error.value.fields) == ["Content-Type"]


@pytest.mark.parametrize("data", [b"[]", b'[{"name": "Ivan"}]', b'"Ivan"', b"42", b"null", b"true"])
def test_a_body_that_is_not_a_json_object_is_a_bad_request(data):
    with pytest.raises(BadRequest) as error:
        WITH_BODY._parse_body(request(data))

    assert error.value.fields == {"body": ["Must be a JSON object."]}


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(literal):
    with pytest.raises(BadRequest) as error:
        WITH_BODY._parse_body(request(f'{{"amount": {literal}}}'.encode()))

    assert "body" in error.value.fields


def test_a_body_larger_than_the_limit_is_refused():
    data = json.dumps({"name": "x" * MAX_BODY_BYTES}).encode()

    with pytest.raises(PayloadTooLarge):
        WITH_BODY._parse_body(request(data))


def test_a_body_just_under_the_limit_is_accepted():
    padding = MAX_BODY_BYTES - len(b'{"name": ""}')
    data = json.dumps({"name": "x" * padding}).encode()

    assert len(data) == MAX_BODY_BYTES
    assert len(WITH_BODY._parse_body(request(data))["name"]) == padding


def test_a_chunked_body_without_a_length_is_still_limited():
    data = json.dumps({"name": "x" * MAX_BODY_BYTES}).encode()
    environ = EnvironBuilder(path="/api/v1/clients", method="POST", data=data, content_type="application/json").get_environ()
    del environ["CONTENT_LENGTH"]
    environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    environ["wsgi.input_terminated"] = True

    with pytest.raises(PayloadTooLarge):
        WITH_BODY._parse_body(Request(environ))


@pytest.mark.parametrize("data", [b"", b"   ", b"\n"])
def test_an_empty_body_on_a_route_without_a_body_is_an_empty_object(data):
    assert WITHOUT_BODY._parse_body(request(data, content_type=None)) == {}


def test_an_empty_body_on_a_route_that_needs_one_is_a_bad_request():
    with pytest.raises(BadRequest) as error:
        WITH_BODY._parse_body(request(b""))

    assert error.value.fields == {"body": ["Missing JSON body."]}


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_a_method_without_a_body_is_not_parsed(method):
    entrypoint = ApiEntrypoint(method, "/clients/<client_id>")

    assert entrypoint._parse_body(request(b"not json at all", "text/plain", method=method)) is None


def test_a_json_response_keeps_cyrillic_as_it_is():
    response = json_response(201, {"name": "Иван"}, {"ETag": '"1"'})

    assert response.status_code == 201
    assert response.mimetype == "application/json"
    assert response.get_data() == '{"name":"Иван"}'.encode()
    assert response.headers["ETag"] == '"1"'


def test_a_response_without_a_payload_has_no_body():
    response = json_response(204, None)

    assert (response.status_code, response.get_data()) == (204, b"")


def test_a_crm_error_from_a_route_becomes_the_json_error_shape():
    response = WITH_BODY.response_from_exception(BadRequest("malformed JSON", fields={"body": ["Malformed."]}))

    assert response.status_code == 400
    assert json.loads(response.get_data()) == {
        "error": {"code": "bad_request", "message": "malformed JSON", "fields": {"body": ["Malformed."]}}
    }


@pytest.mark.parametrize(
    ("result", "status", "payload", "header"),
    [
        ({"id": "c-1"}, 200, {"id": "c-1"}, None),
        ((201, {"id": "c-1"}), 201, {"id": "c-1"}, None),
        ((200, {"id": "c-1"}, {"ETag": '"2"'}), 200, {"id": "c-1"}, '"2"'),
    ],
)
def test_a_route_may_return_a_payload_a_status_and_headers(result, status, payload, header):
    response = WITHOUT_BODY.response_from_result(result)

    assert response.status_code == status
    assert json.loads(response.get_data()) == payload
    assert response.headers.get("ETag") == header


def test_a_chunked_body_without_a_length_is_read_from_the_servers_decoded_input():
    data = b'{"kind": "person", "name": "Chunked"}'
    environ = EnvironBuilder(path="/api/v1/clients", method="POST", data=data, content_type="application/json").get_environ()
    del environ["CONTENT_LENGTH"]  # werkzeug's own stream is empty without it; eventlet's input has the chunks decoded
    environ["HTTP_TRANSFER_ENCODING"] = "chunked"

    assert WITH_BODY._parse_body(Request(environ)) == {"kind": "person", "name": "Chunked"}


@pytest.mark.parametrize(
    ("given", "kept"),
    [("abc-123", True), ("x" * 100, True), ("x" * 101, False), ("", False), (" a", False), ("a\x00b", False),
     ("ид", False), ("a b", True)],
)
def test_a_clients_request_id_is_echoed_only_if_it_is_short_visible_ascii(given, kept):
    from gateway.http import request_id_of

    assert (request_id_of({"X-Request-Id": given}) == given) == kept
    assert request_id_of({})


def test_a_refusal_written_before_any_route_is_a_whole_json_http_response():
    from gateway.http import raw_json_error

    raw = raw_json_error(414, "uri_too_long", "too long")
    head, _, body = raw.partition(b"\r\n\r\n")

    assert head.startswith(b"HTTP/1.1 414 URI Too Long\r\n")
    assert b"Content-Type: application/json" in head and f"Content-Length: {len(body)}".encode() in head
    assert json.loads(body) == {"error": {"code": "uri_too_long", "message": "too long"}}


def write_request(headers=None):
    built = request(b'{"kind": "person", "name": "Ivan"}', headers=headers)
    built.request_id = "req-1"
    return built


def test_a_write_that_timed_out_answers_503_with_its_request_id_and_how_to_learn_its_outcome():
    response = WITH_BODY.response_from_exception(Unavailable("service 'clients' did not answer"), write_request())

    assert response.status_code == 503
    assert response.headers["Retry-After"]
    error = json.loads(response.get_data())["error"]
    assert error["code"] == "unavailable" and error["request_id"] == "req-1"
    assert "Idempotency-Key: req-1" in error["message"]


def test_a_503_tells_a_client_that_sent_an_idempotency_key_to_repeat_it():
    response = WITH_BODY.response_from_exception(
        Unavailable("service 'clients' did not answer"), write_request({"Idempotency-Key": "my-key"})
    )

    assert "Idempotency-Key: my-key" in json.loads(response.get_data())["error"]["message"]


def test_a_bus_error_escaping_a_route_is_503_not_500():
    response = WITH_BODY.response_from_exception(BusError("[Errno 111] ECONNREFUSED"), write_request())

    assert response.status_code == 503
    assert json.loads(response.get_data())["error"]["request_id"] == "req-1"
