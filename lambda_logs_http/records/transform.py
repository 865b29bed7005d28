"""One Telemetry API event in, one encoded payload entry out.

The event is read once into a ``record.Record`` (its level and request id found in the line,
the invocation's tenant remembered), and the format in use (``encoders``) writes the entry.
Output is ASCII-only text (non-ASCII escaped), so any text — including the lone surrogates
``json.loads`` lets through — always encodes.

Every event encodes, whatever it holds: when the fast path refuses a value (nested too deep for
the C encoder, NaN or an infinity, an integer too long for decimal text, a key that is not a
string), the event is encoded again from ``jsonsafe.sanitize``'s copy of it, which always
encodes. A record nested deeper than ``jsonsafe.MAX_DEPTH`` that the C encoder did take is
capped the same way, since receivers' parsers are not as patient. An event that still fails
comes back as ``UNENCODABLE``, for the caller to count; it never raises, so it never takes the
rest of its push with it.

Every record of an invocation carries its trace (``platform.start``'s, else its INVOKE's, which
the main thread passes on through ``InvocationProgress``) and, for the environment's first
invocation, ``cold_start``. An invocation that timed out, crashed or failed gets one more entry,
an ``ERROR`` that says so (``enrich.Alerts``), left in ``alert`` for the caller to put before
the event's own.
"""

from __future__ import annotations

from .. import log
from ..lambda_api.events import EXTENSION, FUNCTION, RUNTIME_DONE, START, UNKNOWN_PLATFORM
from . import jsonsafe, levels, platform_events
from .encoders import DEFAULT, encoder_class
from .enrich import ALERTING, NO_TRACE, Alert, Alerts, ShutdownNotice, trace
from .record import ENTRY_KEYS, EntryContext, Record, architecture
from .timestamps import utc_now_iso

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..invocations import InvocationProgress
    from .encoders.base import Encoder
    from .options import Screen

__all__ = ["ENTRY_KEYS", "UNENCODABLE", "EntryContext", "Transformer", "architecture"]
_OWN_LINE_PREFIX = log.PREFIX
UNENCODABLE = ""
"""What ``encode`` returns for an event that could not be encoded at all: the caller counts it
as dropped (reason ``UNENCODABLE_REASON``). ``None`` means skipped on purpose."""
UNENCODABLE_REASON = "unencodable"


class _Filtered(str):
    """The type of ``FILTERED``: an empty text that is not ``UNENCODABLE``."""


FILTERED = _Filtered()
"""What ``encode`` returns for a record left out by the filters (``options.Screen``): falsy
like ``UNENCODABLE``, told apart by identity; the caller counts it as ``filtered``."""
TENANT_KEY = "tenantId"
# Request id -> tenant id, for the invocations still producing entries (a report arrives during
# the next invocation; on Managed Instances several run at once).
_MAX_TENANTS = 64
# Built once: a tuple of two globals in the test would be built for every line. A tuple, not a
# set: a hostile push's "type" may be unhashable.
_LOG_TYPES = (FUNCTION, EXTENSION)
# Request id -> (trace id, span id), for the invocations still producing entries.
_MAX_TRACES = 64
_UNSET = object()  # no request looked up yet


class Transformer:
    """Turns Telemetry events into payload entries (text, one per event) in one format."""

    def __init__(
        self,
        context: EntryContext,
        attribute_requests: bool = True,
        encoder: Encoder | None = None,
        screen: Screen | None = None,
        *,
        invocations: InvocationProgress | None = None,
        cold_starts: bool = True,
    ) -> None:
        """``attribute_requests``: give function lines that name no request the id of the
        invocation in progress. Right on on-demand Lambda, which runs one invocation at a time
        and sends ``platform.start`` before and ``platform.runtimeDone`` after its output; wrong
        on Managed Instances, where invocations overlap (pass False there).

        ``encoder``: the format's (default: ``encoders.DEFAULT``'s).

        ``screen``: the filters and redaction (``options.build``), run on each record before
        the encoder sees it, so every format writes only what they let through.

        ``invocations``: what the main thread learnt from each INVOKE (its trace; which came
        first). ``cold_starts``: whether the environment's first invocation is a cold start —
        not where init ran ahead of any request (provisioned concurrency, Managed Instances)."""
        self._attribute_requests = attribute_requests
        self._current_request_id = ""
        self.encoder = encoder if encoder is not None else encoder_class(DEFAULT)(context)
        self._record = Record()
        self._tenants: dict[str, str] = {}
        self._warned_unencodable = False
        # The screen's two steps, each called from encode (which runs for every record).
        self._keeps = screen.keeps if screen is not None else None
        self._redact = screen.redact if screen is not None else None
        self._invocations = invocations
        self._cold_starts = cold_starts
        self._first_request_id = ""  # the environment's first invocation
        self._traces: dict[str, tuple[str, str]] = {}
        # What the last record's request was found to have: looked up once per request.
        self._looked_up: object = _UNSET
        self.alerts = Alerts()
        self._alert_record = Record()
        self.alert = ""
        """An entry to go before the one ``encode`` returned ("" when none): the alert of a
        failed invocation. The caller takes it and sets it back to ""."""
        self.runtime_done: str | None = None
        """Set when the event encoded was a ``platform.runtimeDone``: its request id ("" if it
        names none). The caller takes it and sets it back to None."""

    def encode(self, event: dict[str, object], _sanitized: bool = False) -> str | None:
        """The entry for ``event``, None for events that are not forwarded, ``FILTERED``,
        or ``UNENCODABLE``. Never raises.

        Skipped: the extension's own ``[EXTENSION]`` lines, which come back to us as
        ``extension`` records (forwarding them would let every debug line cause another).
        """
        encoder = self.encoder
        try:
            try:  # subscripts: cheaper than three get() calls, and Lambda's events have all three
                event_type = event["type"]
                record = event["record"]
                timestamp = event["time"]
            except KeyError:
                event_type = event.get("type")
                record = event.get("record")
                timestamp = event.get("time")
            if event_type in _LOG_TYPES:
                log_type = event_type
                if type(record) is str:
                    if log_type == EXTENSION and record.startswith(_OWN_LINE_PREFIX):
                        return None
                    level, message, request_id, fields = levels.parse_text(record)
                elif isinstance(record, dict):
                    level, message, request_id, fields = levels.parse_fields(record)
                else:
                    level, message, request_id, fields = (
                        levels.DEFAULT_LEVEL, encoder.dump(record), "", None,
                    )  # fmt: skip
                if not request_id and log_type == FUNCTION:
                    request_id = self._current_request_id
            else:
                if event.__class__ is ShutdownNotice:
                    self._shutdown_alert(event)
                    return None
                log_type = "platform"
                event_type = event_type if isinstance(event_type, str) else UNKNOWN_PLATFORM
                level, message, request_id = platform_events.render(event_type, record)
                fields = record if isinstance(record, dict) else None
                if event_type == START and request_id:
                    if not self._first_request_id:
                        self._first_request_id = request_id
                    if fields is not None and "tracing" in fields:
                        self._remember_trace(request_id, fields["tracing"])
                if event_type == RUNTIME_DONE:
                    self.runtime_done = request_id
                    if self._attribute_requests:
                        self._current_request_id = ""
                elif event_type == START and self._attribute_requests:
                    self._current_request_id = request_id
                if event_type in ALERTING and fields is not None:
                    alert = self.alerts.from_event(event_type, fields)
                    if alert is not None:
                        self.alert = self._alert_entry(alert, timestamp)
            # Tenant isolation: the record's own tenantId, else its request's. A line with no
            # tenant seen yet pays one check more than before tenants existed.
            tenant_id = ""
            if self._tenants or (fields is not None and TENANT_KEY in fields):
                tenant_id = self._tenant(
                    request_id, fields.get(TENANT_KEY) if fields is not None else None
                )
            if request_id != self._looked_up:
                self._look_up(request_id)
            out = self._record  # its trace_id, span_id and cold_start: set by _look_up
            out.time = timestamp if isinstance(timestamp, str) else utc_now_iso()
            out.level = level
            out.message = message
            out.log_type = log_type
            out.event_type = event_type
            out.request_id = request_id
            out.tenant_id = tenant_id
            out.fields = fields
            keeps = self._keeps
            if keeps is not None and not keeps(out):
                return FILTERED
            redact = self._redact
            if redact is not None:
                redact(out)
            return encoder.entry(out)
        except Exception as exc:
            if _sanitized:
                return self._unencodable(exc)
        # Rare: a value the fast path refuses. Encode again, from a copy of the event that
        # always encodes and with the careful encoder for what parsing its text produces (a
        # text line holding JSON is parsed in there). One thread uses a transformer: swapping
        # the encoder's dump for one call is safe.
        fast = encoder.dump
        encoder.dump = jsonsafe.dumps
        try:
            clean = jsonsafe.sanitize(event)
            if not isinstance(clean, dict):
                raise TypeError("an event that is not an object")
            return self.encode(clean, True)
        except Exception as exc:
            return self._unencodable(exc)
        finally:
            encoder.dump = fast

    def _look_up(self, request_id: str) -> None:
        """The trace and cold start of ``request_id``'s records, written into the record that
        ``encode`` fills and kept there while the records that follow name the same request:
        looked up about once per invocation, not per line."""
        self._looked_up = request_id
        out = self._record
        if not request_id:
            out.trace_id = out.span_id = ""
            out.cold_start = False
            return
        found = self._traces.get(request_id)
        invocations = self._invocations
        if found is None and invocations is not None:
            found = trace(invocations.invoke_tracing(request_id))
            if found != NO_TRACE:
                self._remember_trace(request_id, found)
        out.trace_id, out.span_id = found or NO_TRACE
        if not self._first_request_id and invocations is not None:
            # Only INVOKE was seen of it (platform records not subscribed to).
            self._first_request_id = invocations.first_invoke
        out.cold_start = self._cold_starts and request_id == self._first_request_id

    def _remember_trace(self, request_id: str, tracing: object) -> None:
        """Keep ``request_id``'s trace (``tracing`` a member to parse, or a parsed pair)."""
        found = tracing if type(tracing) is tuple else trace(tracing)
        if found == NO_TRACE:
            return
        traces = self._traces
        if request_id not in traces and len(traces) >= _MAX_TRACES:
            del traces[next(iter(traces))]
        traces[request_id] = found  # type: ignore[assignment]
        self._looked_up = _UNSET

    def _shutdown_alert(self, notice: ShutdownNotice) -> None:
        record = notice.get("record")
        if isinstance(record, dict):
            alert = self.alerts.from_shutdown(record)
            if alert is not None:
                self.alert = self._alert_entry(alert, notice.get("time"))

    def _alert_entry(self, alert: Alert, timestamp: object) -> str:
        """The entry that says how ``alert``'s invocation ended, with its trace and tenant;
        "" if it cannot be encoded (it is made of the extension's own values: it can)."""
        self._look_up(alert.request_id)
        out = self._alert_record
        out.time = timestamp if isinstance(timestamp, str) else utc_now_iso()
        out.level = "ERROR"
        out.message = alert.message
        out.log_type = out.event_type = EXTENSION
        out.request_id = alert.request_id
        out.tenant_id = self._tenants.get(alert.request_id, "") if alert.request_id else ""
        looked_up = self._record
        out.trace_id, out.span_id = looked_up.trace_id, looked_up.span_id
        out.cold_start = looked_up.cold_start
        out.fields = alert.fields
        try:
            return self.encoder.entry(out)
        except Exception as exc:
            self._unencodable(exc)
            return ""

    def _tenant(self, request_id: str, tenant_id: object) -> str:
        """The tenant of this entry: its own ``tenantId`` (remembered for its request), else
        the one its request was seen with (tenant isolation: ``platform.start`` names it)."""
        if isinstance(tenant_id, str) and tenant_id:
            if request_id and self._tenants.get(request_id) != tenant_id:
                if len(self._tenants) >= _MAX_TENANTS:
                    del self._tenants[next(iter(self._tenants))]
                self._tenants[request_id] = tenant_id
            return tenant_id
        return self._tenants.get(request_id, "") if request_id else ""

    def _unencodable(self, exc: Exception) -> str:
        if not self._warned_unencodable:
            self._warned_unencodable = True
            # The type only: the text of the error could quote the record.
            log.warning(
                f"a record could not be encoded ({type(exc).__name__}): dropped and counted as "
                f"{UNENCODABLE_REASON} (later ones are counted in the shutdown summary)"
            )
        return UNENCODABLE

    def drop_report(self, reason: str, records: int) -> str:
        """An entry telling the receiver that ``records`` were lost, and why.

        Shaped like Lambda's own ``platform.logsDropped`` report so one alert can watch both.
        Called on the sending thread: it fills a record of its own, not the transformer's.
        """
        report = Record()
        report.time = utc_now_iso()
        report.level = "WARN"
        report.message = f"LOGS_DROPPED lambda-logs-http dropped {records} records: {reason}"
        report.log_type = report.event_type = EXTENSION
        report.fields = {"droppedRecords": records, "reason": reason, "source": "lambda-logs-http"}
        return self.encoder.entry(report)
