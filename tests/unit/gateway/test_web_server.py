"""The gateway's listening socket: exclusive by default, shared by the gateway's replicas when asked."""

import socket

import eventlet
import pytest
from nameko.testing.utils import find_free_port

from gateway.http import JsonWebServer


class FakeContainer:
    def __init__(self, port: int, reuse_port: bool):
        self.config = {"WEB_SERVER_ADDRESS": f"127.0.0.1:{port}", "CRM": {"http_reuse_port": reuse_port}}
        self.threads = []

    def spawn_managed_thread(self, fn, identifier=None):
        thread = eventlet.spawn(fn)
        self.threads.append(thread)
        return thread


@pytest.fixture
def servers():
    started = []

    def start(port: int, reuse_port: bool) -> JsonWebServer:
        server = JsonWebServer()
        server.container = FakeContainer(port, reuse_port)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server._is_accepting = False
        server._gt.kill()
        server._sock.close()


def test_a_lone_gateway_keeps_its_port_to_itself(servers):
    port = find_free_port()
    servers(port, reuse_port=False)

    with pytest.raises(OSError, match="in use"):
        servers(port, reuse_port=True)


def test_gateway_replicas_asked_to_share_the_port_all_listen_on_it(servers):
    port = find_free_port()
    first = servers(port, reuse_port=True)
    second = servers(port, reuse_port=True)

    for server in (first, second):
        assert server._sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
        assert server._sock.getsockname() == ("127.0.0.1", port)


def test_a_process_that_does_not_share_cannot_join_replicas_that_do(servers):
    port = find_free_port()
    servers(port, reuse_port=True)

    with pytest.raises(OSError, match="in use"):
        servers(port, reuse_port=False)
