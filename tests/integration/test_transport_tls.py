"""HttpTransport over TLS against a real TLS server: a kept-alive connection the receiver
dropped (as idle-timeouts and load balancers do, often without close_notify) is replaced at
once, however the drop surfaces in ``ssl`` (EOF, reset, on Python 3.9 to 3.13 alike)."""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from collections.abc import Iterator

import pytest

from lambda_logs_http.http.auth import Auth
from lambda_logs_http.http.transport import HttpTransport
from tests.support.accept_loop import AcceptLoopServer
from tests.support.endpoints import endpoint
from tests.support.tls import TlsMaterial

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


class DroppingTlsServer(AcceptLoopServer):
    """Answers one request per connection, then drops it: ``mode`` "fin" (close without
    close_notify) or "rst" (reset)."""

    def __init__(self, tls: TlsMaterial, mode: str) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
        self._mode = mode
        super().__init__(connection_timeout=5)
        self.url = f"https://127.0.0.1:{self.port}/in"

    def serve(self, raw: socket.socket) -> None:
        with self._context.wrap_socket(raw, server_side=True) as conn:  # owns the fd now
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            conn.sendall(OK)
            self._stop.wait(0.1)  # the client is idle now: drop it
            if self._mode == "rst":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@pytest.fixture(params=["fin", "rst"])
def dropping(
    request: pytest.FixtureRequest, tls_material: TlsMaterial
) -> Iterator[DroppingTlsServer]:
    server = DroppingTlsServer(tls_material, request.param)
    yield server
    server.stop()


@pytest.mark.parametrize("size", [10, 200_000])
def test_a_dropped_tls_connection_is_replaced_at_once(
    dropping: DroppingTlsServer, tls_material: TlsMaterial, size: int
) -> None:
    transport = HttpTransport(endpoint(dropping.url, ca_bundle=str(tls_material.ca_file)), Auth())
    assert transport.send(b"[]", {}, 5).ok
    threading.Event().wait(0.3)  # the server has dropped the connection meanwhile
    result = transport.send(b"x" * size, {}, 5)
    assert result.ok, result.error
    assert dropping.connections == 2
    transport.close()
