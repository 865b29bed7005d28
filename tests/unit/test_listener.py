"""The Telemetry listener on a real socket: accepts Lambda's pushes, rejects the rest."""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import select
import socket
import struct
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lambda_logs_http.invocations import InvocationProgress
from lambda_logs_http.listener.server import TelemetryListener, parse_push
from lambda_logs_http.stats import Stats


class Sink:
    def __init__(self) -> None:
        self.pushes: list[list[dict[str, object]]] = []
        self.accept = True

    def __call__(self, events: list[dict[str, object]], body_bytes: int = 0) -> bool:
        if self.accept:
            self.pushes.append(events)
        return self.accept


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds (an observed state, not a guessed delay)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def unread_bytes(sock: socket.socket) -> int:
    """Bytes waiting in ``sock``'s receive queue (FIONREAD)."""
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]


def unsent_bytes(sock: socket.socket) -> int:
    """Bytes in ``sock``'s send queue not yet acknowledged by the peer (SIOCOUTQ)."""
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]


@contextlib.contextmanager
def serving(
    sink: Sink, progress: InvocationProgress | None = None, stats: Stats | None = None,
    **options: Any,
) -> Iterator[TelemetryListener]:
    """A listener on a port the system picks, bound, serving, and stopped on the way out."""
    listener = TelemetryListener(
        0, sink, progress or InvocationProgress(), stats or Stats(), **options
    )
    listener.bind()
    listener.start()
    try:
        yield listener
    finally:
        listener.stop()


@pytest.fixture
def running() -> Iterator[tuple[TelemetryListener, Sink, InvocationProgress, Stats]]:
    sink, progress, stats = Sink(), InvocationProgress(), Stats()
    with serving(sink, progress, stats, max_body_bytes=10_000) as listener:
        yield listener, sink, progress, stats


def post(listener: TelemetryListener, body: bytes, method: str = "POST") -> int:
    connection = http.client.HTTPConnection(listener.host, listener.port, timeout=5)
    connection.request(method, "/", body=body, headers={"Content-Type": "application/json"})
    status = connection.getresponse().status
    connection.close()
    return status


EVENTS = [
    {"time": "t", "type": "function", "record": "hello\n"},
    {
        "time": "t",
        "type": "platform.runtimeDone",
        "record": {"requestId": "r-1", "status": "success"},
    },
]


def test_valid_push_is_queued_and_runtime_done_noted(running) -> None:  # type: ignore[no-untyped-def]
    listener, sink, progress, stats = running
    assert listener.host == "127.0.0.1"  # sandbox.localdomain does not resolve here
    assert post(listener, json.dumps(EVENTS).encode()) == 200
    assert sink.pushes == [EVENTS]
    assert stats.received == 2
    # arrived, not delivered: the budget (0 s after arrival) ends the wait, not the deadline
    assert progress.wait("r-1", deadline=time.monotonic() + 10, budget=0.0) == "budget"


@pytest.mark.parametrize(
    "spelled",
    ['"platform.runtimeDone"', '"platform.runtime\\u0044one"', '"\\u0070latform.runtimeDone"'],
)
def test_runtime_done_is_noted_however_its_type_is_spelled(running, spelled: str) -> None:  # type: ignore[no-untyped-def]
    listener, _, progress, _ = running
    body = '[{"time":"t","type":' + spelled + ',"record":{"requestId":"r-9"}}]'
    assert post(listener, body.encode()) == 200
    assert progress.wait("r-9", deadline=time.monotonic() + 10, budget=0.0) == "budget"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (b'{"an":"object"}', 400),
        (b"[NaN]", 200),  # JSON as Python writes it: taken, NaN as a string (no object: no push)
        (b"[" * 100_000, 413),
        (b"[1, 2]", 200),
        (b"[]", 200),
    ],
)
def test_malformed_bodies(running, body: bytes, status: int) -> None:  # type: ignore[no-untyped-def]
    listener, sink, _, _ = running
    assert post(listener, body) == status
    assert sink.pushes == []
    assert post(listener, json.dumps(EVENTS).encode()) == 200  # still serving


def test_only_post(running) -> None:  # type: ignore[no-untyped-def]
    listener, _, _, _ = running
    assert post(listener, b"", method="GET") == 405
    assert post(listener, b"[]", method="PUT") == 405


def test_full_queue_asks_lambda_to_retry(running) -> None:  # type: ignore[no-untyped-def]
    listener, sink, _, stats = running
    sink.accept = False
    assert post(listener, json.dumps(EVENTS).encode()) == 503
    assert stats.received == 0


def test_missing_content_length(running) -> None:  # type: ignore[no-untyped-def]
    listener, _, _, _ = running
    with socket.create_connection((listener.host, listener.port), timeout=5) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 411")


def test_parse_push_keeps_objects_only() -> None:
    assert parse_push(b'[{"a":1}, 2, "x", {"b":2}]') == [{"a": 1}, {"b": 2}]
    assert parse_push(b'[Infinity, {"v": NaN}]') == [{"v": "NaN"}]


def test_stop_is_idempotent() -> None:
    listener = TelemetryListener(0, Sink(), InvocationProgress(), Stats())
    listener.bind()
    assert listener.port > 0  # the port the system chose
    listener.start()
    assert listener.wait_serving(1.0)
    listener.stop()
    listener.stop()
    with pytest.raises(OSError):
        socket.create_connection((listener.host, listener.port), timeout=1)


def test_keep_alive_connection_serves_many_pushes(running) -> None:  # type: ignore[no-untyped-def]
    listener, sink, _, _ = running
    connection = http.client.HTTPConnection(listener.host, listener.port, timeout=5)
    for n in range(5):
        push = [{"time": "t", "type": "function", "record": f"push {n}\n"}]
        connection.request("POST", "/", body=json.dumps(push).encode())
        reply = connection.getresponse()
        assert reply.status == 200 and reply.read() == b""
        assert reply.getheader("Connection") is None  # kept open
    connection.close()
    assert len(sink.pushes) == 5


def test_a_push_lambda_sends_again_is_taken_once(running) -> None:  # type: ignore[no-untyped-def]
    """Lambda pushes again what it thinks was not taken (a late answer, one lost to a freeze)."""
    listener, sink, _, stats = running
    body = json.dumps(EVENTS).encode()
    assert [post(listener, body) for _ in range(3)] == [200, 200, 200]
    assert sink.pushes == [EVENTS] and stats.received == 2 and stats.resent == 2
    other = json.dumps([{"time": "t2", "type": "function", "record": "hello\n"}]).encode()
    assert post(listener, other) == 200 and len(sink.pushes) == 2


def test_a_push_of_more_events_than_lambda_sends_is_refused() -> None:
    sink = Sink()
    with serving(sink, max_events=10) as listener:
        many = [{"time": "t", "type": "function", "record": f"{i}\n"} for i in range(11)]
        assert post(listener, json.dumps(many).encode()) == 413
        assert post(listener, json.dumps(many[:10]).encode()) == 200
    assert [len(p) for p in sink.pushes] == [10]


def test_a_stalled_sender_does_not_hold_up_lambda(running) -> None:  # type: ignore[no-untyped-def]
    listener, sink, _, _ = running
    with socket.create_connection((listener.host, listener.port), timeout=5) as stalled:
        stalled.sendall(b"POST / HTTP/1.1\r\nContent-Length: 50\r\n\r\n[")  # and never the rest
        assert post(listener, json.dumps(EVENTS).encode()) == 200
    assert sink.pushes == [EVENTS]


def test_byte_by_byte_push_and_expect_continue(running) -> None:  # type: ignore[no-untyped-def]
    listener, sink, _, _ = running
    body = json.dumps(EVENTS).encode()
    head = f"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: {len(body)}\r\n\r\n"
    with socket.create_connection((listener.host, listener.port), timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in head.encode():
            sock.send(bytes([byte]))
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        assert sock.recv(100).startswith(b"HTTP/1.1 200 OK\r\n")
    assert sink.pushes == [EVENTS]


def test_oversized_push_is_answered_not_reset(running) -> None:  # type: ignore[no-untyped-def]
    listener, sink, _, stats = running
    body = b"[" + b" " * 2_000_000 + b"]"  # far beyond the 10,000-byte limit, sent in full
    with socket.create_connection((listener.host, listener.port), timeout=5) as sock:
        sock.sendall(f"POST / HTTP/1.1\r\nContent-Length: {len(body)}\r\n\r\n".encode())
        try:
            sock.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the listener stopped reading after its linger: the answer is still there
        assert sock.recv(100).startswith(b"HTTP/1.1 413 ")
    assert stats.dropped.get("oversized_push") == 1
    assert sink.pushes == []


def test_connections_beyond_the_cap_evict_the_least_recent(running) -> None:  # type: ignore[no-untyped-def]
    from lambda_logs_http.listener.loop import MAX_CONNECTIONS

    listener, sink, _, _ = running
    first = http.client.HTTPConnection(listener.host, listener.port, timeout=5)
    first.request("POST", "/", body=b"[]")  # served, so it is the least recently active
    assert first.getresponse().read() == b""
    idle = [first.sock]
    idle += [
        socket.create_connection((listener.host, listener.port), timeout=5)
        for _ in range(MAX_CONNECTIONS + 5)
    ]
    assert post(listener, json.dumps(EVENTS).encode()) == 200
    assert idle[0].recv(10) == b""  # the first one was closed to make room
    for sock in idle:
        sock.close()
    assert sink.pushes == [EVENTS]


def test_stop_is_prompt_with_connections_open() -> None:
    listener = TelemetryListener(0, Sink(), InvocationProgress(), Stats())
    listener.bind()
    listener.start()
    assert listener.wait_serving(1.0)
    with socket.create_connection((listener.host, listener.port), timeout=5) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nContent-Length: 50\r\n\r\n[")
        started = time.monotonic()
        listener.stop()
        assert time.monotonic() - started < 0.5
        try:  # closed, not left hanging (reset if our "[" was still unread)
            assert sock.recv(10) == b""
        except ConnectionResetError:
            pass
    with pytest.raises(OSError):
        socket.create_connection((listener.host, listener.port), timeout=1)


def test_a_peer_that_never_reads_its_answers_does_not_hold_up_lambda(running) -> None:  # type: ignore[no-untyped-def]
    listener, _, _, _ = running
    flood = socket.create_connection((listener.host, listener.port), timeout=5)
    pipelined = b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n[]" * 200_000  # 8 MB of requests

    def send_all() -> None:
        try:
            flood.sendall(pipelined)
        except OSError:
            pass  # the listener closed it in the end: what matters is Lambda's push below

    sender = threading.Thread(target=send_all)
    sender.start()
    # Wait until our answers stop arriving: the flooder's receive queue is full, and the
    # listener holds the rest and has stopped reading its requests.
    readings: list[int] = []

    def answers_stalled() -> bool:
        time.sleep(0.05)  # the interval between readings, not a guess at the state
        readings.append(unread_bytes(flood))
        return len(readings) >= 3 and readings[-1] > 0 and len(set(readings[-3:])) == 1

    wait_until(answers_stalled)
    started = time.monotonic()
    assert post(listener, json.dumps(EVENTS).encode()) == 200
    # Held up, the push would wait for its 5 s timeout; answered, it takes milliseconds (the
    # bound leaves room for a loaded 2-core CI machine: 1.3 s was seen under load).
    assert time.monotonic() - started < 3
    flood.close()
    sender.join(10)


def test_partial_requests_are_bounded_in_bytes_and_time(monkeypatch: pytest.MonkeyPatch) -> None:

    from lambda_logs_http.listener import loop

    monkeypatch.setattr(loop, "PARTIAL_IDLE_SECONDS", 0.5)
    sink = Sink()
    budget = 2 * 100_000 + 2 * loop._RECV_BYTES
    with serving(sink, max_body_bytes=100_000) as listener:
        stalled = []
        for _ in range(12):  # each holds a 99,999-byte partial body: together over the budget
            sock = socket.create_connection((listener.host, listener.port), timeout=5)
            sock.sendall(b"POST / HTTP/1.1\r\nContent-Length: 100000\r\n\r\n" + b" " * 99_999)
            stalled.append(sock)
        wait_until(lambda: all(unsent_bytes(sock) == 0 for sock in stalled))  # all delivered
        open_after = 0
        assert post(listener, json.dumps(EVENTS).encode()) == 200  # Lambda still served
        started = time.monotonic()
        for sock in stalled:  # each is closed, by the budget or after PARTIAL_IDLE_SECONDS
            sock.settimeout(2)
            try:
                open_after += sock.recv(10) != b""
            except ConnectionResetError:
                pass
            sock.close()
        assert open_after == 0 and time.monotonic() - started < 1.5
        assert budget < 12 * 100_000
    assert sink.pushes == [EVENTS]


def test_bare_lf_requests_are_refused(running) -> None:  # type: ignore[no-untyped-def]
    listener, _, _, _ = running
    with socket.create_connection((listener.host, listener.port), timeout=5) as sock:
        sock.sendall(b"POST / HTTP/1.1\nContent-Length: 2\n\n[]")
        assert sock.recv(100).startswith(b"HTTP/1.1 400 ")


def test_out_of_descriptors_pauses_accepting_instead_of_spinning(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """At the fd limit the listening socket stays readable: polling it again at once spins."""
    import subprocess
    import sys
    from pathlib import Path

    code = """
import os, resource, subprocess, sys, time
sys.path.insert(0, sys.argv[1])
from lambda_logs_http.listener.server import TelemetryListener
from lambda_logs_http.invocations import InvocationProgress
from lambda_logs_http.stats import Stats
listener = TelemetryListener(0, lambda events, size: True, InvocationProgress(), Stats())
listener.bind(); listener.start(); assert listener.wait_serving(2)
clients = subprocess.Popen([sys.executable, "-c",
    "import socket, sys, time; sys.stdin.readline();"
    " s = [socket.create_connection(('127.0.0.1', %s)) for _ in range(6)]; time.sleep(1.5)"
    % listener.port], stdin=subprocess.PIPE)
open_fds = len(os.listdir("/proc/self/fd"))
resource.setrlimit(resource.RLIMIT_NOFILE, (open_fds + 1, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
clients.stdin.write(b"go\\n"); clients.stdin.flush()  # connect only once the limit is set
started = time.process_time(); time.sleep(1.0)  # the CPU the listener uses in this second
print(round(time.process_time() - started, 2))
clients.wait()
os._exit(0)
"""
    out = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).resolve().parents[2])],
        capture_output=True,
        text=True,
        timeout=30,
    )
    lines = out.stdout.splitlines()  # the extension logs to stdout, as Lambda reads it
    cpu = [line for line in lines if not line.startswith("[EXTENSION]")]
    assert cpu and float(cpu[0]) < 0.2, out.stdout[-2000:] + out.stderr[-2000:]
    pauses = sum("pausing new connections" in line for line in lines)
    assert 1 <= pauses <= 3  # one line a pause, not one per spin


def test_worker_is_woken_only_after_the_answer_is_written() -> None:
    # The push is queued before the answer (a 200 is a promise) but the worker is woken only
    # once Lambda has its answer, so the two threads don't share the GIL while it waits.
    sink, progress, stats = Sink(), InvocationProgress(), Stats()
    woken = threading.Event()
    seen: list[tuple[int, bytes]] = []
    clients: list[socket.socket] = []

    def wake() -> None:
        client = clients[0]
        client.setblocking(False)
        try:
            peeked = client.recv(4096, socket.MSG_PEEK)
        except BlockingIOError:
            peeked = b""
        seen.append((len(sink.pushes), peeked))
        woken.set()

    body = json.dumps(EVENTS).encode()
    with serving(sink, progress, stats, wake_sink=wake) as listener, socket.create_connection(
        (listener.host, listener.port), timeout=5
    ) as sock:
        clients.append(sock)
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        assert woken.wait(5)  # read the answer only after the wake looked for it
        sock.settimeout(5)
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 200")
    assert len(seen) == 1
    queued, answer_already_sent = seen[0]
    assert queued == 1 and answer_already_sent.startswith(b"HTTP/1.1 200")


def test_no_wake_for_a_push_that_was_refused() -> None:
    sink = Sink()
    sink.accept = False
    wakes: list[int] = []
    with serving(sink, wake_sink=lambda: wakes.append(1)) as listener:
        assert post(listener, json.dumps(EVENTS).encode()) == 503
        assert post(listener, b"not json") == 400
    assert wakes == []


def test_a_request_dripped_a_byte_at_a_time_is_closed_at_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The partial-request limit counts from the request's first byte: a peer that sends a
    byte just before each idle timeout would otherwise hold the connection for ever."""
    from lambda_logs_http.listener import loop

    monkeypatch.setattr(loop, "PARTIAL_IDLE_SECONDS", 1.0)
    with serving(Sink()) as listener, socket.create_connection(
        (listener.host, listener.port), timeout=5
    ) as sock:
        started = time.monotonic()
        request = b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n" + b" " * 99
        closed = False
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            ready = select.select([sock], [], [], 0.3)[0]  # a byte every 0.3 s, < the limit
            if ready and sock.recv(100) in (b"",):
                closed = True
                break
        assert closed
        assert 0.9 < time.monotonic() - started < 2.5


# -- during init: pushes answered at once and kept unparsed --------------------------------------


def push_body(marker: str, request_id: str = "") -> bytes:
    events: list[dict[str, object]] = [{"time": "t", "type": "function", "record": marker}]
    if request_id:
        events.append({"time": "t", "type": "platform.runtimeDone",
                       "record": {"requestId": request_id, "status": "success"}})
    return json.dumps(events).encode()


def test_pushes_during_init_are_answered_and_kept_until_the_deferral_ends() -> None:
    sink, progress, stats = Sink(), InvocationProgress(), Stats()
    listener = TelemetryListener(0, sink, progress, stats)
    listener.defer_pushes()
    listener.bind()
    listener.start()
    try:
        assert post(listener, push_body("one")) == 200
        assert post(listener, push_body("two", request_id="r-1")) == 200
        assert post(listener, push_body("one")) == 200  # sent again: taken once
        assert post(listener, b"not json") == 200  # answered before it is parsed
        assert sink.pushes == [] and stats.received == 0
        assert stats.resent == 1
        listener.end_deferral()
        wait_until(lambda: len(sink.pushes) == 2)
        assert post(listener, push_body("three")) == 200
        wait_until(lambda: len(sink.pushes) == 3)
    finally:
        listener.stop()
    assert [push[0]["record"] for push in sink.pushes] == ["one", "two", "three"]
    assert stats.received == 4
    assert stats.dropped == {"malformed_push": 1}  # counted once parsed; Lambda had its 200
    assert progress.wait("r-1", deadline=time.monotonic() + 10, budget=0.0) == "budget"


def test_pushes_kept_during_init_go_to_the_sink_when_the_listener_stops() -> None:
    sink = Sink()
    listener = TelemetryListener(0, sink, InvocationProgress(), Stats())
    listener.defer_pushes()
    listener.bind()
    listener.start()
    try:
        assert post(listener, push_body("kept")) == 200
    finally:
        listener.stop()
    assert [push[0]["record"] for push in sink.pushes] == ["kept"]


def test_pushes_during_init_beyond_the_bound_end_the_deferral(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A function that logs a lot during init has its pushes parsed then, not held: past
    ``DEFERRED_MAX_COST`` (bytes + 400 an event, at most) the listener stops deferring and
    says so (the extension then starts delivery)."""
    from lambda_logs_http.listener import server

    body = push_body("x" * 1000)
    cost = len(body) + 400 * body.count(b"{")
    monkeypatch.setattr(server, "DEFERRED_MAX_COST", 2 * cost)
    sink = Sink()
    full: list[int] = []
    listener = TelemetryListener(0, sink, InvocationProgress(), Stats())
    listener.defer_pushes(on_full=lambda: full.append(len(sink.pushes)))
    listener.bind()
    listener.start()
    try:
        assert post(listener, body) == 200
        assert post(listener, body.replace(b"x", b"y")) == 200
        assert sink.pushes == [] and full == []
        assert post(listener, body.replace(b"x", b"z")) == 200
        assert full == [0]  # told before anything was parsed
        assert len(sink.pushes) == 3  # the kept ones first, then this one, all parsed now
        assert post(listener, body.replace(b"x", b"w")) == 200
        assert len(sink.pushes) == 4
    finally:
        listener.stop()
    assert [push[0]["record"][0] for push in sink.pushes] == ["x", "y", "z", "w"]


def test_the_listener_imports_no_json_while_it_defers() -> None:
    """During init the listener only answers: ``json`` (with ``re``, ``enum``...) is imported
    once the deferral ends, when the function's runtime no longer needs the CPU."""
    import subprocess
    import sys

    code = """
import http.client, sys
from lambda_logs_http.listener.server import TelemetryListener
from lambda_logs_http.invocations import InvocationProgress
from lambda_logs_http.stats import Stats
pushes = []
listener = TelemetryListener(0, lambda events, size: pushes.append(events) or True,
                             InvocationProgress(), Stats())
listener.defer_pushes()
listener.bind()
listener.start()
assert listener.wait_serving(5)
for n in range(3):
    connection = http.client.HTTPConnection(listener.host, listener.port, timeout=5)
    body = b'[{"time": "t", "type": "function", "record": "r%d"}]' % n
    connection.request("POST", "/", body=body)
    assert connection.getresponse().status == 200
    connection.close()
imported = "json" in sys.modules
listener.stop()
print(imported, len(pushes), "json" in sys.modules)
"""
    # http.client imports json's dependencies (re...) but not json itself.
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, check=True, cwd=str(Path(__file__).resolve().parents[2]))
    assert out.stdout.split() == ["False", "3", "True"], out.stderr
