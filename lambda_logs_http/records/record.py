"""What every output format is made from: where the logs come from, and one record read once.

``EntryContext`` holds what is the same for every record of the environment; ``Record`` holds
one Telemetry API event as the transformer understood it (its level, its message, its request,
its structured fields). A format (``records.encoders``) turns a ``Record`` into the text of one
entry of its body, and never has to know how Lambda, a runtime or a logging library wrote it.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


# Every key an entry of the default format can have besides HTTP_EXTRA_FIELDS' names (which may
# not be one of them): what a spilled batch's entries are checked against when read back.
ENTRY_KEYS = frozenset({
    "timestamp", "level", "message", "source", "function_name", "function_version",
    "function_memory_size", "aws_region", "architecture", "account_id", "extension_version",
    "service_name", "instance", "log_type", "request_id", "tenant_id", "trace_id", "span_id",
    "cold_start", "record",
})  # fmt: skip


def architecture(machine: str | None = None) -> str:
    """``x86_64`` or ``arm64`` (the names Lambda uses), from the kernel's machine name."""
    machine = machine or os.uname().machine
    return "arm64" if machine in ("aarch64", "arm64", "armv8l") else machine


class EntryContext:
    """The fields every entry repeats: where the logs come from.

    * ``account_id``: the AWS account (Lambda tells the extension at registration);
    * ``extension_version``: this extension's version;
    * ``service_name``: what OpenTelemetry calls the service (``OTEL_SERVICE_NAME``, else the
      function's name);
    * ``instance``: the execution environment's log stream name, "" when unknown;
    * ``extra_fields``: ``HTTP_EXTRA_FIELDS``, static fields the user adds to every entry
      (names to strings, numbers or booleans).
    """

    __slots__ = (
        "function_name", "function_version", "function_memory_size", "aws_region", "architecture",
        "account_id", "extension_version", "service_name", "instance", "extra_fields",
    )  # fmt: skip

    def __init__(
        self,
        function_name: str,
        function_version: str,
        function_memory_size: int | None,
        aws_region: str,
        architecture: str,
        *,
        account_id: str = "",
        extension_version: str = "",
        service_name: str = "",
        instance: str = "",
        extra_fields: dict[str, str | int | float | bool] | None = None,
    ) -> None:
        self.function_name = function_name
        self.function_version = function_version
        self.function_memory_size = function_memory_size
        self.aws_region = aws_region
        self.architecture = architecture
        self.account_id = account_id
        self.extension_version = extension_version
        self.service_name = service_name or function_name
        self.instance = instance
        self.extra_fields = dict(extra_fields or {})


class Record:
    """One event, interpreted: what a format needs to write its entry.

    The transformer fills one ``Record`` again for every event rather than making a new one (a
    new object per log line costs measurably more on the hot path), so an encoder reads it
    during ``entry()`` and keeps no reference to it.

    * ``time``: the event's ISO 8601 time as Lambda wrote it (``2024-01-15T10:30:00.000Z``);
    * ``level``: one of ``TRACE DEBUG INFO WARN ERROR FATAL``;
    * ``message``: the text a person reads;
    * ``log_type``: ``function``, ``extension`` or ``platform``;
    * ``event_type``: the Telemetry API type (``function``, ``platform.report``, …);
    * ``request_id``, ``tenant_id``, ``trace_id``, ``span_id``: "" when unknown;
    * ``cold_start``: True on the records of an environment's first invocation;
    * ``fields``: the structured record (a JSON-format line's object, a platform event's
      ``record``), None for a plain line.
    """

    __slots__ = (
        "time", "level", "message", "log_type", "event_type", "request_id", "tenant_id",
        "trace_id", "span_id", "cold_start", "fields",
    )  # fmt: skip

    def __init__(self) -> None:
        self.time = ""
        self.level = "INFO"
        self.message = ""
        self.log_type = ""
        self.event_type = ""
        self.request_id = ""
        self.tenant_id = ""
        self.trace_id = ""
        self.span_id = ""
        self.cold_start = False
        self.fields: dict[str, Any] | None = None
