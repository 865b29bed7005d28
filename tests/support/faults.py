"""A fault-injecting reverse proxy (real mitmproxy) in front of the capture receiver.

``FaultProxy(upstream_port, tmp_dir)`` runs ``mitmdump --mode reverse:http://127.0.0.1:UPSTREAM``
with ``fault_addon.py``, which answers, delays, holds or drops chosen requests (see that module
for the step format). The receiver behind it records what really arrived, so a test can tell
"the endpoint got it but the client saw a failure" from "it never left".

mitmdump takes 0.7-0.9 s to start here (1.2-1.8 s with both cores busy), nearly all of it
importing mitmproxy, and ~0.2 s to stop on SIGTERM. The ``fault_proxy`` fixture still makes one
per test: a script, a down state or a held request must not leak into the next test.

The upstream can be any port: ``Nginx(fault_proxy.port, ...)`` puts TLS and basic auth in front
(nginx then answers 502 where the proxy kills or drops a request, and does not retry a POST).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.process import accepts, stop_group, tail, wait_until

START_TIMEOUT = 20.0
"""Seconds mitmdump gets to listen (about 1 s here; generous for a loaded CI machine)."""

SWITCH_TIMEOUT = 5.0
"""Seconds ``down("refuse")`` and ``up()`` wait for the listener to close or reopen."""

ADDON = Path(__file__).with_name("fault_addon.py")

MITMDUMP_ENV = "MITMDUMP"
"""Environment variable naming the mitmdump executable, e.g. one in a venv of its own."""


def find_mitmdump() -> str | None:
    """``$MITMDUMP``, else the one beside this Python (the dev venv), else PATH; None if absent."""
    explicit = os.environ.get(MITMDUMP_ENV)
    if explicit:
        return shutil.which(explicit)
    beside = Path(sys.executable).with_name("mitmdump")
    if beside.exists():
        return str(beside)
    return shutil.which("mitmdump")


class FaultProxy:
    """A mitmdump process owned by a test, forwarding to ``127.0.0.1:upstream_port``.

    ``set(steps)`` scripts the next requests, ``down()``/``up()`` switch the endpoint off and on,
    ``release()`` lets held requests through, ``events()`` tells what the proxy did.
    """

    def __init__(self, upstream_port: int, tmp_dir: Path, mitmdump: str | None = None) -> None:
        executable = mitmdump or find_mitmdump()
        if executable is None:
            raise RuntimeError("mitmdump not found (pip install mitmproxy, or set $MITMDUMP)")
        self.upstream_port = upstream_port
        self.directory = tmp_dir / f"faults-{upstream_port}-{id(self):x}"
        self.directory.mkdir(parents=True)
        self.log = self.directory / "mitmdump.log"
        self._control: dict[str, Any] = {"version": 0, "steps": [], "down": None, "release": 0}
        self._write_control()
        started = time.monotonic()
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    executable,
                    "--mode", f"reverse:http://127.0.0.1:{upstream_port}",
                    "--listen-host", "127.0.0.1",
                    "--listen-port", "0",  # the addon reports the port it got: no race for one
                    "-s", str(ADDON),
                    "--set", f"faults_dir={self.directory}",
                    # Its CA (made at start, unused for plain HTTP) goes here, not ~/.mitmproxy.
                    "--set", f"confdir={self.directory / 'mitmproxy'}",
                    # Connect upstream only for a request that is forwarded, not for every client.
                    "--set", "connection_strategy=lazy",
                    "--set", "flow_detail=0",
                    "--set", "termlog_verbosity=warn",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        ready = self.directory / "ready.json"
        process = self._process
        if not wait_until(lambda: ready.exists() or process.poll() is not None, START_TIMEOUT,
                          interval=0.05) or not ready.exists():
            self.stop()
            raise RuntimeError(f"mitmdump did not start: {tail(self.log)}")
        self.port = int(json.loads(ready.read_text(encoding="utf-8"))["port"])
        self.started_in = time.monotonic() - started
        """Seconds from launch to listening (interpreter start and mitmproxy imports mostly)."""

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def url(self) -> str:
        """Ingest URL through the proxy: ``http://127.0.0.1:PORT/ingest``."""
        return f"http://127.0.0.1:{self.port}/ingest"

    def set(self, steps: list[dict[str, Any]]) -> None:
        """Replace the script for the next requests (``[]`` clears it); applies to the next request.

        Steps (each may have ``"times": N``, default 1): ``{}`` forward; ``{"status": 503,
        "retry_after": "1"}`` answer without forwarding; ``{"delay": S}`` forward after S s;
        ``{"hang": True}`` hold until ``release()``; ``{"hang": S}`` hold, drop after S s;
        ``{"kill": True}`` drop the connection unforwarded; ``{"kill_after": True}`` forward,
        then drop the connection instead of answering.
        """
        self._control["version"] += 1
        self._control["steps"] = steps
        self._write_control()

    def down(self, mode: str = "kill") -> None:
        """Make the endpoint unreachable until ``up()``.

        ``"kill"``: connections are accepted, then closed at once; requests on connections already
        open are dropped. ``"refuse"``: the port is closed too (ECONNREFUSED); returns once it is.
        """
        if mode not in ("kill", "refuse"):
            raise ValueError(f"down mode must be 'kill' or 'refuse', not {mode!r}")
        self._control["down"] = mode
        self._write_control()
        if mode == "refuse" and not wait_until(lambda: not accepts(self.port), SWITCH_TIMEOUT):
            raise RuntimeError(f"mitmdump still accepts on {self.port}: {tail(self.log)}")

    def up(self) -> None:
        """Undo ``down()``; returns once the port accepts connections again."""
        self._control["down"] = None
        self._write_control()
        if not wait_until(lambda: accepts(self.port), SWITCH_TIMEOUT):
            raise RuntimeError(f"mitmdump did not listen again on {self.port}: {tail(self.log)}")

    def release(self) -> None:
        """Forward every request held by a ``hang`` step now (those already dropped stay so)."""
        self._control["release"] += 1
        self._write_control()

    def events(self) -> list[dict[str, Any]]:
        """What the proxy did, in order: ``{"action", "method", "path", "status", "time"}``."""
        path = self.directory / "events.jsonl"
        if not path.exists():
            return []
        lines = path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def actions(self) -> list[str]:
        """Just the ``action`` of each event for requests (connection-level events left out)."""
        return [event["action"] for event in self.events() if "path" in event]

    def stop(self) -> None:
        """Stop mitmdump (SIGTERM, then SIGKILL to its group). Safe to call twice."""
        stop_group(self._process)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _write_control(self) -> None:
        # Whole-file replace: the addon never reads a half-written file.
        path = self.directory / "control.json"
        temporary = path.with_name("control.json.tmp")
        temporary.write_text(json.dumps(self._control), encoding="utf-8")
        os.replace(temporary, path)
