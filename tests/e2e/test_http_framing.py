"""What the gateway's HTTP server answers by itself, before any route, is in the API's JSON error shape too;
and a chunked body is read like any other."""

import json
import socket
from urllib.parse import urlsplit

import pytest

from crm_common.testing.system import unique


def raw_exchange(system, data: bytes) -> tuple[int, dict, bytes]:
    """Send ``data`` as it is and read the answer until the server closes the connection."""
    address = urlsplit(system.base_url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def assert_json_error(status, headers, body, expected_status, code):
    assert status == expected_status, body
    assert headers["content-type"].startswith("application/json")
    assert headers["x-request-id"]
    assert int(headers["content-length"]) == len(body)
    error = json.loads(body)["error"]
    assert error["code"] == code and error["message"]


def test_a_chunked_body_without_a_content_length_is_read(admin):
    body = json.dumps({"name": "Чанки", "code": unique("CH")[:12]}).encode()

    response = admin.post("/branches", data=(part for part in (body[:10], body[10:])),
                          headers={"Content-Type": "application/json"})

    assert response.status_code == 201, response.text
    assert response.json()["name"] == "Чанки"


def test_a_chunked_body_over_the_limit_is_413(admin):
    big = b'{"name": "' + b"x" * (1024 * 1024) + b'"}'

    response = admin.post("/branches", data=(big[i:i + 65536] for i in range(0, len(big), 65536)),
                          headers={"Content-Type": "application/json"})

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_a_url_too_long_is_414_in_the_json_error_shape(system):
    request = f"GET /api/v1/clients?q={'x' * 9000} HTTP/1.1\r\nHost: crm\r\n\r\n".encode()

    assert_json_error(*raw_exchange(system, request), 414, "uri_too_long")


def test_a_header_line_too_long_is_431_in_the_json_error_shape(system):
    request = f"GET /api/v1/me HTTP/1.1\r\nHost: crm\r\nX-Big: {'y' * 9000}\r\n\r\n".encode()

    assert_json_error(*raw_exchange(system, request), 431, "headers_too_large")


def test_too_many_headers_is_431_in_the_json_error_shape(system):
    headers = "".join(f"X-H{i}: {i}\r\n" for i in range(120))
    request = f"GET /api/v1/me HTTP/1.1\r\nHost: crm\r\n{headers}\r\n".encode()

    assert_json_error(*raw_exchange(system, request), 431, "headers_too_large")


@pytest.mark.parametrize("line", [b"GARBAGE\r\n", b"GET /api/v1/me HTTP/one\r\n", b"GET  /a b c HTTP/1.1\r\n"])
def test_a_malformed_request_line_is_400_in_the_json_error_shape(system, line):
    assert_json_error(*raw_exchange(system, line + b"Host: crm\r\n\r\n"), 400, "bad_request")


def test_an_unsupported_http_version_is_505_in_the_json_error_shape(system):
    assert_json_error(*raw_exchange(system, b"GET /api/v1/me HTTP/2.0\r\nHost: crm\r\n\r\n"), 505,
                      "http_version_not_supported")


@pytest.mark.parametrize(
    "framing",
    [b"Content-Length: abc\r\n", b"Content-Length: -1\r\n", b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n",
     b"Transfer-Encoding: gzip\r\n"],
)
def test_a_body_framed_badly_is_400_in_the_json_error_shape(system, framing):
    request = b"POST /api/v1/auth/login HTTP/1.1\r\nHost: crm\r\nContent-Type: application/json\r\n" + framing + b"\r\n{}"

    assert_json_error(*raw_exchange(system, request), 400, "bad_request")


@pytest.mark.parametrize(("method", "path", "status", "code"),
                         [("GET", "/api/v1/nowhere", 404, "not_found"), ("PUT", "/api/v1/clients", 405, "method_not_allowed")])
def test_an_unknown_route_or_method_carries_a_request_id_too(system, method, path, status, code):
    request = f"{method} {path} HTTP/1.1\r\nHost: crm\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".encode()

    status_, headers, body = raw_exchange(system, request)

    assert_json_error(status_, headers, body, status, code)
    if status == 405:
        assert headers["allow"] == "GET, HEAD, POST"
