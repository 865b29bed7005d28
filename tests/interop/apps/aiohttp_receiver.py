"""An aiohttp receiver (``aiohttp.web``); prints ``LISTENING <port>`` once ready."""

from __future__ import annotations

import asyncio

from aiohttp import web
from record import record


async def ingest(request: web.Request) -> web.Response:
    record(request.headers.items(), await request.read())
    return web.json_response({"ok": True})


async def ready(request: web.Request) -> web.Response:
    return web.Response(text="ready")


async def main() -> None:
    app = web.Application()
    app.router.add_post("/{tail:.*}", ingest)
    app.router.add_get("/{tail:.*}", ready)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(f"LISTENING {port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
