"""A plain ASGI receiver, for uvicorn and hypercorn (``asgi_app:app``)."""

from __future__ import annotations

from typing import Any, Callable

from record import record


async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["method"] == "POST":
        record(((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]), body)
        answer, content_type = b'{"ok": true}', b"application/json"
    else:
        answer, content_type = b"ready", b"text/plain"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", content_type),
                            (b"content-length", str(len(answer)).encode())]})
    await send({"type": "http.response.body", "body": answer})
