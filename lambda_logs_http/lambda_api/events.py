"""The names Lambda gives its events and records, each spelled once.

Extensions API events (what ``/event/next`` returns) and the ``type`` of every Telemetry API
record (telemetry-schema-reference). Everything else imports them from here.
"""

from __future__ import annotations

# Extensions API event types.
INVOKE = "INVOKE"
SHUTDOWN = "SHUTDOWN"

# Telemetry API record types: the function's and extensions' output...
FUNCTION = "function"
EXTENSION = "extension"
# ...and the platform's own events.
INIT_START = "platform.initStart"
INIT_RUNTIME_DONE = "platform.initRuntimeDone"
INIT_REPORT = "platform.initReport"
START = "platform.start"
RUNTIME_DONE = "platform.runtimeDone"
REPORT = "platform.report"
RESTORE_START = "platform.restoreStart"
RESTORE_RUNTIME_DONE = "platform.restoreRuntimeDone"
RESTORE_REPORT = "platform.restoreReport"
EXTENSION_STATE = "platform.extension"
TELEMETRY_SUBSCRIPTION = "platform.telemetrySubscription"
LOGS_DROPPED = "platform.logsDropped"
# What an event without a usable type is called in what we forward.
UNKNOWN_PLATFORM = "platform.unknown"

# The Telemetry streams one can subscribe to (the ``types`` of a subscription).
STREAMS = ("platform", FUNCTION, EXTENSION)
