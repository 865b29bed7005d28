"""Grouping encoded entries into request bodies, counted in real encoded bytes.

Entries arrive already encoded as ASCII JSON (see ``transform``), so a batch's size is the exact
sum of its entries, commas and the envelope — never an estimate that a receiver's limit could
catch out (a peer's 413s came from under-counting).
"""

from __future__ import annotations

import itertools
import os

from .transform import utc_now_iso

ENVELOPE_SOURCE = "aws-lambda-extension"
_HEAD = b'{"logs":['
_TAIL_PREFIX = ('],"source":"' + ENVELOPE_SOURCE + '","timestamp":"').encode()
# The tail holds a timestamp like 2024-01-15T10:30:00.000Z: its length is fixed.
ENVELOPE_BYTES = len(_HEAD) + len(_TAIL_PREFIX) + len('2024-01-15T10:30:00.000Z"}')

_batch_numbers = itertools.count(1)
_process_tag = os.urandom(6).hex()


class Batch:
    """Entries that go out in one request, and the request ids whose ``runtimeDone`` they carry.

    ``batch_id`` stays the same across retries, so a receiver can de-duplicate a batch that was
    delivered but whose answer was lost (e.g. to a freeze).
    """

    __slots__ = ("entries", "size", "marks", "created", "batch_id", "attempts")

    def __init__(self, created: float) -> None:
        self.entries: list[str] = []
        self.size = ENVELOPE_BYTES
        self.marks: list[str] = []
        self.created = created
        self.batch_id = f"{_process_tag}-{next(_batch_numbers)}"
        self.attempts = 0

    def __len__(self) -> int:
        return len(self.entries)

    def body(self, timestamp: str | None = None) -> bytes:
        """The request body: ``{"logs":[…],"source":"aws-lambda-extension","timestamp":…}``."""
        stamp = (timestamp or utc_now_iso()).encode()
        return b"".join((_HEAD, ",".join(self.entries).encode("ascii"), _TAIL_PREFIX, stamp, b'"}'))


class Batcher:
    """Holds the batch being filled; hands back batches as they become full."""

    def __init__(self, max_bytes: int, max_records: int) -> None:
        self.max_bytes = max_bytes
        self.max_records = max_records
        self.open: Batch | None = None

    def add(self, entry: str, now: float, mark: str = "") -> Batch | None:
        """Add one entry; return the previous batch if this entry did not fit in it."""
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
        return full

    def take(self) -> Batch | None:
        """Close and return the open batch (None if empty)."""
        batch, self.open = self.open, None
        return batch if batch is not None and batch.entries else None
