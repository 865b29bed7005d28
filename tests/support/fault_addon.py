"""mitmdump addon: inject faults into requests bound for the capture receiver (see faults.py).

It runs inside mitmdump (``-s fault_addon.py --set faults_dir=DIR``), never in the test process.
The test steers it through ``DIR/control.json``, which it re-reads (a few hundred bytes)
before every decision and every 50 ms, so a change written before a request is sent applies to
that request, and a change still applies while the listener is closed ("refuse" mode), when no
request can carry it. The file, written whole by ``FaultProxy`` (atomic rename)::

    {"version": 3, "steps": [...], "down": null | "kill" | "refuse", "release": 0}

A new ``version`` replaces the script of steps. Each request takes the first step left (a step
with ``"times": N`` serves N requests, default 1); with none left it is forwarded. Steps:

* ``{}``: forward unchanged (to let some requests through before a fault).
* ``{"status": 503, "retry_after": "2", "body": "..."}``: answer at once, never forwarding.
* ``{"delay": 1.5}``: wait, then forward.
* ``{"hang": true}``: hold the request without answering until ``release`` grows (then forward)
  or the proxy stops. ``{"hang": 4}``: the same, but after 4 s drop the connection unanswered.
  A client that closes its connection while held (its timeout) ends the hold: nothing is
  forwarded later. One that keeps the socket open gets the request forwarded on release.
* ``{"kill": true}``: drop the connection instead of forwarding: the upstream never sees it.
* ``{"kill_after": true}``: forward, then drop the connection instead of relaying the answer:
  the upstream got the request but the client sees a failure (duplicates, idempotency).

``down``: ``"kill"`` closes every new connection as soon as it is accepted and kills requests on
open ones; ``"refuse"`` also closes the listener, so connecting fails with ECONNREFUSED, and
reopens it on the same port when ``down`` goes back to ``null``.

What it did is appended to ``DIR/events.jsonl``, one JSON object a line: ``action`` (``forward``,
``status``, ``kill``, ``kill_after``, ``hang_timeout``, ``client_gone``, ``stopping``, ``down``;
``down_connect`` for a connection closed on accept, which has no ``path``), ``method``, ``path``,
``status`` (sent by us, or the upstream's for ``forward`` and ``kill_after``) and ``time``. Once listening, it writes
``DIR/ready.json`` with the port (it listens on port 0, so no port is ever raced for).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Optional

from mitmproxy import connection, ctx, http

POLL_INTERVAL = 0.05
"""Seconds between control file reads while nothing else happens (and in a hold)."""

_log = logging.getLogger(__name__)


class Faults:
    """The addon: reads the control file, picks a step per request, acts, records the action."""

    def __init__(self) -> None:
        self.directory: Path | None = None
        self.version: Any = None
        self.steps: list[dict[str, Any]] = []
        self.down: str | None = None
        self.release = 0
        self.port = 0
        self.listening = True
        self.stopping = False
        self._control_text = ""
        self._poller: asyncio.Task[None] | None = None

    # --- mitmproxy hooks ------------------------------------------------------------------------

    def load(self, loader: Any) -> None:
        loader.add_option("faults_dir", Optional[str], None,
                          "Directory of control.json, events.jsonl and ready.json.")

    def configure(self, updated: set[str]) -> None:
        if "faults_dir" in updated and ctx.options.faults_dir:
            self.directory = Path(ctx.options.faults_dir)

    def running(self) -> None:
        assert self.directory is not None, "faults_dir is required"
        addresses = ctx.master.addons.get("proxyserver").listen_addrs()
        self.port = int(addresses[0][1])
        self._sync()
        ready = {"port": self.port, "pid": os.getpid()}
        _write_atomic(self.directory / "ready.json", json.dumps(ready))
        self._poller = asyncio.get_running_loop().create_task(self._poll())

    def done(self) -> None:
        # Ends holds at once, so mitmdump exits on SIGTERM without waiting for hung requests.
        self.stopping = True
        if self._poller is not None:
            self._poller.cancel()

    def client_connected(self, client: connection.Client) -> None:
        self._sync()
        if self.down:
            client.error = "down"  # mitmproxy closes the connection when error is set
            self._event("down_connect")

    async def request(self, flow: http.HTTPFlow) -> None:
        self._sync()
        if self.down:
            self._event("down", flow)
            flow.kill()
            return
        step = self._next_step()
        if "status" in step:
            self._answer(flow, step)
        elif step.get("kill"):
            self._event("kill", flow)
            flow.kill()
        elif step.get("kill_after"):
            flow.metadata["faults_kill_after"] = True
        elif "hang" in step:
            limit = step["hang"]
            outcome = await self._hold(flow, None if limit is True else float(limit))
            if outcome != "released":
                self._event(outcome, flow)
                flow.kill()
        elif step.get("delay"):
            await asyncio.sleep(float(step["delay"]))

    def response(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get("faults_injected"):
            return
        assert flow.response is not None
        if flow.metadata.get("faults_kill_after"):
            self._event("kill_after", flow, flow.response.status_code)
            flow.kill()
        else:
            self._event("forward", flow, flow.response.status_code)

    # --- steps ----------------------------------------------------------------------------------

    def _next_step(self) -> dict[str, Any]:
        while self.steps:
            step = self.steps[0]
            times = int(step.get("times", 1))
            if times <= 0:
                self.steps.pop(0)
                continue
            step["times"] = times - 1
            return dict(step)
        return {}

    def _answer(self, flow: http.HTTPFlow, step: dict[str, Any]) -> None:
        status = int(step["status"])
        headers = {"Content-Type": "application/json"}
        if "retry_after" in step:
            headers["Retry-After"] = str(step["retry_after"])
        body = step.get("body", json.dumps({"status": status, "injected": True}))
        flow.response = http.Response.make(status, body, headers)
        flow.metadata["faults_injected"] = True
        self._event("status", flow, status)

    async def _hold(self, flow: http.HTTPFlow, seconds: float | None) -> str:
        """Wait until released, ``seconds`` pass, the client leaves or the proxy stops.

        Returns ``"released"``, ``"hang_timeout"``, ``"client_gone"`` or ``"stopping"``.
        """
        generation = self.release
        deadline = None if seconds is None else time.monotonic() + seconds
        while not self.stopping:
            self._sync()
            if self.release != generation:
                return "released"
            if flow.client_conn.timestamp_end is not None:
                return "client_gone"
            if deadline is not None and time.monotonic() >= deadline:
                return "hang_timeout"
            await asyncio.sleep(POLL_INTERVAL)
        return "stopping"

    # --- control --------------------------------------------------------------------------------

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            try:
                self._sync()
            except Exception:  # the poller must outlive a bad control file
                _log.exception("faults: control file")

    def _sync(self) -> None:
        assert self.directory is not None
        try:
            text = (self.directory / "control.json").read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        # Compared whole rather than by mtime, whose coarse clock can miss a quick second write.
        if text == self._control_text:
            return
        self._control_text = text
        control = json.loads(text)
        if control.get("version") != self.version:
            self.version = control.get("version")
            self.steps = [dict(step) for step in control.get("steps", [])]
        self.release = int(control.get("release", 0))
        self.down = control.get("down") or None
        self._listen(self.down != "refuse")

    def _listen(self, on: bool) -> None:
        if on == self.listening:
            return
        self.listening = on
        # Pin the port first: it was 0 ("any") at start, and must come back the same.
        ctx.options.update(listen_port=self.port, server=on)

    def _event(self, action: str, flow: http.HTTPFlow | None = None,
               status: int | None = None) -> None:
        assert self.directory is not None
        event: dict[str, Any] = {"time": time.time(), "action": action}
        if flow is not None:
            event["method"] = flow.request.method
            event["path"] = flow.request.path
        if status is not None:
            event["status"] = status
        with (self.directory / "events.jsonl").open("a", encoding="utf-8") as out:
            out.write(json.dumps(event) + "\n")


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


addons = [Faults()]
