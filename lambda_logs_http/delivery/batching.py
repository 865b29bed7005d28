"""Grouping encoded entries into request bodies, counted in real encoded bytes.

Entries arrive already encoded as ASCII JSON (see ``transform``), so a batch's size is the exact
sum of its entries, commas and the envelope — never an estimate that a receiver's limit could
catch out (a peer's 413s came from under-counting). An entry too large to fit in any batch is
truncated here, with a marker, rather than sent to certain rejection.
"""

from __future__ import annotations

import itertools
import os

from ..records.timestamps import utc_now_iso

ENVELOPE_SOURCE = "aws-lambda-extension"
_HEAD_TEXT = '{"logs":['
_TAIL_TEXT = '],"source":"' + ENVELOPE_SOURCE + '","timestamp":"'
_HEAD = _HEAD_TEXT.encode()
_TAIL_PREFIX = _TAIL_TEXT.encode()
# The tail holds a timestamp like 2024-01-15T10:30:00.000Z: its length is fixed.
ENVELOPE_BYTES = len(_HEAD) + len(_TAIL_PREFIX) + len('2024-01-15T10:30:00.000Z"}')
TRUNCATION_MARKER = "…[truncated by lambda-logs-http: {} bytes removed]"
_MIN_MESSAGE_CHARS = 256

_batch_numbers = itertools.count(1)
_process_tag = os.urandom(6).hex()


def envelope(payload: bytes, timestamp: str | None = None) -> bytes:
    """``{"logs":[<payload>],"source":"aws-lambda-extension","timestamp":…}``."""
    stamp = (timestamp or utc_now_iso()).encode()
    return b"".join((_HEAD, payload, _TAIL_PREFIX, stamp, b'"}'))


def new_batch_id() -> str:
    """Unique per batch, stable across its retries, unique across processes (a random tag)."""
    return f"{_process_tag}-{next(_batch_numbers)}"


def truncate_entry(entry: str, max_chars: int) -> str:
    """``entry`` shrunk to at most ``max_chars`` (where possible) by cutting its message.

    The structured ``record`` goes first (it repeats the message and is usually what is big),
    then the message is cut and a marker says how much was removed.
    """
    if len(entry) <= max_chars:
        return entry
    import json  # rare path

    from ..records import jsonsafe

    fields = jsonsafe.loads(entry)  # never too deep to decode, unlike json.loads
    fields.pop("record", None)
    message = str(fields.get("message", ""))
    fields["message"] = ""
    overhead = len(json.dumps(fields)) + len(TRUNCATION_MARKER) + 16
    keep = max(_MIN_MESSAGE_CHARS, max_chars - overhead)
    while True:
        # surrogatepass: a lone surrogate (from a JSON "\udcff" escape) counts, never raises.
        removed = _utf8_len(message) - _utf8_len(message[:keep])
        fields["message"] = message[:keep] + (TRUNCATION_MARKER.format(removed) if removed else "")
        shrunk = json.dumps(fields)
        if len(shrunk) <= max_chars or keep <= _MIN_MESSAGE_CHARS:
            return shrunk
        # Escapes (\uXXXX, \n) make encoded text longer than its characters: cut further.
        keep = max(_MIN_MESSAGE_CHARS, keep - (len(shrunk) - max_chars) - 8)


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


class Batch:
    """Entries that go out in one request, and the request ids whose ``runtimeDone`` they carry.

    ``batch_id`` stays the same across retries, so a receiver can de-duplicate a batch that was
    delivered but whose answer was lost (e.g. to a freeze). ``reports`` counts the synthetic
    drop-report entries in it, so dropping a batch of nothing but reports reports nothing.
    """

    __slots__ = ("entries", "size", "marks", "created", "batch_id", "attempts", "reports")

    def __init__(self, created: float, entries: list[str] | None = None) -> None:
        self.entries: list[str] = entries if entries is not None else []
        self.size = ENVELOPE_BYTES + sum(map(len, self.entries)) + max(0, len(self.entries) - 1)
        self.marks: list[str] = []
        self.created = created
        self.batch_id = new_batch_id()
        self.attempts = 0
        self.reports = 0

    def __len__(self) -> int:
        return len(self.entries)

    def payload(self) -> bytes:
        """The entries, comma-joined: what goes between the envelope's brackets."""
        return ",".join(self.entries).encode("ascii")

    def body(self, timestamp: str | None = None) -> bytes:
        """The request body: ``{"logs":[…],"source":"aws-lambda-extension","timestamp":…}``.

        Built with one join and one encode: the envelope goes onto the first and last entries
        rather than around a joined copy (a batch is up to a megabyte, built once per send).
        """
        stamp = timestamp or utc_now_iso()
        parts = list(self.entries) or [""]
        parts[0] = _HEAD_TEXT + parts[0]
        parts[-1] = f'{parts[-1]}{_TAIL_TEXT}{stamp}"}}'
        return ",".join(parts).encode("ascii")


class Batcher:
    """Holds the batch being filled; hands back batches as they become full."""

    def __init__(self, max_bytes: int, max_records: int) -> None:
        self.max_bytes = max_bytes
        self.max_records = max_records
        self.open: Batch | None = None
        self.truncated = 0  # entries cut to fit max_bytes

    def add(self, entry: str, now: float, mark: str = "", report: bool = False) -> Batch | None:
        """Add one entry; return the previous batch if this entry did not fit in it."""
        if len(entry) + ENVELOPE_BYTES > self.max_bytes:
            entry = truncate_entry(entry, self.max_bytes - ENVELOPE_BYTES)
            self.truncated += 1
        full = None
        batch = self.open
        added = len(entry) + (1 if batch is not None and batch.entries else 0)
        if (
            batch is not None
            and batch.entries
            and (batch.size + added > self.max_bytes or len(batch.entries) >= self.max_records)
        ):
            full, batch = batch, None
            added = len(entry)
        if batch is None:
            batch = self.open = Batch(now)
        batch.entries.append(entry)
        batch.size += added
        if mark:
            batch.marks.append(mark)
        if report:
            batch.reports += 1
        return full

    def take(self) -> Batch | None:
        """Close and return the open batch (None if empty)."""
        batch, self.open = self.open, None
        return batch if batch is not None and batch.entries else None
