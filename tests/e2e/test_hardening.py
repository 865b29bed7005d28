"""Hostile receivers, settings and leftovers, end to end: the built layer in the local sandbox
(a real awslambdaric function, frozen between invocations), as tests/e2e/test_extension.py.

- A receiver whose error answers echo the request — headers, URL, and the credential in its
  base64, percent- and JSON-encoded forms — must not get a credential into anything the
  extension prints.
- Settings that used to pass the loader and then break every send are one configuration error
  and a function that keeps working.
- A malformed spill file left by an earlier process neither stops delivery nor is sent; it is
  moved aside and counted.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import pytest

from tools.lambda_sandbox import FunctionSpec, Sandbox
from tools.lambda_sandbox.receiver import Receiver

APP = '''
def handler(event, context):
    for i in range(event.get("lines", 2)):
        print(f"line-{event.get('n', 0)}-{i}")
    return {"n": event.get("n", 0)}
'''
# Characters that make every encoding differ from the value itself (a space, '/', '+', '"').
SECRET = 's3cr3t/Cred+val ue"x'
API_KEY = "k3y/4-the+query=ok"
PROXY_PASSWORD = "pr0xy pass/word"
EXTENSION_PYTHON = os.environ.get("E2E_EXTENSION_PYTHON", "")


def forms(value: str) -> list[str]:
    """``value`` as a receiver may write it back: as is and in every common encoding."""
    data = value.encode()
    b64 = base64.b64encode(data).decode()
    return [
        value, b64, b64.rstrip("="), base64.urlsafe_b64encode(data).decode(),
        urllib.parse.quote(value, safe=""), urllib.parse.quote(value),
        urllib.parse.quote_plus(value), json.dumps(value)[1:-1],
    ]


class EchoReceiver:
    """A real HTTP server that answers every request with ``status`` and a body echoing it:
    the request line, every header, and each header value in its encoded forms (so a line
    quoting the body would show the credential in each form). Answers 407 like a proxy when
    ``status`` is 407."""

    def __init__(self, status: int) -> None:
        self.requests: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                headers = dict(self.headers.items())
                receiver.requests.append({"target": self.path, "headers": headers})
                echoed = [self.requestline]
                for name, value in headers.items():
                    if name.lower() in ("authorization", "proxy-authorization", "x-api-key",
                                        "dd-api-key"):
                        echoed.append(f"{name}: {value}")
                        scheme, _, token = value.rpartition(" ")
                        if scheme == "Basic":  # the credential is the decoded pair
                            token = base64.b64decode(token).decode()
                        echoed.extend(forms(token))
                body = " | ".join(echoed).encode()
                self.send_response(receiver.status)
                if receiver.status == 407:
                    self.send_header("Proxy-Authenticate", 'Basic realm="echo"')
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.status = status
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "code"
    directory.mkdir()
    (directory / "app.py").write_text(APP)
    return directory


@pytest.fixture
def start(
    real_layer: Path, code_dir: Path, tmp_path: Path
) -> Iterator[Callable[[dict[str, str]], Sandbox]]:
    """Start a sandbox running the real layer with ``env``; always shut down."""
    made: list[Sandbox] = []

    def starting(env: dict[str, str]) -> Sandbox:
        settings = {
            "HTTP_LISTENER_PORT": "0",
            "HTTP_SPILL_DIR": str(tmp_path / "spill"),
            **({"LAMBDA_LOGS_HTTP_PYTHON": EXTENSION_PYTHON} if EXTENSION_PYTHON else {}),
            **env,
        }
        sandbox = Sandbox(real_layer, FunctionSpec(handler="app.handler", code_dir=code_dir),
                          settings, function_name="hardening-fn")
        made.append(sandbox)
        init = sandbox.start()
        assert init.ok, (init, sandbox.extension_output)
        return sandbox

    yield starting
    for sandbox in made:
        sandbox.shutdown()


def printed(sandbox: Sandbox) -> str:
    return "\n".join([*sandbox.extension_output, *sandbox.function_output])


AUTH_CASES = {
    "bearer, 401": ({"HTTP_AUTH_TYPE": "bearer"}, 401, [SECRET]),
    "basic, 500": ({"HTTP_AUTH_TYPE": "basic", "HTTP_AUTH_USERNAME": "alice"}, 500,
                   [SECRET, f"alice:{SECRET}"]),
    "apikey, 401": ({"HTTP_AUTH_TYPE": "apikey"}, 401, [SECRET]),
    "apikey in DD-API-KEY, 500": ({"HTTP_AUTH_TYPE": "apikey",
                                   "HTTP_AUTH_HEADER_NAME": "DD-API-KEY"}, 500, [SECRET]),
    "api_key in the query, 401": ({"HTTP_AUTH_TYPE": "none"}, 401, [API_KEY]),
}


@pytest.mark.parametrize("case", list(AUTH_CASES))
def test_a_receiver_echoing_the_request_gets_no_secret_into_the_output(
    case: str, start: Callable[[dict[str, str]], Sandbox]
) -> None:
    settings, status, secrets = AUTH_CASES[case]
    echo = EchoReceiver(status)
    try:
        query = urllib.parse.urlencode({"api_key": API_KEY, "format": "json"})
        sandbox = start({"HTTP_ENDPOINT": f"http://127.0.0.1:{echo.port}/ingest?{query}",
                         "HTTP_AUTH_CREDENTIALS": SECRET, "HTTP_EXTENSION_LOG_LEVEL": "debug",
                         "HTTP_FLUSH_BUDGET_MS": "300", **settings})
        for n in range(2):
            assert sandbox.invoke({"n": n}).response == {"n": n}
        sandbox.shutdown()
    finally:
        echo.stop()
    assert echo.requests, "the receiver was never reached"
    output = printed(sandbox)
    assert f"HTTP {status}: POST /ingest?api_key=***" in output  # its body was logged...
    for secret in [*secrets, API_KEY]:
        for form in forms(secret):
            assert form not in output, (form, output)  # ...without a secret in any form


def test_a_proxy_echoing_its_credentials_gets_no_password_into_the_output(
    start: Callable[[dict[str, str]], Sandbox], receiver: Receiver
) -> None:
    proxy = EchoReceiver(407)
    password = urllib.parse.quote(PROXY_PASSWORD, safe="")
    try:
        sandbox = start({"HTTP_ENDPOINT": receiver.url, "HTTP_FLUSH_BUDGET_MS": "300",
                         "HTTP_PROXY": f"http://bob:{password}@127.0.0.1:{proxy.port}"})
        sandbox.invoke({"n": 1})
        sandbox.shutdown()
    finally:
        proxy.stop()
    assert proxy.requests and proxy.requests[0]["headers"]["Proxy-Authorization"]
    output = printed(sandbox)
    assert "refused its credentials: HTTP 407" in output
    for secret in (PROXY_PASSWORD, password, f"bob:{PROXY_PASSWORD}"):
        for form in forms(secret):
            assert form not in output, (form, output)


def test_test_mode_prints_no_secret_in_any_form(
    start: Callable[[dict[str, str]], Sandbox], receiver: Receiver
) -> None:
    query = urllib.parse.urlencode({"api_key": API_KEY})
    sandbox = start({"HTTP_ENDPOINT": f"{receiver.url}?{query}", "HTTP_TEST_MODE": "true",
                     "HTTP_AUTH_TYPE": "basic", "HTTP_AUTH_USERNAME": "alice",
                     "HTTP_AUTH_CREDENTIALS": SECRET})
    sandbox.invoke({"n": 1})
    sandbox.shutdown()
    output = printed(sandbox)
    assert "TEST MODE would POST" in output and "shutdown summary" in output
    for secret in (SECRET, f"alice:{SECRET}", API_KEY):
        for form in forms(secret):
            assert form not in output, (form, output)


BAD_SETTINGS = {
    "HTTP_TIMEOUT_SECONDS=1e308": ({"HTTP_TIMEOUT_SECONDS": "1e308"}, "HTTP_TIMEOUT_SECONDS"),
    "huge HTTP_BATCH_MAX_AGE_MS": ({"HTTP_BATCH_MAX_AGE_MS": "9" * 40}, "HTTP_BATCH_MAX_AGE_MS"),
    "a bearer token 日本": ({"HTTP_AUTH_TYPE": "bearer", "HTTP_AUTH_CREDENTIALS": "日本"},
                          "HTTP_AUTH_CREDENTIALS"),
    "HTTP_AUTH_HEADER_NAME=Content-Length": (
        {"HTTP_AUTH_TYPE": "apikey", "HTTP_AUTH_CREDENTIALS": "k-123456",
         "HTTP_AUTH_HEADER_NAME": "Content-Length"}, "HTTP_AUTH_HEADER_NAME"),
    "HTTP_CA_BUNDLE=/etc/passwd": ({"HTTP_CA_BUNDLE": "/etc/passwd"}, "HTTP_CA_BUNDLE"),
    "HTTP_STRICT_CONFIG=yes please": ({"HTTP_STRICT_CONFIG": "yes please"}, "HTTP_STRICT_CONFIG"),
}


@pytest.mark.parametrize("case", list(BAD_SETTINGS))
def test_a_setting_the_sender_would_reject_is_one_error_and_the_function_works(
    case: str, start: Callable[[dict[str, str]], Sandbox], receiver: Receiver
) -> None:
    settings, variable = BAD_SETTINGS[case]
    sandbox = start({"HTTP_ENDPOINT": receiver.url, **settings})
    results = [sandbox.invoke({"n": n}) for n in range(2)]
    assert [r.response for r in results] == [{"n": 0}, {"n": 1}]
    shutdown = sandbox.shutdown()
    assert shutdown.exit_codes["lambda-logs-http"] == 0 and not shutdown.killed
    errors = [line for line in sandbox.extension_output if "configuration error" in line]
    assert len(errors) == 1, sandbox.extension_output
    assert errors[0].startswith(f"[EXTENSION] ERROR configuration error: {variable}: ")
    assert "Traceback" not in printed(sandbox) and receiver.requests() == []
    (registration,) = sandbox.registrations
    assert registration.events == ("SHUTDOWN",)


def test_a_malformed_spill_file_from_an_earlier_process_is_moved_aside_and_delivery_goes_on(
    start: Callable[[dict[str, str]], Sandbox], receiver: Receiver, tmp_path: Path
) -> None:
    spill = tmp_path / "spill"
    spill.mkdir(mode=0o755)  # as an earlier version left it

    def leftover(stamp: int, batch_id: str, header: dict[str, Any], body: bytes) -> Path:
        path = spill / f"{stamp:020d}-{batch_id}.batch"
        path.write_bytes(json.dumps(header).encode() + b"\n" + body)
        path.chmod(0o644)
        return path

    def entry(message: str, **extra: Any) -> bytes:
        return json.dumps({"timestamp": "2024-01-15T10:30:00.000Z", "level": "INFO",
                           "message": message, "log_type": "function", **extra}).encode()

    header = {"format": "lambda-logs-http/spill/1", "records": 1, "spilled_at": 1.0}
    bad = [
        leftover(1, "old-1", {**header, "batch_id": "old-1", "records": None}, entry("null")),
        leftover(2, "old-2", {**header, "batch_id": "old-2", "injected": "x"}, entry("extra")),
        leftover(3, "old-3", {**header, "batch_id": "old-3", "records": 2},
                 entry("breakout") + b'],"injected":[' + entry("x")),
    ]
    good = leftover(4, "old-4", {**header, "batch_id": "old-4"}, entry("kept-from-earlier"))
    sandbox = start({"HTTP_ENDPOINT": receiver.url})
    result = sandbox.invoke({"n": 1})
    assert result.response == {"n": 1}
    got = [e["message"] for e in receiver.entries()]  # frozen now: sent before release
    assert "kept-from-earlier" in got and {"line-1-0", "line-1-1"} <= set(got)
    assert not {"null", "extra", "breakout", "x"} & set(got)
    bodies = [json.loads(r["body"]) for r in receiver.requests()]
    assert all(set(body) == {"logs", "source", "timestamp"} for body in bodies)
    sandbox.shutdown()
    assert not any(path.exists() for path in [*bad, good])
    assert len(list((spill / "rejected").iterdir())) == 3
    assert stat.S_IMODE(spill.stat().st_mode) == 0o700
    output = printed(sandbox)
    assert "moved 2 invalid spill files" in output  # found at start: their headers are wrong
    assert "00000000000000000003-old-3.batch" in output  # its payload, when it was read
    assert "spill_invalid=4" in output  # 1 + 1 + the 2 records old-3 claimed
    assert "Traceback" not in output
    reports = [e for e in receiver.entries() if e["message"].startswith("LOGS_DROPPED")]
    assert reports and reports[0]["record"]["reason"] == "spill_invalid"
