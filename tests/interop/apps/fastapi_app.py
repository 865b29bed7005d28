"""A FastAPI receiver whose route has no trailing slash (``uvicorn fastapi_app:app``).

Posting to ``/ingest/`` gets Starlette's ``307 Temporary Redirect`` to ``/ingest``, as any
FastAPI app answers a URL that differs from its route by the trailing slash.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from record import record

app = FastAPI()


@app.post("/ingest")
async def ingest(request: Request) -> dict[str, bool]:
    record(request.headers.items(), await request.body())
    return {"ok": True}


@app.get("/")
async def ready() -> str:
    return "ready"
