"""A plain WSGI receiver, for gunicorn (``gunicorn wsgi_app:app``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Callable

from record import record


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ["REQUEST_METHOD"] == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        headers = [(k[5:].replace("_", "-"), v) for k, v in environ.items() if k.startswith("HTTP_")]
        record(headers, body)
        answer = b'{"ok": true}'
        content_type = "application/json"
    else:
        answer, content_type = b"ready", "text/plain"
    start_response("200 OK", [("Content-Type", content_type),
                              ("Content-Length", str(len(answer)))])
    return [answer]
