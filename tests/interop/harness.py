"""One row of the interoperability suite: the built layer in the sandbox against one receiver.

The function is the fault matrix's (``FMK-<invocation>-<line>`` marker lines) and so is the
counting (``tests/faults/harness.Tally``: distinct lines delivered, extra copies). The timing is
the bench's (``tools/bench/sandbox_probe``): from the start of the push that carried an
invocation's ``platform.runtimeDone`` to the extension's next ``/event/next``, the time the
extension holds the invocation.

Beside it, the receiver's own round trip, measured from the test: POSTs of a median-size body the
extension sent (markers renamed, so they count as nothing), each after the idle time the
extension's sends follow (the median interval between runtimeDone pushes less the median
hold), on one kept-alive
``http.client`` connection. Two figures:

* ``rt``: ``TCP_QUICKACK`` re-armed once each request is written, so the client's own delayed
  ACK stays out of the figure: what the receiver takes to answer. This is the floor the
  extension is held to.
* ``rt_plain``: plain ``http.client``, as ``tools/bench`` measures its floor. Against a receiver
  that writes an answer's head and body separately with Nagle on, it carries the same ~40 ms
  delayed-ACK stall the extension must not have: it shows the stall is the receiver's shape.

A row that goes through a forward proxy measures both through it (absolute form or a tunnel).
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.faults.harness import EXTENSION, Tally, write_function
from tests.support.process import free_port
from tools.bench.sandbox_probe import SandboxProbe, last_next_at
from tools.lambda_sandbox import FunctionSpec, Sandbox

LINES = 20
"""Marker lines each invocation prints."""

WARMUP = 2
"""Invocations before the measured ones (they also pay connection set-up and TLS handshakes)."""

MEASURED = 10
"""Invocations timed per row."""

FLOOR_COUNT = 15
"""Round trips per figure of the receiver's own round trip."""

STALL_SLACK_MS = 3.0
"""What the extension may take beyond the receiver's round trip (median): its own work, the
push and ``/event/next``."""

DEFAULT_PERIOD_MS = 30.0
"""The floor's idle time when too few invocations were timed to measure their interval."""

_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


@dataclass
class Endpoint:
    """Where the extension sends, and what else a row needs to know about the way there."""

    url: str
    record: Path
    """The receiver's JSON-lines record of what it got."""
    ca_file: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    """Extension settings beyond ``HTTP_ENDPOINT`` and the CA (proxy variables, auth)."""
    headers: dict[str, str] = field(default_factory=dict)
    """Headers the floor's requests need (the receiver's auth)."""
    proxy: str | None = None
    """``http://[user:pass@]host:port`` of a forward proxy the floor must go through."""
    floor_url: str | None = None
    """Where the floor posts when not ``url`` (a redirect's target)."""


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "max": None, "n": 0}
    return {"median": round(statistics.median(values), 2), "max": round(max(values), 2),
            "n": len(values)}


def _typical_body(record: Path) -> str | None:
    """The extension's request body of median size (a floor timed with a body much smaller or
    larger than the ones it sends would not be the round trip its sends get)."""
    bodies = [json.loads(line)["body"] for line in record.read_text(encoding="utf-8").splitlines()
              if "FMK-" in line]
    bodies.sort(key=len)
    return bodies[len(bodies) // 2] if bodies else None


def _connection(endpoint: Endpoint) -> tuple[http.client.HTTPConnection, str, dict[str, str]]:
    """A connection for the floor, the request target to use on it, and the headers it needs."""
    url = endpoint.floor_url or endpoint.url
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    target = parts.path or "/"
    headers = {"Content-Type": "application/json", **endpoint.headers}
    context = None
    if parts.scheme == "https":
        context = ssl.create_default_context(
            cafile=str(endpoint.ca_file) if endpoint.ca_file else None)
    if not endpoint.proxy:
        if context is not None:
            return http.client.HTTPSConnection(host, port, timeout=30, context=context), \
                target, headers
        return http.client.HTTPConnection(host, port, timeout=30), target, headers
    proxy = urlsplit(endpoint.proxy)
    proxy_headers = {}
    if proxy.username:
        token = base64.b64encode(f"{proxy.username}:{proxy.password}".encode()).decode()
        proxy_headers["Proxy-Authorization"] = f"Basic {token}"
    if context is not None:
        connection = http.client.HTTPSConnection(proxy.hostname or "", proxy.port, timeout=30,
                                                 context=context)
        connection.set_tunnel(host, port, headers=proxy_headers)
        return connection, target, headers
    # An http:// endpoint through a proxy: absolute-form requests to the proxy.
    connection = http.client.HTTPConnection(proxy.hostname or "", proxy.port, timeout=30)
    return connection, url, {**headers, **proxy_headers}


def _connect(connection: http.client.HTTPConnection) -> None:
    connection.connect()
    assert connection.sock is not None
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as the extension


def round_trips(endpoint: Endpoint, body: bytes, count: int, pause_s: float, quickack: bool,
                warmup: int = 3) -> list[float]:
    """``count`` POST round trips (ms) on a kept-alive connection, after ``warmup``; each
    ``pause_s`` after the previous answer (see the module docstring for ``quickack``).

    A server that closes after each answer (``Connection: close``, or silently, as tinyproxy
    does) costs a new connection per request, for the extension as for anyone: the reconnect is
    timed with the request it serves.
    """
    connection, target, headers = _connection(endpoint)
    _connect(connection)
    closed = False
    times = []
    try:
        for index in range(warmup + count):
            time.sleep(pause_s)  # the idle time being reproduced, not a synchronisation
            started = time.monotonic()
            for attempt in (1, 2):
                try:
                    if closed:
                        connection.close()
                        _connect(connection)
                        closed = False
                    connection.request("POST", target, body=body, headers=headers)
                    if quickack and _QUICKACK is not None and connection.sock is not None:
                        connection.sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
                    response = connection.getresponse()
                    response.read()
                    break
                except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                    if attempt == 2:
                        raise
                    closed = True
            elapsed = (time.monotonic() - started) * 1000
            if response.status >= 300:
                raise RuntimeError(f"the receiver answered {response.status} to the floor")
            closed = response.will_close
            if index >= warmup:
                times.append(elapsed)
    finally:
        connection.close()
    return times


def run_row(layer: Path, directory: Path, endpoint: Endpoint, *, lines: int = LINES,
            warmup: int = WARMUP, measured: int = MEASURED,
            after: Callable[[], None] | None = None) -> dict[str, Any]:
    """Run the function ``warmup + measured`` times, frozen between invocations, against
    ``endpoint``; count and time what happened. ``after`` runs once the sandbox is shut down."""
    code_dir = write_function(directory / "code")
    env = {
        "HTTP_ENDPOINT": endpoint.url,
        "HTTP_LISTENER_PORT": str(free_port()),
        "HTTP_SPILL_DIR": str(directory / "spill"),
        **({"HTTP_CA_BUNDLE": str(endpoint.ca_file)} if endpoint.ca_file else {}),
        **endpoint.env,
    }
    expected: dict[int, int] = {}
    held: list[float] = []
    pushed_at: list[float] = []
    statuses: list[str] = []
    problems: list[str] = []
    tally = Tally(endpoint.record)
    tally.skip_existing()  # a second run against the same receiver counts only its own
    started = time.monotonic()
    with SandboxProbe() as probe:
        sandbox = Sandbox(layer, FunctionSpec(handler="app.handler", code_dir=code_dir), env,
                          function_name="interop-fn", freeze=True, timeout_s=10.0)
        try:
            init = sandbox.start()
            if not init.ok:
                raise RuntimeError(f"sandbox init failed: {init.error}; "
                                   + " | ".join(sandbox.extension_output[-5:]))
            for n in range(warmup + measured):
                probe.clear()
                expected[n] = lines
                result = sandbox.invoke({"n": n, "count": lines})
                statuses.append(result.status)
                if n < warmup:
                    continue
                pushed = probe.runtime_done_pushed_at(result.request_id)
                released = last_next_at(sandbox, EXTENSION)
                if pushed is None or released is None or released < pushed:
                    problems.append(f"invocation {n}: could not time runtimeDone -> next")
                    continue
                held.append((released - pushed) * 1000)
                pushed_at.append(pushed)
            tally.update(expected)
            delivered_before_shutdown = tally.delivered()
        finally:
            sandbox.shutdown()
        output = list(sandbox.extension_output)
    if after is not None:
        after()
    tally.update(expected)
    periods = [(b - a) * 1000 for a, b in zip(pushed_at, pushed_at[1:])]
    figures: dict[str, Any] = {
        "expected": sum(expected.values()),
        "delivered_before_shutdown": delivered_before_shutdown,
        "delivered": tally.delivered(),
        "duplicated": tally.duplicated(),
        "requests": tally.requests,
        "unexpected_markers": tally.unexpected,
        "statuses": statuses,
        "runtime_done_to_next_ms": _percentiles(held),
        "invocation_period_ms": _percentiles(periods),
        "problems": problems,
        "extension_errors": [line[:300] for line in output
                             if " ERROR " in line or " WARNING " in line][:5],
        "extension_output": output,
        "sandbox_s": round(time.monotonic() - started, 1),
    }
    figures.update(_floors(endpoint, figures))
    return figures


def _floors(endpoint: Endpoint, figures: Mapping[str, Any]) -> dict[str, Any]:
    """The receiver's own round trips (``rt``, ``rt_plain``), with the extension's typical body."""
    body = _typical_body(endpoint.record)
    if body is None:
        # Nothing arrived: time a body of the same shape the function would have sent.
        body = json.dumps({"logs": [{"message": f"RTT-0-{i}"} for i in range(LINES)]})
    payload = body.replace("FMK-", "RTT-").encode("utf-8")
    period = figures["invocation_period_ms"]["median"] or DEFAULT_PERIOD_MS
    # The extension's send follows the time between its release and the next push: the period
    # less what it held (a stalled row's period is inflated by the stall itself).
    pause = max(period - (figures["runtime_done_to_next_ms"]["median"] or 0), 5.0) / 1000
    try:
        return {
            "rt_ms": _percentiles(round_trips(endpoint, payload, FLOOR_COUNT, pause, True)),
            "rt_plain_ms": _percentiles(round_trips(endpoint, payload, FLOOR_COUNT, pause,
                                                    False)),
            "rt_pause_ms": round(pause * 1000, 1),
            "rt_body_bytes": len(payload),
            "rt_quickack": _QUICKACK is not None,
        }
    except (OSError, http.client.HTTPException, RuntimeError) as exc:
        return {"rt_ms": _percentiles([]), "rt_plain_ms": _percentiles([]),
                "rt_error": f"{type(exc).__name__}: {exc}"[:300]}


def stalls(figures: Mapping[str, Any]) -> bool | None:
    """Whether runtimeDone -> next (median) exceeds the receiver's round trip + slack; None
    when either could not be measured."""
    held = figures["runtime_done_to_next_ms"]["median"]
    floor = figures["rt_ms"]["median"]
    if held is None or floor is None:
        return None
    return held > floor + STALL_SLACK_MS

