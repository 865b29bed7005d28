"""Batches kept on disk when memory is full, and found again after a restart.

When the in-memory backlog passes ``HTTP_MAX_BUFFER_BYTES`` (the receiver is down or slow), the
oldest batches move to files under ``HTTP_SPILL_DIR`` (``/tmp`` by default). Lambda keeps
``/tmp`` when it re-initialises an environment in place — after a function timeout or a crash —
so a new extension process finds the files and sends them first. Each file is self-describing
(a JSON header line, then the entries), written to a temporary name and renamed, so a reader
never sees half a file; it is deleted only once the receiver answered 2xx (or the batch was
dropped for good and counted). Beyond ``HTTP_MAX_SPILL_BYTES`` the oldest file is dropped.

Files are named by a nanosecond counter so that ordering survives restarts: disk holds the
oldest batches, memory the newer ones, and the worker sends disk first.
"""

from __future__ import annotations

import os
import time

from .. import log

FORMAT = "lambda-logs-http/spill/1"
SUFFIX = ".batch"


class SpilledBatch:
    """A batch read back from disk: same interface as ``batching.Batch`` for the worker."""

    __slots__ = ("path", "batch_id", "records", "size", "payload", "attempts", "marks", "reports")

    def __init__(self, path: str, batch_id: str, records: int, payload: bytes) -> None:
        self.path = path
        self.batch_id = batch_id
        self.records = records
        self.payload = payload
        self.size = len(payload)
        self.attempts = 0
        self.marks: list[str] = []
        self.reports = 0

    def __len__(self) -> int:
        return self.records

    def body(self, timestamp: str | None = None) -> bytes:
        from .batching import envelope

        return envelope(self.payload, timestamp)


class SpillStore:
    """The spill directory: append newest, read oldest, delete after delivery."""

    def __init__(self, directory: str, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._files: list[tuple[str, int, int]] = []  # (path, size, records), oldest first
        self._bytes = 0

    def open(self) -> int:
        """Create the directory and index files left by an earlier process; return their count."""
        import json  # on the worker thread, off the cold-start path

        try:
            os.makedirs(self.directory, exist_ok=True)
            names = sorted(n for n in os.listdir(self.directory) if n.endswith(SUFFIX))
        except OSError as exc:
            log.warning(f"spill directory {self.directory} unusable ({exc}); spilling disabled")
            self.max_bytes = 0
            return 0
        for name in names:
            path = os.path.join(self.directory, name)
            try:
                size = os.path.getsize(path)
                with open(path, "rb") as source:
                    records = int(json.loads(source.readline()).get("records", 0))
            except (OSError, ValueError, AttributeError) as exc:
                log.error(f"removing unreadable spill file {path}: {exc}")
                _remove(path)
                continue
            self._files.append((path, size, records))
            self._bytes += size
        return len(self._files)

    def __len__(self) -> int:
        return len(self._files)

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def records(self) -> int:
        return sum(records for _, _, records in self._files)

    def can_hold(self, size: int) -> bool:
        return size <= self.max_bytes

    def write(
        self, batch_id: str, records: int, payload: bytes, keep: str | None = None
    ) -> list[int]:
        """Store one batch; return the record counts of the oldest files dropped to make room
        (never ``keep``: the file whose batch is being sent)."""
        import json

        header = json.dumps({"format": FORMAT, "batch_id": batch_id, "records": records,
                             "spilled_at": time.time()}).encode()  # fmt: skip
        data = header + b"\n" + payload
        dropped = []
        while self._bytes + len(data) > self.max_bytes:
            victims = [i for i, (path, _, _) in enumerate(self._files) if path != keep]
            if not victims:
                break
            path, size, count = self._files.pop(victims[0])
            self._bytes -= size
            _remove(path)
            dropped.append(count)
        name = f"{time.time_ns():020d}-{batch_id}{SUFFIX}"
        path = os.path.join(self.directory, name)
        temporary = path + ".tmp"
        with open(temporary, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
        self._files.append((path, len(data), records))
        self._bytes += len(data)
        return dropped

    def read_oldest(self) -> SpilledBatch | None:
        """The oldest batch, or None. Unreadable files are removed (and logged)."""
        import json

        while self._files:
            path = self._files[0][0]
            try:
                with open(path, "rb") as source:
                    header = json.loads(source.readline())
                    payload = source.read()
                if header.get("format") != FORMAT:
                    raise ValueError(f"unknown format {header.get('format')!r}")
                return SpilledBatch(path, str(header["batch_id"]), int(header["records"]), payload)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error(f"removing unreadable spill file {path}: {exc}")
                self.remove_oldest()
        return None

    def remove_oldest(self) -> None:
        path, size, _ = self._files.pop(0)
        self._bytes -= size
        _remove(path)

    def remove(self, path: str) -> None:
        """Delete one file (after its batch was delivered); a no-op if it is already gone."""
        for index, (known, size, _) in enumerate(self._files):
            if known == path:
                del self._files[index]
                self._bytes -= size
                _remove(path)
                return


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass
