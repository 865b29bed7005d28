"""What a format is: a class that writes one ``Record`` as the text of one entry of a body, and
says how entries make a body.

Entries are ASCII text (JSON with non-ASCII escaped) on one line (no raw line break: JSON text
escapes them), so a body's size in bytes is the sum of its entries' lengths and its framing,
and the batch limit counts exactly in every format (``delivery.batching.Framing`` does the
counting from the strings a format declares here). One line per entry is also what lets a
spilled batch be stored as its entries, one per line, whatever the format.

A format declares:

* ``name``, ``content_type``; ``request_headers`` it needs on every request, ``query`` to add
  to the endpoint's URL (Elasticsearch's ``filter_path``);
* its framing: ``head`` + entries joined by ``separator`` + ``tail`` (``{stamp}`` in the tail
  is the send time, 24 characters); a grouped format (Loki) also ``group_mark`` and
  ``group_tail``: each entry is then a self-contained group (``<key><group_mark><value>
  <group_tail>``) and entries with the same key share one group in the body;
* ``max_entry_bytes``: the receiver's documented limit for one entry (0: only the batch's);
  ``max_batch_bytes``/``max_batch_records``: its limits for one request (0: none), to which
  ``HTTP_MAX_BATCH_BYTES``/``HTTP_MAX_BATCH_RECORDS`` are lowered at start, with a warning;
* ``truncate``: the entry cut to a size, still valid in the format (message cut, structure
  dropped first);
* ``check_entry``: whether a decoded entry read back from disk (untrusted) is one of its own;
* ``answer_limit``/``read_answer``: a receiver whose 2xx answer says which entries failed
  (Elasticsearch's ``_bulk``); ``explain``: what a documented error answer means.
"""

from __future__ import annotations

import json
import time
from json.encoder import encode_basestring_ascii as quote

from .. import jsonsafe

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, ClassVar

    from ..record import EntryContext, Record

__all__ = ["AnswerReport", "Encoder", "epoch_ns", "quote"]
_MAX_DEPTH = jsonsafe.MAX_DEPTH
TRUNCATION_MARKER = "…[truncated by lambda-logs-http: {} bytes removed]"
_MIN_MESSAGE_CHARS = 256
# Request id -> an invocation's cached snippet: the invocations still producing entries (a
# report arrives during the next invocation; on Managed Instances several run at once).
MAX_CACHED_INVOCATIONS = 64
# The severities OpenTelemetry defines for our levels (the first of each range); the other
# formats derive their own words from these names.
SEVERITY_NUMBERS = {"TRACE": 1, "DEBUG": 5, "INFO": 9, "WARN": 13, "ERROR": 17, "FATAL": 21}


class AnswerReport:
    """What a receiver's 2xx answer said of the entries of a batch, by index.

    ``retry``: refused for now (worth sending again); ``rejected``: refused for good;
    ``first_error``: the first refusal in words (for the log line); ``unchecked``: entries the
    answer did not cover (it was cut at its bound), taken as delivered.
    """

    __slots__ = ("retry", "rejected", "first_error", "retry_error", "unchecked")

    def __init__(self) -> None:
        self.retry: list[int] = []
        self.rejected: list[int] = []
        self.first_error = ""
        self.retry_error = ""
        self.unchecked = 0


class Encoder:
    """One format. Subclasses set ``name`` and ``content_type`` and write ``entry``.

    ``dump`` writes a structured value as strict JSON. It refuses what strict JSON cannot hold
    (NaN, an integer too long for decimal text, a non-string key, nesting beyond the C
    encoder's reach) by raising: the transformer then encodes the event again from a sanitized
    copy, with ``dump`` swapped for ``jsonsafe.dumps``, which always succeeds.

    ``entry`` runs on the worker thread (and, for drop reports, on the sender's: those name no
    request, so they never touch the per-invocation cache); every other method is pure and safe
    from any thread.
    """

    writes_span_id: ClassVar[bool] = False
    """Whether ``invocation_json`` writes the span id (the formats that name it)."""

    name: ClassVar[str]
    content_type: ClassVar[str] = "application/json"
    request_headers: ClassVar[tuple[tuple[str, str], ...]] = ()
    query: ClassVar[str] = ""
    head: ClassVar[str] = ""
    separator: ClassVar[str] = "\n"
    tail: ClassVar[str] = "\n"
    group_mark: ClassVar[str] = ""
    group_tail: ClassVar[str] = ""
    max_entry_bytes: ClassVar[int] = 0
    max_batch_bytes: ClassVar[int] = 0
    max_batch_records: ClassVar[int] = 0

    def __init__(self, context: EntryContext) -> None:
        self.context = context
        # allow_nan=False: NaN and the infinities are not JSON; they make the fast path refuse,
        # and the sanitized retry writes them as strings. No circular check: values come from
        # json.loads (a cycle would end in RecursionError, and the retry handles it too).
        self.dump: Callable[[Any], str] = json.JSONEncoder(
            separators=(",", ":"), allow_nan=False, check_circular=False, default=str
        ).encode
        self._invocations: dict[str, tuple[Any, ...]] = {}

    def entry(self, record: Record) -> str:
        """The text of ``record``'s entry (ASCII). May raise on a value strict JSON refuses."""
        raise NotImplementedError

    def fields_json(self, fields: dict[str, Any]) -> str:
        """``fields`` as JSON text, nested no deeper than receivers' parsers accept.

        A flat object (most JSON-format lines) is cleared by two scans at memchr speed; a
        nested one by two counts at C speed; only a deep one is rewritten (``jsonsafe.capped``).
        """
        dumped = self.dump(fields)
        if (dumped.find("{", 1) > 0 or "[" in dumped) and (
            dumped.count("{") + dumped.count("[") > _MAX_DEPTH
        ):
            dumped = jsonsafe.capped(dumped, fields)
        return dumped

    def object_with_message(self, message: str, fields: dict[str, Any]) -> str:
        """``fields`` as JSON text, led by ``"message"`` when it has none of its own: a
        structured record (the function's own object, a platform event's) kept as structure,
        with the line a person reads in it."""
        dumped = self.fields_json(fields)
        if "message" in fields:
            return dumped
        lead = '{"message":' + quote(message)
        return lead + ("}" if dumped == "{}" else "," + dumped[1:])

    def cached(self, request_id: str, key: tuple[Any, ...]) -> str | None:
        """This invocation's snippet, as ``remember`` kept it, while ``key`` (what else it
        depends on: its trace, tenant, cold start) is the same; None otherwise."""
        found = self._invocations.get(request_id)
        return found[1] if found is not None and found[0] == key else None  # type: ignore[no-any-return]

    def invocation(self, record: Record) -> str:
        """What ``record``'s invocation adds to an entry (its request, tenant and trace, as
        ``invocation_json`` writes them): built once per invocation, kept by request id."""
        request_id, tenant_id, trace_id = record.request_id, record.tenant_id, record.trace_id
        if not (request_id or tenant_id or trace_id):
            return ""
        span_id = record.span_id
        key = (tenant_id, trace_id, span_id)
        found = self._invocations.get(request_id)  # cached(), without its call: every record
        if found is not None and found[0] == key:
            return found[1]  # type: ignore[no-any-return]
        return self.remember(
            request_id, key, self.invocation_json(request_id, tenant_id, trace_id, span_id)
        )

    def invocation_json(self, request_id: str, tenant_id: str, trace_id: str, span_id: str) -> str:
        """The invocation's members, each as ``,"name":value``: ``request_id``, ``tenant_id``,
        ``trace_id`` and, where ``writes_span_id``, ``span_id`` (a format with other names
        overrides this)."""
        text = ""
        if request_id:
            text += f',"request_id":{quote(request_id)}'
        if tenant_id:
            text += f',"tenant_id":{quote(tenant_id)}'
        if trace_id:
            text += f',"trace_id":{quote(trace_id)}'
        if span_id and self.writes_span_id:
            text += f',"span_id":{quote(span_id)}'
        return text

    def remember(self, request_id: str, key: tuple[Any, ...], snippet: str) -> str:
        """Keep ``snippet`` for the request (bounded: the oldest invocation goes); return it.
        Nothing is kept for a record that names no request (a drop report, on the sender's
        thread)."""
        if request_id:
            cache = self._invocations
            if len(cache) >= MAX_CACHED_INVOCATIONS and request_id not in cache:
                del cache[next(iter(cache))]
            cache[request_id] = (key, snippet)
        return snippet

    # -- the batch side (pure: called from any thread) --------------------------------------

    def truncate(self, entry: str, max_chars: int) -> str:
        """``entry`` shrunk to at most ``max_chars`` (where possible), still an entry of this
        format: its structured part goes first, then its message is cut with a marker."""
        return truncated(entry, max_chars, self.shrink)

    def shrink(self, entry: Any) -> tuple[Any, Any]:
        """Drop ``entry``'s structured part (in place); return where its message is:
        ``(container, key)``, the message being ``container[key]``. This default serves the
        flat formats, whose entry keeps the structure in ``record`` beside ``message``."""
        entry.pop("record", None)
        return entry, "message"

    def check_entry(self, entry: Any) -> str:
        """Empty when ``entry`` (decoded JSON read back from disk) is an entry of this format, else
        what is wrong with it."""
        raise NotImplementedError

    def answer_limit(self, records: int) -> int:
        """How much of a 2xx answer to read for a batch of ``records`` (0: none)."""
        return 0

    def read_answer(self, answer: bytes, records: int) -> AnswerReport | None:
        """What a 2xx answer says of the batch's entries (None: all were taken)."""
        return None

    def explain(self, status: int, answer: bytes) -> str:
        """A failure answer in words, when the receiver documents what it means ("" if not)."""
        return ""


def check_object(entry: Any, keys: frozenset[str], text_keys: tuple[str, ...] = ()) -> str:
    """Empty when ``entry`` is a JSON object whose keys are all in ``keys`` and whose
    ``text_keys`` hold strings; else what is wrong (for ``check_entry``)."""
    if not isinstance(entry, dict):
        return "an entry is not a JSON object"
    if not entry.keys() <= keys:
        return f"an entry has unknown keys {sorted(entry.keys() - keys)[:3]}"
    if not all(isinstance(entry.get(key), str) for key in text_keys):
        return f"an entry lacks one of {', '.join(text_keys)}"
    return ""


def truncated(entry: str, max_chars: int, shrink: Callable[[Any], tuple[Any, Any]]) -> str:
    """``entry`` (JSON text) shrunk to at most ``max_chars`` where possible: ``shrink`` drops
    its structured part and says where the message is, which is then cut, with a marker saying
    how many bytes were removed. Rare (an entry larger than a batch, or a 413 for one entry)."""
    if len(entry) <= max_chars:
        return entry
    value = jsonsafe.loads(entry)  # never too deep to decode, unlike json.loads
    container, key = shrink(value)
    message = container[key]
    if not isinstance(message, str):
        message = jsonsafe.dumps(message)
    container[key] = ""
    overhead = len(json.dumps(value)) + len(TRUNCATION_MARKER) + 16
    keep = max(_MIN_MESSAGE_CHARS, max_chars - overhead)
    while True:
        # surrogatepass: a lone surrogate (from a JSON "\udcff" escape) counts, never raises.
        removed = _utf8_len(message) - _utf8_len(message[:keep])
        container[key] = message[:keep] + (TRUNCATION_MARKER.format(removed) if removed else "")
        shrunk = json.dumps(value, separators=(",", ":"))
        if len(shrunk) <= max_chars or keep == 0:
            return shrunk
        # Escapes (\uXXXX, \n; a character beyond the BMP is 12 bytes) make encoded text
        # longer than its characters: cut further, by the kept part's bytes per character, below
        # the minimum too — fitting the limit comes first.
        per_char = max(1.0, (len(quote(message[:keep])) - 2) / keep)
        keep = max(0, keep - int((len(shrunk) - max_chars) / per_char) - 1)


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


# -- times ------------------------------------------------------------------------------------

# "2024-01-15T10:30:00" -> its epoch seconds: the lines of one second share the work.
_SECONDS: dict[str, int] = {}
_MAX_SECONDS_CACHED = 256
# The same as decimal text (positive only), and "123Z" -> "123" / "123000000": filled as times
# arrive, not at import (which every cold start would pay for).
_SECONDS_TEXT: dict[str, str] = {}
_MILLIS: dict[str, str] = {}
_FRACTION_NS: dict[str, str] = {}


def epoch_ns(text: str) -> int:
    """Nanoseconds since the epoch of an ISO 8601 time as Lambda writes it
    (``2024-01-15T10:30:00.123Z``; any fraction, ``Z``, ``+HH:MM`` or no zone, read as UTC).

    ``ValueError`` for text that is not such a time (a hostile push may send anything).
    """
    head = text[:19]
    seconds = _SECONDS.get(head)
    if seconds is None:
        seconds = _seconds_of(head)
        if len(_SECONDS) >= _MAX_SECONDS_CACHED:
            _SECONDS.clear()
        _SECONDS[head] = seconds
    rest = text[19:]
    if len(rest) == 5 and rest[0] == "." and rest[4] == "Z":  # Lambda's own: milliseconds
        millis = rest[1:4]
        if millis.isdigit() and millis.isascii():
            return seconds * 1_000_000_000 + int(millis) * 1_000_000
    if rest == "Z" or not rest:
        return seconds * 1_000_000_000
    fraction = 0
    if rest[0] == ".":
        end = 1
        while end < len(rest) and rest[end].isdigit():
            end += 1
        digits = rest[1:end]
        if not digits or not digits.isascii():
            raise ValueError("no digits after the decimal point")
        fraction = int(digits[:9].ljust(9, "0"))
        rest = rest[end:]
    if rest and rest != "Z":
        if len(rest) != 6 or rest[0] not in "+-" or rest[3] != ":":
            raise ValueError(f"not a time zone: {rest[:8]!r}")
        offset = int(rest[1:3]) * 3600 + int(rest[4:6]) * 60
        seconds = seconds - offset if rest[0] == "+" else seconds + offset
    return seconds * 1_000_000_000 + fraction


def epoch_ns_or_now(text: str) -> int:
    """``epoch_ns(text)``, or now for text that is no time.

    Lambda's own times (``…:00.123Z``, a second already seen) take a path of their own: this
    runs once per entry of the formats that write nanoseconds."""
    if len(text) == 24 and text[23] == "Z" and text[19] == ".":
        seconds = _SECONDS.get(text[:19])
        millis = text[20:23]
        if seconds is not None and millis.isdigit() and millis.isascii():
            return seconds * 1_000_000_000 + int(millis) * 1_000_000
    try:
        return epoch_ns(text)
    except (ValueError, IndexError):
        return time.time_ns()


def epoch_seconds_ms(text: str) -> tuple[int, str]:
    """Epoch seconds and the three digits of milliseconds of an ISO 8601 time (now for text
    that is no time): the form Lambda writes (``2024-01-15T10:30:00.123Z``) read without
    arithmetic, as HEC and Datadog write times once per line."""
    head, _, rest = text.partition(".")  # one call, where slices cost a slice object each
    seconds = _SECONDS.get(head)
    if seconds is not None:
        digits = _MILLIS.get(rest)
        if digits is not None:
            return seconds, digits
    ns = epoch_ns_or_now(text)  # also fills the cache for the lines of this second
    _remember_millis(text)
    return ns // 1_000_000_000, f"{ns // 1_000_000 % 1000:03d}"


def epoch_ns_text(text: str) -> str:
    """``epoch_ns_or_now(text)`` as decimal text, as OTLP and Loki write it: Lambda's own
    times (``…:00.123Z``) by two lookups and a concatenation, with no arithmetic."""
    head, _, rest = text.partition(".")
    seconds = _SECONDS_TEXT.get(head)
    if seconds is not None:
        fraction = _FRACTION_NS.get(rest)
        if fraction is not None:
            return seconds + fraction
    ns = epoch_ns_or_now(text)
    if _remember_millis(text):
        seconds_of_head = _SECONDS.get(text[:19])
        # Only a positive count of seconds leads the text with no zero or sign to mind.
        if seconds_of_head is not None and seconds_of_head > 0:
            if len(_SECONDS_TEXT) >= _MAX_SECONDS_CACHED:
                _SECONDS_TEXT.clear()
            _SECONDS_TEXT[text[:19]] = str(seconds_of_head)
    return str(ns)


def _remember_millis(text: str) -> bool:
    """For a time in Lambda's form (``YYYY-MM-DDTHH:MM:SS.mmmZ``), keep its ``mmmZ``'s
    milliseconds and nanoseconds (at most 1,000 of each); say whether it has that form."""
    if len(text) == 24 and text[19] == "." and text[23] == "Z":
        digits = text[20:23]
        if digits.isdigit() and digits.isascii():
            _MILLIS[digits + "Z"] = digits
            _FRACTION_NS[digits + "Z"] = digits + "000000"
            return True
    return False


def _seconds_of(head: str) -> int:
    """Epoch seconds of ``YYYY-MM-DDTHH:MM:SS`` (UTC), without ``calendar`` or ``datetime``."""
    if len(head) != 19 or head[4] != "-" or head[7] != "-" or head[10] not in "T t":
        raise ValueError("not an ISO 8601 time")
    if head[13] != ":" or head[16] != ":" or not head.isascii():
        raise ValueError("not an ISO 8601 time")
    year, month, day = int(head[0:4]), int(head[5:7]), int(head[8:10])
    hour, minute, second = int(head[11:13]), int(head[14:16]), int(head[17:19])
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        raise ValueError("a field out of range")
    # Days from 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    days = era * 146097 + day_of_era - 719468
    return days * 86400 + hour * 3600 + minute * 60 + second


# -- trace ids --------------------------------------------------------------------------------

_HEX = frozenset("0123456789abcdefABCDEF")


def w3c_trace_id(xray_root: str) -> str:
    """The 32 hex digits of an X-Ray root (``1-5759e988-bd862e3fe1be46a994272793``), lower
    case, as OTLP and ECS write trace ids; "" when it is not one (32 hex digits pass as they
    are)."""
    if len(xray_root) == 35 and xray_root[:2] == "1-" and xray_root[10] == "-":
        digits = xray_root[2:10] + xray_root[11:]
    elif len(xray_root) == 32:
        digits = xray_root
    else:
        return ""
    if not set(digits) <= _HEX or digits.strip("0") == "":
        return ""
    return digits.lower()


def w3c_span_id(parent: str) -> str:
    """An X-Ray parent id (16 hex digits), lower case; "" when it is not one."""
    if len(parent) != 16 or not set(parent) <= _HEX or parent.strip("0") == "":
        return ""
    return parent.lower()
