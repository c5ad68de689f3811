"""Sending a delivery over HTTP: addresses are checked by the connection itself, redirects are not followed, the
whole answer must come in time. Receivers are small servers on 127.0.0.1 started by each test."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import eventlet
import pytest

from webhooks import domain, sender


class QuietServer(ThreadingHTTPServer):
    """A receiver whose client gave up (a timeout under test) is expected here: no traceback on the console."""

    def handle_error(self, request, client_address):
        pass


class Receiver:
    """An HTTP server on 127.0.0.1 answering every POST with ``status`` (and ``headers``), recording requests."""

    def __init__(self, status=204, headers=None, delay_s=0.0):
        self.requests: list[tuple[dict, bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((dict(self.headers), body))
                eventlet.sleep(delay_s)
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"no")

            def log_message(self, *args):
                pass

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers():
    made = []

    def make(**kwargs):
        made.append(Receiver(**kwargs))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


def test_a_delivery_is_posted_with_its_headers_and_body(receivers):
    receiver = receivers()
    body = domain.body("d-1", "deal_won", "2026-11-26T10:00:00Z", {"deal": {"title": "Поставка"}})
    headers = domain.headers("whsec_0123456789abcdef", 1000, "d-1", "deal_won", body)

    outcome = sender.Sender(allow_private=True, timeout_s=5).post(receiver.url, body, headers)

    assert (outcome.ok, outcome.status_code, outcome.error) == (True, 204, None)
    (got_headers, got_body), = receiver.requests
    assert got_body == body and got_headers["X-CRM-Signature"] == headers["X-CRM-Signature"]
    assert got_headers["Content-Type"] == "application/json; charset=utf-8"


def test_a_loopback_receiver_is_refused_unless_private_addresses_are_allowed(receivers):
    receiver = receivers()

    outcome = sender.Sender(allow_private=False, timeout_s=5).post(receiver.url, b"{}", {})

    assert not outcome.ok and outcome.status_code is None
    assert "127.0.0.1 is a loopback address" in outcome.error
    assert receiver.requests == []


def test_a_name_resolving_to_a_private_address_is_refused_at_connection_time(receivers):
    receiver = receivers()
    url = receiver.url.replace("127.0.0.1", "localhost")

    outcome = sender.Sender(allow_private=False, timeout_s=5).post(url, b"{}", {})

    assert not outcome.ok and "localhost resolves to" in outcome.error and receiver.requests == []
    with pytest.raises(domain.UrlRefused, match="localhost resolves to"):
        sender.check_url(url, allow_private=False)
    assert sender.check_url(url, allow_private=True).host == "localhost"


def test_a_redirect_is_not_followed_and_counts_as_a_failure(receivers):
    target = receivers()
    redirecting = receivers(status=302, headers={"Location": target.url})

    outcome = sender.Sender(allow_private=True, timeout_s=5).post(redirecting.url, b"{}", {})

    assert not outcome.ok and outcome.status_code == 302 and "redirects are not followed" in outcome.error
    assert target.requests == []


def test_an_error_answer_is_recorded_with_its_status_and_the_start_of_its_body(receivers):
    outcome = sender.Sender(allow_private=True, timeout_s=5).post(receivers(status=503).url, b"{}", {})

    assert (outcome.ok, outcome.status_code, outcome.error) == (False, 503, "HTTP 503: no")


def test_a_receiver_that_does_not_answer_in_time_fails_the_attempt_after_the_timeout(receivers):
    slow = receivers(delay_s=3)

    outcome = sender.Sender(allow_private=True, timeout_s=0.5).post(slow.url, b"{}", {})

    assert not outcome.ok and outcome.error == "no answer within 0.5 s"
    assert outcome.duration_ms < 2000


def test_a_closed_port_fails_the_attempt_with_the_reason():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    outcome = sender.Sender(allow_private=True, timeout_s=2).post(f"http://127.0.0.1:{port}/", b"{}", {})

    assert not outcome.ok and "refused" in outcome.error.lower()


def test_a_host_that_does_not_resolve_is_refused_when_saved_and_fails_a_delivery(monkeypatch):
    def no_such_host(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)

    with pytest.raises(domain.UrlRefused, match="erp.example.com does not resolve"):
        sender.check_url("https://erp.example.com/in", allow_private=False)
    outcome = sender.Sender(allow_private=False, timeout_s=2).post("https://erp.example.com/in", b"{}", {})
    assert not outcome.ok and "does not resolve" in outcome.error
