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

A file holds the batch's entries one per line, in the output format (``HTTP_FORMAT``) they were
encoded in, which its header names: a file of another format than the one now configured (the
setting changed between two processes) is never sent — it would reach a receiver that reads
another format — but moved to ``rejected/`` and its records counted as dropped
(``spill_other_format``), in one line for all of them.

What is in the directory is untrusted input: the function's own code can write there, and so
could an earlier version of the extension. A file is sent only if it is exactly what this code
writes — a header with exactly its keys and types, a name that matches it, a payload of as many
entries as the header says, each one that the format's encoder recognises as its own
(``Encoder.check_entry``: the structure, the keys), within the size bounds — and it is read
without following a link or blocking on a FIFO. Anything else is moved to ``rejected/`` (a few
files kept, for a look) and its records counted as dropped (``spill_invalid``); it never stops
the worker. Files of the first version (``lambda-logs-http/spill/1``: seed entries,
comma-separated) are still read. The directory is ``0700`` and the files ``0600``;
one of wider mode that this process owns is narrowed, one owned by another user is not used.

A file this process wrote is known by the SHA-256 of its bytes, kept in memory: read back
unchanged, it is not checked again. Behind a slow receiver, where most batches go through the
disk, checking a 1 MB batch's entries (10 to 25 ms) would hold up every send, on the sender's
thread; the digest costs about a millisecond. A file changed in any way since is checked like
any other.
"""

from __future__ import annotations

import errno
import os
import stat
import time

from .. import log
from ..settings.load import MAX_BATCH_BYTES, MAX_BATCH_RECORDS
from .batching import SEED, Framing

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

FORMAT = "lambda-logs-http/spill/2"
FORMAT_V1 = "lambda-logs-http/spill/1"  # seed entries, comma-separated; read, never written
SUFFIX = ".batch"
TEMPORARY = ".tmp"
REJECTED = "rejected"
HEADER_KEYS = frozenset({"format", "batch_id", "records", "spilled_at", "output"})
HEADER_KEYS_V1 = frozenset({"format", "batch_id", "records", "spilled_at"})
OTHER_FORMAT = "spill_other_format"
MAX_HEADER_BYTES = 512  # the header this code writes is about 140 bytes
MAX_PAYLOAD_BYTES = MAX_BATCH_BYTES
MAX_RECORDS = MAX_BATCH_RECORDS
# Files indexed at most: each costs a little memory and an open at start.
MAX_FILES = 16_384
# What rejected/ keeps at most (the newest); a larger file is deleted at once.
REJECTED_MAX_FILES = 16
REJECTED_MAX_BYTES = 4 << 20
_OUTPUT_NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")
_BATCH_ID_CHARACTERS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."
)
_MAX_BATCH_ID_CHARS = 128
_DIRECTORY_MODE = 0o700
_FILE_MODE = 0o600
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_LOGGED_REJECTS = 3  # rejections logged one by one (then at debug level)


class Invalid(ValueError):
    """A spill file that is not what this code writes; ``records`` is what it claimed to hold
    (0 when it did not say)."""

    def __init__(self, reason: str, records: int = 0) -> None:
        super().__init__(reason)
        self.records = records


class OtherFormat(Invalid):
    """A spill file of another output format than the one configured (``output`` names it)."""

    def __init__(self, output: str, records: int) -> None:
        super().__init__(f"entries in the {output} format", records)
        self.output = output


class SpilledBatch:
    """A batch read back from disk: same interface as ``batching.Batch`` for the worker."""

    __slots__ = ("path", "batch_id", "entries", "size", "attempts", "marks", "reports",
                 "framing")  # fmt: skip

    def __init__(self, path: str, batch_id: str, entries: list[str], framing: Framing) -> None:
        self.path = path
        self.batch_id = batch_id
        self.entries = entries
        self.framing = framing
        self.size = framing.size(entries)
        self.attempts = 0
        self.marks: list[str] = []
        self.reports = 0

    def __len__(self) -> int:
        return len(self.entries)

    def body(self, timestamp: str | None = None) -> bytes:
        return self.framing.body(self.entries, timestamp)


class SpillStore:
    """The spill directory: append newest, read oldest, delete after delivery.

    ``on_drop(reason, records)`` is told of records lost here other than through ``write``'s
    return value: files rejected as invalid (``spill_invalid``) or of another output format
    (``spill_other_format``) and, at ``open``, files beyond the caps (``spill_full``).
    ``framing`` is the configured output format's: what is written, and all that is read.
    """

    def __init__(
        self,
        directory: str,
        max_bytes: int,
        on_drop: Callable[[str, int], None] | None = None,
        framing: Framing = SEED,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._on_drop = on_drop
        self.framing = framing
        self._files: list[tuple[str, int, int]] = []  # (path, size, records), oldest first
        # The SHA-256 of each file this process wrote and holds, by path: see the module's doc.
        self._digests: dict[str, bytes] = {}
        self._bytes = 0
        self._records = 0
        self._rejected = 0  # files rejected by this process
        self._write_failures = 0  # in the current streak of failed writes

    # -- opening ------------------------------------------------------------------------------

    def open(self) -> int:
        """Create (or check) the directory and index the files left by an earlier process;
        return their count. Never raises: an unusable directory disables spilling."""
        try:
            self._prepare_directory()
            names = sorted(os.listdir(self.directory))
        except (OSError, _Refused) as exc:
            log.warning(
                f"spill directory {self.directory} unusable ({_reason(exc)}); spilling disabled"
            )
            self.max_bytes = 0
            return 0
        rejected: list[tuple[str, str, int]] = []  # (name, reason, records)
        other: dict[str, int] = {}  # output format -> records
        for name in names:
            path = os.path.join(self.directory, name)
            if name.endswith(TEMPORARY):
                _remove(path)  # a write cut short by the end of an earlier process
            elif name.endswith(SUFFIX):
                try:
                    size, records = self._index(path, name)
                except OtherFormat as exc:
                    other[exc.output] = other.get(exc.output, 0) + exc.records
                    self._reject(path, exc.records, OTHER_FORMAT)
                    continue
                except Invalid as exc:
                    rejected.append((name, str(exc), exc.records))
                    self._reject(path, exc.records)
                    continue
                except (OSError, ValueError, RecursionError) as exc:
                    rejected.append((name, _reason(exc), 0))
                    self._reject(path, 0)
                    continue
                self._add(path, size, records)
        if rejected:
            name, reason, _ = rejected[0]
            total = sum(max(1, records) for _, _, records in rejected)
            log.error(
                f"moved {len(rejected)} invalid spill files to {self._rejected_dir()} and "
                f"counted {total} records as dropped (spill_invalid); the first, {name}: {reason}"
            )
        if other:
            self._log_other_formats(other)
        self._enforce_caps_at_open()
        return len(self._files)

    def _prepare_directory(self) -> None:
        """The directory exists, is a directory this process owns, and is 0700."""
        os.makedirs(self.directory, mode=_DIRECTORY_MODE, exist_ok=True)
        info = os.stat(self.directory)  # a link to a directory is judged by that directory
        if not stat.S_ISDIR(info.st_mode):
            raise _Refused("not a directory")
        if info.st_uid != os.geteuid():
            # Another user could read what we write there, or plant files for us to send.
            raise _Refused(
                f"owned by uid {info.st_uid}, not by this process (uid {os.geteuid()}); "
                "set HTTP_SPILL_DIR to a directory of its own"
            )
        mode = stat.S_IMODE(info.st_mode)
        if mode != _DIRECTORY_MODE:
            os.chmod(self.directory, _DIRECTORY_MODE)
            log.info(f"spill directory {self.directory}: mode {mode:04o} narrowed to 0700")

    def _index(self, path: str, name: str) -> tuple[int, int]:
        """Check the file's kind, owner, size and header; return its (size, records)."""
        fd = os.open(path, _READ_FLAGS)  # a link or a FIFO is refused, never followed or waited on
        try:
            info = _check_file(fd)
            header = _read_header(fd)
        finally:
            os.close(fd)
        _, records, output, _ = _check_header(header, name)
        if output != self.framing.name:
            raise OtherFormat(output, records)
        return info.st_size, records

    def _log_other_formats(self, other: dict[str, int]) -> None:
        """One line for every file of another output format (found at open, or later)."""
        found = ", ".join(f"{records} records in {output}" for output, records in other.items())
        log.error(
            f"spill directory {self.directory} held batches of another output format than "
            f"HTTP_FORMAT={self.framing.name} ({found}): never sent to this receiver; moved to "
            f"{self._rejected_dir()} and counted as dropped ({OTHER_FORMAT})"
        )

    def _enforce_caps_at_open(self) -> None:
        """Files beyond ``MAX_FILES`` or ``max_bytes`` (a lower cap than the earlier process
        had): the oldest go, as ``write`` would have dropped them."""
        dropped = 0
        while self._files and (len(self._files) > MAX_FILES or self._bytes > self.max_bytes):
            dropped += self._files[0][2]
            self.remove_oldest()
        if dropped:
            self._dropped("spill_full", dropped)
            log.error(
                f"spill directory {self.directory} held more than its cap "
                f"({self.max_bytes} bytes, {MAX_FILES} files): dropped the oldest {dropped} records"
            )

    # -- the index ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._files)

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def records(self) -> int:
        return self._records

    def can_hold(self, size: int) -> bool:
        return size <= self.max_bytes

    def _add(self, path: str, size: int, records: int, first: bool = False) -> None:
        if first:
            self._files.insert(0, (path, size, records))
        else:
            self._files.append((path, size, records))
        self._bytes += size
        self._records += records

    def _forget_oldest(self) -> tuple[str, int, int]:
        return self._unindex(0)

    def _unindex(self, index: int) -> tuple[str, int, int]:
        """Forget the file at ``index`` of the index, its digest with it; return its entry."""
        path, size, records = self._files.pop(index)
        self._digests.pop(path, None)
        self._bytes -= size
        self._records -= records
        return path, size, records

    # -- writing ------------------------------------------------------------------------------

    def write(
        self,
        batch_id: str,
        records: int,
        payload: bytes,
        keep: str | None = None,
        first: bool = False,
    ) -> list[int]:
        """Store one batch; return the record counts of the oldest files dropped to make room
        (never ``keep``: the file whose batch is being sent). ``first``: the batch is older
        than every file held (one that was in flight while newer ones were spilled), so it is
        named and read before them, in this process and the next.

        ``OSError`` when it cannot be written (a full disk): nothing is left behind, and the
        first failure of a streak is logged (the others at debug level, the recovery at info).
        """
        import json

        if records <= 0:
            return []  # nothing to keep (a file must hold at least one record)
        header = json.dumps({"format": FORMAT, "batch_id": batch_id, "records": records,
                             "spilled_at": time.time(),
                             "output": self.framing.name}).encode()  # fmt: skip
        data = header + b"\n" + payload
        dropped = []
        while self._files and (
            self._bytes + len(data) > self.max_bytes or len(self._files) >= MAX_FILES
        ):
            victim = next((i for i, (known, _, _) in enumerate(self._files) if known != keep), None)
            if victim is None:
                break
            path, _, count = self._unindex(victim)
            _remove(path)
            dropped.append(count)
        stamp = time.time_ns()
        if first and self._files:
            stamp = int(os.path.basename(self._files[0][0])[:20]) - 1
        path = os.path.join(self.directory, f"{stamp:020d}-{batch_id}{SUFFIX}")
        try:
            try:
                _write_file(path, data)
            except FileNotFoundError:  # the directory was removed meanwhile: once more
                os.makedirs(self.directory, mode=_DIRECTORY_MODE, exist_ok=True)
                _write_file(path, data)
        except OSError as exc:
            self._write_failed(exc)
            raise
        if self._write_failures:
            log.info(
                f"spill directory {self.directory} writable again after "
                f"{self._write_failures} failed writes"
            )
            self._write_failures = 0
        self._add(path, len(data), records, first)
        self._digests[path] = _digest(data)
        return dropped

    def _write_failed(self, exc: OSError) -> None:
        self._write_failures += 1
        if self._write_failures == 1:
            log.error(
                f"could not write to the spill directory {self.directory} ({_reason(exc)}): "
                "batches beyond the memory cap are dropped and counted (buffer_full) until a "
                "write succeeds (repeats are logged at debug level)"
            )
        elif log.enabled(log.DEBUG):
            log.debug(f"spill write failed again ({_reason(exc)}), {self._write_failures} in a row")

    # -- reading ------------------------------------------------------------------------------

    def read_oldest(self) -> SpilledBatch | None:
        """The oldest valid batch, or None. Invalid files are moved aside and counted; files
        that vanished or cannot be read are forgotten and counted."""
        while self._files:
            path, _, indexed = self._files[0]
            try:
                return self._load(path)
            except OtherFormat as exc:  # written meanwhile by another process: rare
                self._forget_oldest()
                self._log_other_formats({exc.output: exc.records})
                self._reject(path, exc.records, OTHER_FORMAT)
            except Invalid as exc:
                self._forget_oldest()
                self._log_reject(path, str(exc))
                self._reject(path, exc.records or indexed)
            except (OSError, ValueError, RecursionError) as exc:
                self._forget_oldest()
                self._log_reject(path, _reason(exc))
                self._reject(path, indexed)
        return None

    def _load(self, path: str) -> SpilledBatch:
        fd = os.open(path, _READ_FLAGS)
        try:
            info = _check_file(fd)
            header = _read_header(fd)
            payload = _read_rest(fd, info.st_size - len(header))
        finally:
            os.close(fd)
        batch_id, records, output, v1 = _check_header(header, os.path.basename(path))
        if output != self.framing.name:
            raise OtherFormat(output, records)
        written = self._digests.get(path)
        if written is not None and written == _digest(header, payload):
            entries = payload.decode("ascii").split("\n")  # as this process wrote it
        else:
            entries = check_payload(payload, records, self.framing, comma_separated=v1)
        return SpilledBatch(path, batch_id, entries, self.framing)

    # -- removing -----------------------------------------------------------------------------

    def remove_oldest(self) -> None:
        path, _, _ = self._forget_oldest()
        _remove(path)

    def remove(self, path: str) -> None:
        """Delete one file (after its batch was delivered); a no-op if it is already gone."""
        for index, (known, _, _) in enumerate(self._files):
            if known == path:
                self._unindex(index)
                _remove(path)
                return

    # -- rejecting ----------------------------------------------------------------------------

    def _rejected_dir(self) -> str:
        return os.path.join(self.directory, REJECTED)

    def _log_reject(self, path: str, reason: str) -> None:
        self._rejected += 1
        level = log.ERROR if self._rejected <= _LOGGED_REJECTS else log.DEBUG
        log.emit(
            level,
            f"moved the invalid spill file {path} to {self._rejected_dir()} and counted its "
            f"records as dropped (spill_invalid): {reason}",
        )

    def _reject(self, path: str, records: int, reason: str = "spill_invalid") -> None:
        """Move ``path`` into ``rejected/`` (bounded: the oldest there go first), or delete it;
        count its records (at least one: it stood for a batch)."""
        self._dropped(reason, max(1, records))
        rejected = self._rejected_dir()
        try:
            size = os.lstat(path).st_size
            if size > REJECTED_MAX_BYTES:
                raise OSError("too large to keep")
            try:
                os.mkdir(rejected, _DIRECTORY_MODE)
            except FileExistsError:
                info = os.lstat(rejected)
                if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
                    raise OSError("rejected/ is not our directory") from None  # not even a link
            kept = sorted(os.listdir(rejected))
            sizes = [_size(os.path.join(rejected, name)) for name in kept]
            while kept and (
                len(kept) >= REJECTED_MAX_FILES or sum(sizes) + size > REJECTED_MAX_BYTES
            ):
                _remove(os.path.join(rejected, kept.pop(0)))
                sizes.pop(0)
            target = f"{time.time_ns():020d}-{os.path.basename(path)}"
            os.replace(path, os.path.join(rejected, target))
        except OSError:
            _remove(path)

    def _dropped(self, reason: str, records: int) -> None:
        if self._on_drop is not None and records > 0:
            self._on_drop(reason, records)


class _Refused(Exception):
    """The spill directory must not be used (the reason is the message)."""


def _digest(*parts: bytes) -> bytes:
    """The SHA-256 of ``parts`` joined (without joining them: a batch is up to a megabyte)."""
    import hashlib  # only once something is spilled

    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.digest()


def _check_file(fd: int) -> os.stat_result:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise Invalid("not a regular file")
    if info.st_uid != os.geteuid():
        raise Invalid(f"owned by uid {info.st_uid}, not by this process")
    if info.st_size > MAX_HEADER_BYTES + 1 + MAX_PAYLOAD_BYTES:
        raise Invalid(f"{info.st_size} bytes, more than any batch")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.fchmod(fd, _FILE_MODE)  # written by an earlier version, readable by others
    return info


def _read_header(fd: int) -> bytes:
    """The header line, newline included (read in one go: it is small and comes first)."""
    start = os.read(fd, MAX_HEADER_BYTES + 1)
    end = start.find(b"\n")
    if end < 0:
        raise Invalid("no header line" if start else "empty")
    os.lseek(fd, end + 1, os.SEEK_SET)
    return start[: end + 1]


def _read_rest(fd: int, size: int) -> bytes:
    chunks = []
    while size > 0:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _check_header(line: bytes, name: str) -> tuple[str, int, str, bool]:
    """``(batch_id, records, output format, first version)`` from a header line exactly as
    ``write`` makes it (or as the first version did), for the file named ``name``; ``Invalid``
    otherwise."""
    import json

    try:
        header = json.loads(line)
    except (ValueError, RecursionError):
        raise Invalid("the header is not JSON") from None
    if not isinstance(header, dict):
        raise Invalid("the header is not a JSON object")
    records = header.get("records")
    claimed = records if type(records) is int and 0 < records <= MAX_RECORDS else 0
    version = header.get("format")
    keys = HEADER_KEYS_V1 if version == FORMAT_V1 else HEADER_KEYS
    if set(header) != keys:
        unknown = sorted(set(header) - keys)[:3]
        missing = sorted(keys - set(header))
        raise Invalid(f"header keys: unknown {unknown}, missing {missing}", claimed)
    if version not in (FORMAT, FORMAT_V1):
        raise Invalid(f"unknown format {str(version)[:40]!r}", claimed)
    output = header.get("output", "seed")
    if not (
        isinstance(output, str) and 0 < len(output) <= 32 and set(output) <= _OUTPUT_NAME_CHARACTERS
    ):
        raise Invalid("output is not a format name", claimed)
    batch_id = header["batch_id"]
    if not (
        isinstance(batch_id, str)
        and 0 < len(batch_id) <= _MAX_BATCH_ID_CHARS
        and set(batch_id) <= _BATCH_ID_CHARACTERS
    ):
        raise Invalid("batch_id is not an id this extension writes", claimed)
    if not claimed:
        raise Invalid(f"records must be a whole number from 1 to {MAX_RECORDS}")
    spilled_at = header["spilled_at"]
    if type(spilled_at) not in (int, float) or not 0 <= spilled_at < float("inf"):
        raise Invalid("spilled_at is not a time", claimed)
    if not (name.endswith(f"-{batch_id}{SUFFIX}") and name[:20].isdigit() and name[20] == "-"):
        raise Invalid("the file name does not match its header", claimed)
    return batch_id, records, output, version == FORMAT_V1


def check_payload(
    payload: bytes, records: int, framing: Framing = SEED, comma_separated: bool = False
) -> list[str]:
    """The entries of ``payload``, ``Invalid`` unless it is what ``Batch.payload`` makes:
    ``records`` ASCII JSON entries, one per line (comma-separated in the first version), each
    one the format's encoder recognises as its own — so that framed into a request it adds
    entries of that format and nothing else."""
    import json

    if len(payload) > MAX_PAYLOAD_BYTES:
        raise Invalid(f"a payload of {len(payload)} bytes, more than any batch", records)
    if not payload.isascii():
        raise Invalid("the payload is not ASCII JSON", records)
    try:
        # Structure is what is checked (values are the transform's: NaN, which Python's json
        # reads, is its to avoid writing), and it is what keeps a planted payload from adding
        # anything to the request but entries.
        if comma_separated:
            decoded = json.loads(b"[" + payload + b"]")
            dumps = json.JSONEncoder(separators=(",", ":")).encode
            lines = [dumps(entry) for entry in decoded]
        else:
            lines = payload.decode("ascii").split("\n")
            decoded = [json.loads(line) for line in lines]
    except (ValueError, RecursionError):
        raise Invalid("an entry is not JSON", records) from None
    if len(decoded) != records:
        raise Invalid(
            f"the header says {records} records, the payload holds {len(decoded)}", records
        )
    check = framing.encoder.check_entry if framing.encoder is not None else _check_seed
    for line, entry in zip(lines, decoded):
        problem = check(entry)
        if not problem and framing.group_mark:
            try:
                framing.key(line)
            except ValueError:
                problem = "an entry is not written as this extension writes it"
            if not line.endswith(framing.group_tail):
                problem = "an entry is not written as this extension writes it"
        if problem:
            raise Invalid(problem, records)
    return lines


def _check_seed(entry: object) -> str:
    from ..records.encoders.seed import check

    return check(entry)


def _write_file(path: str, data: bytes) -> None:
    """``data`` in a new ``0600`` file at ``path``, through a temporary name: a reader sees all
    of it or nothing, and a failed write (a full disk) leaves nothing behind. No ``fsync``: what
    this protects against is the end of a process (``/tmp`` outlives it, in the page cache), and
    a machine that stops takes ``/tmp`` with it."""
    temporary = path + TEMPORARY
    fd = os.open(temporary, _WRITE_FLAGS, _FILE_MODE)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except OSError:
        _remove(temporary)
        raise


def _size(path: str) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0


def _reason(exc: BaseException) -> str:
    """An error in words, without the path (the line names it already)."""
    if isinstance(exc, OSError) and exc.errno == errno.ELOOP:
        return "a symbolic link (not followed)"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass
