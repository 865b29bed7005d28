"""Every row: the built layer in the sandbox (frozen between invocations) against one real
receiver, or through one real forward proxy. Figures are written before the assertions, so a
failing row still shows in the table with what it measured (``report.py``).

What each row asserts, as the extension promises it:

* every line the function printed reached the receiver before its invocation was released
  (counted while the environment is frozen after the last one), none twice;
* no stall: runtimeDone → ``/event/next`` (median) ≤ the receiver's own round trip + 3 ms;
* through a proxy: delivered, and the proxy saw the requests — only the endpoint's, never the
  Lambda APIs' (those are on the loopback and must not go through it); with ``NO_PROXY``
  covering the endpoint, the proxy saw nothing. A proxy password never appears in the output.

A row that fails for a reason outside the extension is ``xfail(strict=True)`` with the reason
and the evidence: should it ever pass, strict turns that into a failure until the mark goes.
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import Results
from tests.interop import servers
from tests.interop.conftest import INVALID_HOST
from tests.interop.harness import STALL_SLACK_MS, Endpoint, run_row, stalls
from tests.support.fixtures import BASIC_AUTH
from tests.support.tls import TlsMaterial

PIP_HINT = "pip install -r requirements-dev.txt"
PROXY_CREDENTIALS = ("relay", "pr0xy-s3cret")
"""tinyproxy's basic auth (throwaway: it guards a test process only)."""


@dataclass
class Setup:
    """What a row's start function gets: a directory, the TLS material, the stack that stops
    every server it starts."""

    directory: Path
    tls: TlsMaterial
    invalid_tls: TlsMaterial
    stack: ExitStack

    def own(self, server: Any) -> Any:
        self.stack.callback(server.stop)
        return server


@dataclass
class Case:
    """A started row: where the extension sends, and the proxy it must (or must not) use."""

    endpoint: Endpoint
    proxy: Any = None
    proxied: str | None = None
    """What the proxy must have been asked for: ``"POST <url>"`` or ``"CONNECT host:port"``;
    None with a proxy: it must have been asked for nothing (``NO_PROXY``)."""
    secret: str | None = None


@dataclass(frozen=True)
class Row:
    id: str
    title: str
    start: Callable[[Setup], Case]
    needs: tuple[tuple[str, str], ...] = ()
    """``("module:NAME" | "program:NAME", install hint)``: skipped when missing."""
    xfail: str | None = None
    strict: bool = True
    """False for a row whose outcome sits at the bound for a reason outside the extension."""


def _module(name: str) -> tuple[str, str]:
    return (f"module:{name}", f"{PIP_HINT} ({name})")


def _program(name: str, package: str) -> tuple[str, str]:
    return (f"program:{name}", f"Debian: apt-get install {package}")


# --- receivers ---------------------------------------------------------------------------------


def _app(name: str, script: str, *args: str, tls: bool = False) -> Callable[[Setup], Case]:
    def start(setup: Setup) -> Case:
        extra = ["--tls", str(setup.tls.cert_file), str(setup.tls.key_file)] if tls else []
        receiver = setup.own(servers.app_receiver(
            name, servers.python_app(script, *args, *extra), setup.directory,
            tls_ca=setup.tls.ca_file if tls else None))
        return Case(Endpoint(receiver.url, receiver.record, receiver.ca_file))
    return start


def _served(name: str, argv: list[str], listening: str, path: str = "/ingest",
            floor_path: str | None = None) -> Callable[[Setup], Case]:
    """A server binding port 0 itself and logging the port (``listening`` matches it)."""
    def start(setup: Setup) -> Case:
        receiver = setup.own(servers.app_receiver(name, argv, setup.directory, path=path,
                                                  listening=listening))
        floor = receiver.url.replace(path, floor_path) if floor_path else None
        return Case(Endpoint(receiver.url, receiver.record, floor_url=floor))
    return start


GUNICORN = r"Listening at: http://127\.0\.0\.1:(\d+)"
UVICORN = r"Uvicorn running on http://127\.0\.0\.1:(\d+)"
HYPERCORN = r"Running on http://127\.0\.0\.1:(\d+)"


def _node(setup: Setup) -> Case:
    receiver = setup.own(servers.app_receiver(
        "node", ["node", str(servers.APPS / "node_receiver.js")], setup.directory))
    return Case(Endpoint(receiver.url, receiver.record))


def _nginx_sink(setup: Setup) -> Case:
    receiver = setup.own(servers.nginx_sink(setup.directory))
    return Case(Endpoint(receiver.url, receiver.record))


def _nginx_front(setup: Setup) -> Case:
    receiver = setup.own(servers.nginx_front(setup.directory, setup.tls, BASIC_AUTH))
    auth = {"HTTP_AUTH_TYPE": "basic", "HTTP_AUTH_USERNAME": BASIC_AUTH[0],
            "HTTP_AUTH_CREDENTIALS": BASIC_AUTH[1]}
    token = base64.b64encode(":".join(BASIC_AUTH).encode()).decode()
    return Case(Endpoint(receiver.url, receiver.record, receiver.ca_file, env=auth,
                         headers={"Authorization": f"Basic {token}"}))


def _caddy(setup: Setup) -> Case:
    receiver = setup.own(servers.caddy_front(setup.directory))
    return Case(Endpoint(receiver.url, receiver.record, receiver.ca_file))


def _python_m(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


# --- forward proxies ---------------------------------------------------------------------------


def _tinyproxy_http(setup: Setup) -> Case:
    receiver = setup.own(servers.capture_receiver(setup.directory / "capture"))
    proxy = setup.own(servers.Tinyproxy(setup.directory, PROXY_CREDENTIALS))
    env = {"HTTP_PROXY": proxy.url()}
    return Case(Endpoint(receiver.url, receiver.record, env=env, proxy=proxy.url()), proxy,
                proxied=f"POST {receiver.url}", secret=PROXY_CREDENTIALS[1])


def _tinyproxy_connect(setup: Setup) -> Case:
    receiver = setup.own(servers.nginx_front(setup.directory, setup.tls, None))
    proxy = setup.own(servers.Tinyproxy(setup.directory))
    env = {"HTTPS_PROXY": proxy.url(), "HTTP_PROXY": proxy.url()}
    return Case(Endpoint(receiver.url, receiver.record, receiver.ca_file, env=env,
                         proxy=proxy.url()), proxy, proxied=f"CONNECT 127.0.0.1:{receiver.port}")


def _mitmproxy_http(setup: Setup) -> Case:
    receiver = setup.own(servers.capture_receiver(setup.directory / "capture"))
    name = f"{INVALID_HOST}:{receiver.port}"
    proxy = setup.own(servers.MitmProxy(setup.directory, {name: ("127.0.0.1", receiver.port)}))
    url = f"http://{name}/ingest"
    env = {"http_proxy": proxy.url(), "HTTP_PROXY": "http://127.0.0.1:9"}  # lowercase first
    return Case(Endpoint(url, receiver.record, env=env, proxy=proxy.url()), proxy,
                proxied=f"POST {url}")


def _mitmproxy_connect(setup: Setup) -> Case:
    receiver = setup.own(servers.nginx_front(setup.directory, setup.invalid_tls, None))
    name = f"{INVALID_HOST}:{receiver.port}"
    proxy = setup.own(servers.MitmProxy(setup.directory, {name: ("127.0.0.1", receiver.port)}))
    env = {"https_proxy": proxy.url()}
    return Case(Endpoint(f"https://{name}/ingest", receiver.record, setup.invalid_tls.ca_file,
                         env=env, proxy=proxy.url()), proxy, proxied=f"CONNECT {name}")


def _no_proxy(setup: Setup) -> Case:
    receiver = setup.own(servers.capture_receiver(setup.directory / "capture"))
    proxy = setup.own(servers.Tinyproxy(setup.directory))
    env = {"HTTP_PROXY": proxy.url(), "HTTPS_PROXY": proxy.url(),
           "NO_PROXY": "example.com,127.0.0.1"}
    return Case(Endpoint(receiver.url, receiver.record, env=env), proxy, proxied=None)


TINYPROXY_RELAY = (
    "tinyproxy relays a request in 2 KiB writes with Nagle on, and the receiver (nginx) delays "
    "its ACK of the first: any request over ~2 KiB waits ~40 ms between the proxy and the "
    "receiver, whoever sends it (http.client with or without TCP_QUICKACK measures the same; "
    "seen with tcpdump on the proxy-to-nginx connection). Nothing the client does can change it; "
    "the floor, timed through the same tunnel with the same bodies, carries the same wait, so "
    "the row sits at its bound (round trip + 3 ms) and may pass or not."
)

ROWS = [
    Row("stdlib-1.0", "CPython http.server, HTTP/1.0 (closes after each answer)",
        _app("stdlib-1.0", "stdlib_receiver.py")),
    Row("stdlib-1.1", "CPython http.server, HTTP/1.1, Nagle on",
        _app("stdlib-1.1", "stdlib_receiver.py", "--http11")),
    Row("stdlib-1.1-tls", "CPython http.server, HTTP/1.1, Nagle on, TLS",
        _app("stdlib-1.1-tls", "stdlib_receiver.py", "--http11", tls=True)),
    Row("stdlib-1.1-nodelay", "CPython http.server, HTTP/1.1, disable_nagle_algorithm = True",
        _app("stdlib-1.1-nodelay", "stdlib_receiver.py", "--http11", "--nodelay")),
    Row("werkzeug", "Werkzeug (threaded dev server)",
        _app("werkzeug", "werkzeug_receiver.py"), needs=(_module("werkzeug"),)),
    Row("gunicorn-sync", "gunicorn, sync worker (WSGI)",
        _served("gunicorn-sync", _python_m(
            "gunicorn", "--bind", "127.0.0.1:0", "--workers", "1", "--worker-class", "sync",
            "wsgi_app:app"), GUNICORN), needs=(_module("gunicorn"),)),
    Row("gunicorn-gthread", "gunicorn, gthread worker (WSGI)",
        _served("gunicorn-gthread", _python_m(
            "gunicorn", "--bind", "127.0.0.1:0", "--workers", "1", "--worker-class", "gthread",
            "--threads", "4", "wsgi_app:app"), GUNICORN), needs=(_module("gunicorn"),)),
    Row("uvicorn-h11", "uvicorn, h11 (ASGI)",
        _served("uvicorn-h11", _python_m(
            "uvicorn", "--host", "127.0.0.1", "--port", "0", "--http", "h11", "--no-access-log",
            "asgi_app:app"), UVICORN),
        needs=(_module("uvicorn"), _module("h11"))),
    Row("uvicorn-httptools", "uvicorn, httptools (ASGI)",
        _served("uvicorn-httptools", _python_m(
            "uvicorn", "--host", "127.0.0.1", "--port", "0", "--http", "httptools",
            "--no-access-log", "asgi_app:app"), UVICORN), needs=(_module("uvicorn"), _module("httptools"))),
    Row("hypercorn", "Hypercorn (ASGI, asyncio worker)",
        _served("hypercorn", _python_m("hypercorn", "--bind", "127.0.0.1:0", "asgi_app:app"),
                HYPERCORN), needs=(_module("hypercorn"),)),
    Row("aiohttp", "aiohttp.web", _app("aiohttp", "aiohttp_receiver.py"),
        needs=(_module("aiohttp"),)),
    Row("node", "Node.js http", _node, needs=(_program("node", "nodejs"),)),
    Row("nginx", "nginx answering itself (body logged)", _nginx_sink,
        needs=(_program("nginx", "nginx-light"),)),
    Row("nginx-proxy", "nginx (TLS, basic auth) as reverse proxy → capture receiver",
        _nginx_front, needs=(_program("nginx", "nginx-light"), _program("htpasswd",
                                                                         "apache2-utils"))),
    Row("caddy", "Caddy (tls internal, admin off) as reverse proxy → capture receiver", _caddy,
        needs=(_program("caddy", "caddy"),)),
    Row("fastapi-307", "FastAPI on uvicorn, HTTP_ENDPOINT with a trailing slash (307)",
        _served("fastapi-307", _python_m(
            "uvicorn", "--host", "127.0.0.1", "--port", "0", "--no-access-log",
            "fastapi_app:app"), UVICORN, path="/ingest/", floor_path="/ingest"),
        needs=(_module("fastapi"), _module("uvicorn"))),
    Row("tinyproxy-http", "tinyproxy, HTTP_PROXY with user:password, http:// endpoint",
        _tinyproxy_http, needs=(_program("tinyproxy", "tinyproxy"),)),
    Row("tinyproxy-connect", "tinyproxy, HTTPS_PROXY (CONNECT), https:// endpoint (nginx)",
        _tinyproxy_connect, needs=(_program("tinyproxy", "tinyproxy"),
                                   _program("nginx", "nginx-light")),
        xfail=TINYPROXY_RELAY, strict=False),
    Row("mitmproxy-http", "mitmproxy regular mode, http_proxy, endpoint resolvable only there",
        _mitmproxy_http, needs=(_module("mitmproxy"),)),
    Row("mitmproxy-connect",
        "mitmproxy regular mode, https_proxy (CONNECT, TLS passed through), endpoint "
        "resolvable only there", _mitmproxy_connect,
        needs=(_module("mitmproxy"), _program("nginx", "nginx-light"))),
    Row("no-proxy", "tinyproxy set, NO_PROXY covers the endpoint: sent directly", _no_proxy,
        needs=(_program("tinyproxy", "tinyproxy"),)),
]


def _missing(row: Row) -> str | None:
    for need, hint in row.needs:
        kind, name = need.split(":", 1)
        absent = servers.missing_module(name) if kind == "module" else \
            servers.missing_program(name)
        if absent:
            return f"{name} is not installed ({hint})"
    return None


TIMING_RUNS = 3


def _margin(figures: dict[str, Any]) -> float:
    """How far a run's hold is above its floor (ms; large when either is unknown)."""
    held, floor = figures["runtime_done_to_next_ms"]["median"], figures["rt_ms"]["median"]
    return held - floor if held is not None and floor is not None else float("inf")


def _only_slow(figures: dict[str, Any]) -> bool:
    """Whether a run met everything but the timing bound."""
    held, floor = figures["runtime_done_to_next_ms"]["median"], figures["rt_ms"]["median"]
    complete = (figures["unexpected_markers"] == 0 and figures["duplicated"] == 0
                and figures["delivered_before_shutdown"] == figures["expected"])
    return complete and held is not None and floor is not None and held > floor + STALL_SLACK_MS


def _param(row: Row) -> Any:
    # raises=AssertionError: a row that breaks another way (a server that did not start) is a
    # failure, not the expected one.
    marks = ([pytest.mark.xfail(strict=row.strict, raises=AssertionError, reason=row.xfail)]
             if row.xfail else [])
    return pytest.param(row, id=row.id, marks=marks)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("row", [_param(row) for row in ROWS])
def test_row(row: Row, real_layer: Path, tls_material: TlsMaterial,
             invalid_host_tls: TlsMaterial, results: Results, stack: ExitStack,
             tmp_path: Path) -> None:
    base = {"row": row.id, "title": row.title, "xfail_reason": row.xfail}
    missing = _missing(row)
    if missing:
        results.write({**base, "skipped": missing})
        pytest.skip(missing)
    case = row.start(Setup(tmp_path, tls_material, invalid_host_tls, stack))
    # The proxy's log spans every run against it: each run keeps the part logged during it.
    logged: Callable[[], list[tuple[str, str]]] = (
        case.proxy.requests if case.proxy else lambda: [])

    def measure(directory: Path) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        seen: list[tuple[str, str]] = []
        before = len(logged())
        figures = run_row(real_layer, directory, case.endpoint,
                          after=(lambda: seen.extend(logged()[before:])) if case.proxy else None)
        return figures, seen

    figures, proxy_seen = measure(tmp_path / "run-1")
    runs = 1
    while not row.xfail and _only_slow(figures) and runs < TIMING_RUNS:
        # A stall is ~40 ms; a loaded machine adds a few ms to a good run, never takes them
        # away. So a run that met everything but the timing bound is measured again (a fresh
        # sandbox against the same receiver), up to TIMING_RUNS in all, and the run judged is
        # the one closest to its floor; the table says how many were made.
        runs += 1
        again, seen = measure(tmp_path / f"run-{runs}")
        if _margin(again) < _margin(figures):
            figures, proxy_seen = again, seen
        figures["runs"] = runs
    output = figures.pop("extension_output")
    leaked = bool(case.secret) and any(case.secret in line for line in output)
    proxied = sum(1 for method, target in proxy_seen
                  if case.proxied and f"{method} {target}" == case.proxied)
    others = [f"{m} {t}" for m, t in proxy_seen if not case.proxied
              or f"{m} {t}" != case.proxied]
    results.write({**base, **figures, "stalls": stalls(figures), "proxy": bool(case.proxy),
                   "proxied": proxied, "proxy_other_requests": others[:5],
                   "secret_leaked": leaked})

    assert figures["unexpected_markers"] == 0, figures
    assert figures["delivered_before_shutdown"] == figures["expected"], (
        f"{figures['delivered_before_shutdown']}/{figures['expected']} lines delivered; "
        f"extension said: {figures['extension_errors']}")
    assert figures["duplicated"] == 0, figures
    held, floor = figures["runtime_done_to_next_ms"]["median"], figures["rt_ms"]["median"]
    assert held is not None and floor is not None, figures
    assert held <= floor + STALL_SLACK_MS, (
        f"runtimeDone -> next median {held} ms > receiver round trip {floor} ms "
        f"+ {STALL_SLACK_MS} ms")
    if case.proxy is not None:
        assert not others, f"the proxy was asked for other things: {others}"
        if case.proxied and case.proxied.startswith("POST"):
            assert proxied == figures["requests"], (proxied, figures["requests"])
        elif case.proxied:
            assert proxied >= 1, proxy_seen
    assert not leaked, "the proxy password appeared in the extension's output"
