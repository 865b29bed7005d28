"""The real servers do what extension tests will rely on, checked with stdlib clients only.

nginx: TLS verifies with the right CA only, basic auth gives 401 unless right, 413 over the body
limit, bodies and headers reach the receiver unchanged. mitmproxy: each fault step and down mode
does what fault_addon.py promises. Both: stopped by PID, nothing left running.
"""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.faults import FaultProxy
from tests.support.fixtures import BASIC_AUTH
from tests.support.nginx import Nginx, require_nginx
from tests.support.process import alive, children, wait_until
from tests.support.tls import TlsMaterial
from tools.lambda_sandbox.receiver import Receiver

pytestmark = pytest.mark.timeout(60)

BATCH = json.dumps({"logs": [{"message": "hello", "level": "INFO"}]}).encode()

Response = tuple[int, dict[str, str], bytes]


def post(
    connection: http.client.HTTPConnection,
    body: bytes = BATCH,
    headers: dict[str, str] | None = None,
) -> Response:
    """POST to /ingest on ``connection``; (status, headers, body)."""
    connection.request("POST", "/ingest", body=body,
                       headers={"Content-Type": "application/json", **(headers or {})})
    response = connection.getresponse()
    return response.status, dict(response.getheaders()), response.read()


@contextmanager
def https(
    nginx: Nginx, context: ssl.SSLContext, host: str = "127.0.0.1"
) -> Iterator[http.client.HTTPSConnection]:
    """An HTTPS connection to ``nginx``, verifying with ``context``; ``host`` names the server."""
    connection = http.client.HTTPSConnection(host, nginx.port, context=context, timeout=5)
    try:
        yield connection
    finally:
        connection.close()


@contextmanager
def plain(port: int, timeout: float = 5.0) -> Iterator[http.client.HTTPConnection]:
    """A plain HTTP connection to 127.0.0.1:port, closed on exit."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        yield connection
    finally:
        connection.close()


def auth(nginx: Nginx) -> dict[str, str]:
    """Headers with the right credentials for ``nginx``."""
    assert nginx.authorization is not None
    return {"Authorization": nginx.authorization}


# --- TLS + basic auth (nginx) ---------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_nginx_tls_verifies_with_the_right_ca(
    nginx_tls_receiver: Nginx, tls_material: TlsMaterial, host: str
) -> None:
    with https(nginx_tls_receiver, tls_material.client_context(), host) as connection:
        status, _, _ = post(connection, headers=auth(nginx_tls_receiver))
    assert status == 200


def test_nginx_tls_fails_with_the_wrong_ca(
    nginx_tls_receiver: Nginx, tls_material: TlsMaterial, receiver: Receiver
) -> None:
    context = tls_material.client_context(tls_material.other_ca_file)
    with https(nginx_tls_receiver, context) as connection, \
            pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        post(connection, headers=auth(nginx_tls_receiver))
    assert receiver.requests() == []


def test_nginx_tls_fails_for_a_name_the_cert_does_not_have(
    nginx_tls_receiver: Nginx, tls_material: TlsMaterial
) -> None:
    context = tls_material.client_context()
    raw = socket.create_connection(("127.0.0.1", nginx_tls_receiver.port), timeout=5)
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        # Reaches the server on 127.0.0.1 but expects a certificate for 127.0.0.2.
        context.wrap_socket(raw, server_hostname="127.0.0.2").close()
    raw.close()


@pytest.mark.parametrize("authorization", [
    None,
    "Basic aW5nZXN0Ondyb25n",          # ingest:wrong
    "Basic bm9ib2R5OnMzY3JldC1wYXNz",  # nobody:s3cret-pass
    "Bearer s3cret-pass",
])
def test_nginx_answers_401_without_the_right_credentials(
    nginx_tls_receiver: Nginx, tls_material: TlsMaterial, receiver: Receiver,
    authorization: str | None,
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    with https(nginx_tls_receiver, tls_material.client_context()) as connection:
        status, response_headers, _ = post(connection, headers=headers)
    assert status == 401
    assert response_headers["WWW-Authenticate"] == 'Basic realm="ingest"'
    assert receiver.requests() == []


def test_nginx_passes_body_and_headers_to_the_receiver(
    nginx_tls_receiver: Nginx, tls_material: TlsMaterial, receiver: Receiver
) -> None:
    assert nginx_tls_receiver.authorization == "Basic aW5nZXN0OnMzY3JldC1wYXNz"  # BASIC_AUTH
    compressed = gzip.compress(BATCH)
    headers = {"Authorization": nginx_tls_receiver.authorization, "Content-Encoding": "gzip",
               "X-Custom": "kept"}
    with https(nginx_tls_receiver, tls_material.client_context()) as connection:
        # Two requests on one connection: keep-alive through nginx works.
        assert post(connection, compressed, headers)[0] == 200
        assert post(connection, compressed, headers)[0] == 200
    first = receiver.requests()[0]
    assert len(receiver.requests()) == 2
    assert first["body"] == BATCH.decode()
    assert first["wire_bytes"] == len(compressed)
    assert first["headers"]["Content-Encoding"] == "gzip"
    assert first["headers"]["X-Custom"] == "kept"
    assert first["headers"]["Authorization"] == nginx_tls_receiver.authorization
    assert first["headers"]["Host"] == f"127.0.0.1:{nginx_tls_receiver.port}"


def test_nginx_relays_the_receivers_status_and_retry_after(
    nginx_tls_receiver: Nginx, tls_material: TlsMaterial, receiver: Receiver
) -> None:
    receiver.script([{"status": 429, "retry_after": "3"}])
    with https(nginx_tls_receiver, tls_material.client_context()) as connection:
        status, headers, _ = post(connection, headers=auth(nginx_tls_receiver))
    assert (status, headers.get("Retry-After")) == (429, "3")


@pytest.mark.parametrize(("size", "expected"), [(1024 * 1024, 200), (1024 * 1024 + 1, 413)])
def test_nginx_limits_the_body_size(
    nginx_tls_receiver: Nginx, tls_material: TlsMaterial, receiver: Receiver,
    size: int, expected: int,
) -> None:
    with https(nginx_tls_receiver, tls_material.client_context()) as connection:
        status, _, _ = post(connection, b"x" * size,
                            auth(nginx_tls_receiver))
    assert status == expected
    assert len(receiver.requests()) == (1 if expected == 200 else 0)


def test_nginx_checks_the_body_size_before_credentials(
    nginx_tls_receiver: Nginx, tls_material: TlsMaterial
) -> None:
    with https(nginx_tls_receiver, tls_material.client_context()) as connection:
        assert post(connection, b"x" * (2 * 1024 * 1024))[0] == 413


def test_nginx_plain_http_without_auth(receiver: Receiver, tmp_path: Path) -> None:
    require_nginx()
    with Nginx(receiver.port, tmp_path, tls=False, basic_auth=None,
               client_max_body_size="1k") as nginx:
        assert nginx.url == f"http://127.0.0.1:{nginx.port}/ingest"
        assert nginx.ca_file is None and nginx.authorization is None
        with plain(nginx.port) as connection:
            assert post(connection)[0] == 200
            assert post(connection, b"x" * 1025)[0] == 413


def test_nginx_stop_leaves_no_process(
    receiver: Receiver, tls_material: TlsMaterial, tmp_path: Path
) -> None:
    require_nginx()
    nginx = Nginx(receiver.port, tmp_path, tls=tls_material, basic_auth=BASIC_AUTH)
    assert nginx.url == f"https://127.0.0.1:{nginx.port}/ingest"
    assert nginx.ca_file == tls_material.ca_file
    workers = children(nginx.pid)
    assert workers, "nginx started no worker"
    started = time.monotonic()
    nginx.stop()
    nginx.stop()  # a second stop is harmless
    assert time.monotonic() - started < 5
    assert not any(alive(pid) for pid in [nginx.pid, *workers])


# --- faults (mitmproxy) ---------------------------------------------------------------------------


def test_proxy_forwards_unchanged_without_a_script(
    fault_proxy: FaultProxy, receiver: Receiver
) -> None:
    assert fault_proxy.url == f"http://127.0.0.1:{fault_proxy.port}/ingest"
    compressed = gzip.compress(BATCH)
    with plain(fault_proxy.port) as connection:
        status, _, _ = post(connection, compressed, {"Content-Encoding": "gzip",
                                                     "Authorization": "Bearer token"})
    assert status == 200
    [request] = receiver.requests()
    assert request["body"] == BATCH.decode()
    assert request["wire_bytes"] == len(compressed)
    assert request["headers"]["Authorization"] == "Bearer token"
    assert fault_proxy.actions() == ["forward"]
    assert fault_proxy.events()[0]["status"] == 200


def test_proxy_answers_a_status_with_retry_after_without_forwarding(
    fault_proxy: FaultProxy, receiver: Receiver
) -> None:
    fault_proxy.set([{"status": 429, "retry_after": "2"}, {"status": 503, "times": 2}])
    with plain(fault_proxy.port) as connection:
        answers = [post(connection) for _ in range(4)]
    assert [(status, headers.get("Retry-After")) for status, headers, _ in answers] == [
        (429, "2"), (503, None), (503, None), (200, None),
    ]
    assert json.loads(answers[0][2]) == {"status": 429, "injected": True}
    assert len(receiver.requests()) == 1
    assert fault_proxy.actions() == ["status", "status", "status", "forward"]


def test_proxy_lets_some_requests_through_before_a_fault(
    fault_proxy: FaultProxy, receiver: Receiver
) -> None:
    fault_proxy.set([{"times": 2}, {"status": 500}])
    with plain(fault_proxy.port) as connection:
        assert [post(connection)[0] for _ in range(4)] == [200, 200, 500, 200]
    assert len(receiver.requests()) == 3


def test_proxy_delays_then_forwards(fault_proxy: FaultProxy, receiver: Receiver) -> None:
    fault_proxy.set([{"delay": 0.5}])
    started = time.monotonic()
    with plain(fault_proxy.port) as connection:
        assert post(connection)[0] == 200
    assert time.monotonic() - started >= 0.5
    assert len(receiver.requests()) == 1


def test_proxy_holds_a_request_until_released(
    fault_proxy: FaultProxy, receiver: Receiver
) -> None:
    fault_proxy.set([{"hang": True}])
    answers: list[Response] = []

    def held() -> None:
        with plain(fault_proxy.port) as connection:
            answers.append(post(connection))

    client = threading.Thread(target=held)
    client.start()
    time.sleep(0.3)
    # Held: nothing reached the receiver, and other requests are not held behind it.
    assert receiver.requests() == []
    with plain(fault_proxy.port) as other:
        assert post(other)[0] == 200
    fault_proxy.release()
    client.join(5)
    assert [status for status, _, _ in answers] == [200]
    assert len(receiver.requests()) == 2


def test_proxy_hang_outlasts_a_client_timeout(fault_proxy: FaultProxy, receiver: Receiver) -> None:
    fault_proxy.set([{"hang": True}])
    with plain(fault_proxy.port, timeout=0.3) as connection, pytest.raises(socket.timeout):
        post(connection)
    # The hold ends when the client closes its connection: nothing is forwarded late.
    assert wait_until(lambda: fault_proxy.actions() == ["client_gone"], 3), fault_proxy.events()
    fault_proxy.release()
    time.sleep(0.2)
    assert receiver.requests() == []


def test_proxy_hang_with_a_limit_drops_the_connection_unanswered(
    fault_proxy: FaultProxy, receiver: Receiver
) -> None:
    fault_proxy.set([{"hang": 0.5}])
    started = time.monotonic()
    with plain(fault_proxy.port) as connection, pytest.raises(http.client.RemoteDisconnected):
        post(connection)
    assert 0.5 <= time.monotonic() - started < 3
    assert receiver.requests() == []
    assert fault_proxy.actions() == ["hang_timeout"]


def test_proxy_kill_drops_the_connection_before_forwarding(
    fault_proxy: FaultProxy, receiver: Receiver
) -> None:
    fault_proxy.set([{"kill": True}])
    with plain(fault_proxy.port) as connection:
        with pytest.raises(http.client.RemoteDisconnected):
            post(connection)
        # http.client reconnects for the next request on the same object.
        assert post(connection)[0] == 200
    assert len(receiver.requests()) == 1
    assert fault_proxy.actions() == ["kill", "forward"]


def test_proxy_kill_after_forwarding_makes_a_duplicate_on_retry(
    fault_proxy: FaultProxy, receiver: Receiver
) -> None:
    fault_proxy.set([{"kill_after": True}])
    with plain(fault_proxy.port) as connection:
        with pytest.raises(http.client.RemoteDisconnected):
            post(connection)
        # The receiver has it although the client saw a failure; a retry delivers it twice.
        assert len(receiver.requests()) == 1
        assert post(connection)[0] == 200
    first, second = receiver.requests()
    assert first["body"] == second["body"] == BATCH.decode()
    first = fault_proxy.events()[0]
    assert (first["action"], first["status"]) == ("kill_after", 200)  # what the upstream answered


def test_proxy_down_kill_closes_every_connection(
    fault_proxy: FaultProxy, receiver: Receiver
) -> None:
    with plain(fault_proxy.port) as kept:
        assert post(kept)[0] == 200
        fault_proxy.down("kill")
        with pytest.raises(ConnectionError):  # on a kept-alive connection
            post(kept)
        with plain(fault_proxy.port) as fresh, pytest.raises(ConnectionError):
            post(fresh)
        fault_proxy.up()
        assert post(kept)[0] == 200
    assert len(receiver.requests()) == 2


def test_proxy_down_refuse_closes_the_port_then_reopens_it(
    fault_proxy: FaultProxy, receiver: Receiver
) -> None:
    with pytest.raises(ValueError, match="down mode"):
        fault_proxy.down("sideways")
    fault_proxy.down("refuse")
    with plain(fault_proxy.port) as connection, pytest.raises(ConnectionRefusedError):
        post(connection)
    fault_proxy.up()
    with plain(fault_proxy.port) as connection:
        assert post(connection)[0] == 200
    assert len(receiver.requests()) == 1


def test_proxy_stop_is_bounded_even_with_a_held_request(
    receiver: Receiver, tmp_path: Path, fault_proxy: FaultProxy
) -> None:
    fault_proxy.set([{"hang": True}])
    errors: list[BaseException] = []

    def held() -> None:
        try:
            with plain(fault_proxy.port) as connection:
                post(connection)
        except (OSError, http.client.HTTPException) as error:
            errors.append(error)

    client = threading.Thread(target=held)
    client.start()
    time.sleep(0.3)
    started = time.monotonic()
    fault_proxy.stop()
    fault_proxy.stop()  # a second stop is harmless
    client.join(5)
    assert time.monotonic() - started < 3
    assert not alive(fault_proxy.pid)
    assert len(errors) == 1, "the held client should see the connection close"

