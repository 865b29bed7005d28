"""rotel, a real OpenTelemetry collector, as the receiver of ``HTTP_FORMAT=otlp``.

Its PyPI wheel (``rotel``, cp311) bundles the ``rotel-agent`` binary. It is started with its
OTLP/HTTP receiver on a free port (``/v1/logs``), a ``blackhole`` exporter, and
``--debug-log logs --debug-log-verbosity detailed``: it prints every log record it accepted —
resource attributes, severity, body, attributes, trace and span ids — which ``records()`` reads
back. Stopped by PID (its own process group) in bounded time.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.process import accepts, free_port, stop_group, tail, wait_until

START_TIMEOUT = 20.0
SKIP_REASON = (
    "rotel (a real OpenTelemetry collector) is not installed: "
    "pip install -r requirements-dev.txt (rotel==0.0.1a15, a cp311 wheel)"
)


def agent_path() -> Path | None:
    """The bundled ``rotel-agent`` binary, or None."""
    try:
        import rotel
    except ImportError:
        return None
    binary = Path(rotel.__file__).parent / "rotel-agent"
    return binary if binary.is_file() and os.access(binary, os.X_OK) else None


class Rotel:
    """One rotel process: ``url`` is its ``/v1/logs``; ``records()`` what it printed."""

    def __init__(self, directory: Path) -> None:
        binary = agent_path()
        if binary is None:
            pytest.skip(SKIP_REASON)
        self.output = directory / f"rotel-{id(self)}.log"
        self.port = free_port()
        command = [
            str(binary), "start",
            "--otlp-http-endpoint", f"127.0.0.1:{self.port}",
            "--otlp-grpc-endpoint", f"127.0.0.1:{free_port()}",
            "--exporter", "blackhole",
            "--debug-log", "logs", "--debug-log-verbosity", "detailed",
        ]  # fmt: skip
        with self.output.open("wb") as out:
            self._process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "NO_COLOR": "1", "RUST_LOG_STYLE": "never"},
            )  # fmt: skip
        if not wait_until(lambda: accepts(self.port) or self._process.poll() is not None,
                          START_TIMEOUT) or self._process.poll() is not None:  # fmt: skip
            self.stop()
            raise RuntimeError(f"rotel did not start: {tail(self.output)}")
        self.url = f"http://127.0.0.1:{self.port}/v1/logs"

    def text(self) -> str:
        return re.sub(r"\x1b\[[0-9;]*m", "", tail(self.output, 10_000_000))

    def records(self) -> list[dict[str, Any]]:
        """Every log record printed, with its resource's attributes (as printed: ``Str(x)``)."""
        return parse_debug_log(self.text())

    def stop(self) -> None:
        stop_group(self._process)  # type: ignore[arg-type]

    def __enter__(self) -> Rotel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_ATTRIBUTE = re.compile(r"^\s+-> ([^:]+): (.*)$")


def parse_debug_log(text: str) -> list[dict[str, Any]]:
    """The log records of rotel's ``detailed`` debug output:

    ``ResourceLog #0`` / ``Resource attributes:`` (``-> key: Str(value)`` lines) /
    ``LogRecord #0`` then ``Timestamp:``, ``SeverityText:``, ``SeverityNumber:``, ``Body:``,
    ``Attributes:`` lines, ``Trace ID :``, ``Span ID :``.
    """
    records: list[dict[str, Any]] = []
    resource: dict[str, str] = {}
    current: dict[str, Any] | None = None
    section = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("ResourceLog #"):
            resource, current, section = {}, None, "resource"
        elif stripped == "Resource attributes:":
            section = "resource"
        elif stripped.startswith("LogRecord #"):
            current = {"resource": resource, "attributes": {}}
            records.append(current)
            section = "record"
        elif stripped == "Attributes:" and current is not None:
            section = "attributes"
        elif (match := _ATTRIBUTE.match(line)) is not None:
            if section == "resource" and current is None:
                resource[match.group(1)] = match.group(2)
            elif section == "attributes" and current is not None:
                current["attributes"][match.group(1)] = match.group(2)
        elif current is not None and ":" in stripped:
            key, _, value = stripped.partition(":")
            current[key.strip()] = value.strip()
    return records
