"""The HTTP pieces the AWS tests wire in: a ``request`` callable over ``http.client``, and a real
local server that answers what a test scripts (AWS's error JSON, a credentials document...)."""

from __future__ import annotations

import http.client
import http.server
import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from urllib.parse import urlsplit


def http_request(
    method: str, url: str, headers: dict[str, str], body: bytes, timeout: float
) -> tuple[int, dict[str, str], bytes]:
    """The ``errors.Request`` contract over ``http.client``: headers sent as given."""
    parts = urlsplit(url)
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(parts.hostname or "", parts.port, timeout=timeout)
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        has_host = any(name.lower() == "host" for name in headers)
        connection.putrequest(method, target, skip_host=has_host, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


class Reply:
    """One scripted answer."""

    def __init__(self, status: int, body: bytes | dict[str, object] = b"",
                 headers: Mapping[str, str] | None = None) -> None:
        self.status = status
        self.body = json.dumps(body).encode() if isinstance(body, dict) else body
        self.headers = dict(headers or {})


class Seen:
    """One request as the server received it."""

    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body

    def json(self) -> object:
        return json.loads(self.body)


class ScriptedServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 answering ``replies`` in order (the last one
    again once they run out) and recording every request in ``seen``."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.seen: list[Seen] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                owner.seen.append(Seen(self.command, self.path, dict(self.headers.items()), body))
                reply = owner.replies.pop(0) if len(owner.replies) > 1 else owner.replies[0]
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST = _answer  # noqa: N815

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self._thread = threading.Thread(target=self._server.serve_forever, name="scripted",
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@contextmanager
def scripted_server(*replies: Reply) -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    server.replies.extend(replies)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def aws_error(status: int, code: str, message: str) -> Reply:
    """An error as AWS JSON 1.1 services send it."""
    return Reply(status, {"__type": f"com.amazonaws.service#{code}", "message": message},
                 {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": code})
