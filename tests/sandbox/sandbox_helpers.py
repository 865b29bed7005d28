"""Helpers for the sandbox tests: temporary layers holding the test extension, polling."""

from __future__ import annotations

import json
import stat
import sys
import time
from pathlib import Path
from typing import Any, Callable

TEMPLATE = Path(__file__).with_name("ext_template.py")



class Layer:
    """An unpacked layer in a temporary directory, with test extensions and their records."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "extensions").mkdir(parents=True)
        (root / "config").mkdir()
        (root / "records").mkdir()

    def add(self, name: str, **config: Any) -> Layer:
        """Add the test extension as ``extensions/<name>`` configured with ``config``."""
        source = TEMPLATE.read_text().split("\n", 1)[1]
        path = self.root / "extensions" / name
        path.write_text(f"#!{sys.executable}\n{source}")
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        (self.root / "config" / f"{name}.json").write_text(json.dumps(config))
        return self

    def records(self, name: str, kind: str | None = None) -> list[dict[str, Any]]:
        path = self.root / "records" / f"{name}.jsonl"
        if not path.exists():
            return []
        items = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [r for r in items if kind is None or r["kind"] == kind]

    def telemetry(self, name: str) -> list[dict[str, Any]]:
        """Every event the extension's listener received, in arrival order."""
        events = []
        for push in self.records(name, "telemetry"):
            if push["status"] < 400:
                for event in push["batch"]:
                    events.append(dict(event, received=push["t"]))
        return events

    def ticks(self, name: str) -> list[float]:
        path = self.root / "records" / f"{name}.ticks"
        if not path.exists():
            return []
        return [float(x) for x in path.read_text().split()]


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def api_call(runtime_api: str, method: str, path: str, body: Any = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One request to the sandbox's API from the test process; returns (status, parsed body)."""
    import http.client

    host, port = runtime_api.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    data = None if body is None else (body if isinstance(body, bytes)
                                      else json.dumps(body).encode())
    conn.request(method, path, body=data, headers=headers or {})
    response = conn.getresponse()
    raw = response.read()
    conn.close()
    try:
        return response.status, json.loads(raw) if raw else None
    except ValueError:
        return response.status, raw.decode()


def write_function(directory: Path, source: str, module: str = "app") -> Path:
    """Write a handler module into ``directory`` (created) and return the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{module}.py").write_text(source)
    return directory


def events_of(events: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == event_type]
