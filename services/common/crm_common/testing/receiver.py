"""A webhook receiver for tests and benchmarks: an HTTP server on 127.0.0.1 that records what it is sent.

    receiver = WebhookReceiver().start()
    ...  # point a webhook at receiver.url
    receiver.wait_for(3)        # the first three deliveries, polled with a deadline
    receiver.stop()             # now it is down: the port refuses connections
    receiver.start()            # back on the same port

``hang=True`` accepts each request and never answers (a receiver that hangs); ``status`` is what it answers.
It counts the requests it is answering at once (``max_in_flight``), to show a webhook never has two.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    headers: dict
    body: bytes
    at: float  # time.time() when it arrived


@dataclass
class WebhookReceiver:
    status: int = 204
    hang: bool = False
    port: int = 0
    requests: list[Received] = field(default_factory=list)
    max_in_flight: int = 0

    def __post_init__(self):
        self._lock = threading.Lock()
        self._in_flight = 0
        self._server: ThreadingHTTPServer | None = None
        self._release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/crm"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real receivers do

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver._in_flight += 1
                    receiver.max_in_flight = max(receiver.max_in_flight, receiver._in_flight)
                    receiver.requests.append(Received(dict(self.headers), body, time.time()))
                try:
                    if receiver.hang:
                        receiver._release.wait(120)
                        return
                    self.send_response(receiver.status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                finally:
                    with receiver._lock:
                        receiver._in_flight -= 1

            def log_message(self, *args):
                pass

        self._release.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Down: the port refuses connections until ``start()``."""
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"the receiver got {len(self.requests)} of {count} deliveries in {timeout} s")
            time.sleep(0.02)
        return self.requests[:count]
