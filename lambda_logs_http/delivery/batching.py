"""Grouping encoded entries into request bodies, counted in real encoded bytes.

Entries arrive already encoded as ASCII text (see ``transform``), so a batch's size is the exact
sum of its entries, separators and the format's framing — never an estimate that a receiver's
limit could catch out (a peer's 413s came from under-counting). ``Framing`` is that counting
for one format, from the strings the format declares (``records.encoders.base``):

* plain concatenation — ``head`` + entries joined by ``separator`` + ``tail``: the seed
  envelope, NDJSON, an OTLP request's ``logRecords``, a ``_bulk`` body (its action line is the
  separator), concatenated HEC events, a Datadog array;
* grouped (Loki) — each entry is a group of one (``<key><group_mark><value><group_tail>``, a
  Loki stream holding one line), and the body merges the entries of one key into one group: a
  line joining a stream already in the batch costs its value and a comma, a line opening a new
  stream costs its whole entry (the stream's labels) and a comma.

An entry too large to fit in any batch (or than the format's per-entry limit) is truncated
here, by its format, with a marker, rather than sent to certain rejection.
"""

from __future__ import annotations

import itertools
import os
from bisect import bisect_right

from .. import log
from ..records.timestamps import utc_now_iso
from ..settings.names import HTTP_MAX_BATCH_BYTES, HTTP_MAX_BATCH_RECORDS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..records.encoders.base import Encoder

ENVELOPE_SOURCE = "aws-lambda-extension"
STAMP = "{stamp}"
STAMP_CHARS = len("2024-01-15T10:30:00.000Z")  # utc_now_iso's, always
_SEED_HEAD = '{"logs":['
_SEED_TAIL = '],"source":"' + ENVELOPE_SOURCE + '","timestamp":"' + STAMP + '"}'
# The seed envelope's bytes (its timestamp's length is fixed).
ENVELOPE_BYTES = len(_SEED_HEAD) + len(_SEED_TAIL) - len(STAMP) + STAMP_CHARS
TRUNCATION_MARKER = "…[truncated by lambda-logs-http: {} bytes removed]"

_batch_numbers = itertools.count(1)
_process_tag = os.urandom(6).hex()


class Framing:
    """How one format's entries make a request body, and what its size is, exactly.

    Built from the format's encoder (``Framing.of``); immutable but for a one-entry cache
    (``key``), shared by the intake, the sender and the spill store. ``encoder`` is the
    format's, for what only it knows: how to truncate an entry, check one read back from disk,
    read an answer.
    """

    __slots__ = (
        "name", "content_type", "head", "separator", "tail", "group_mark", "group_tail",
        "request_headers", "query", "max_entry_bytes", "encoder", "overhead", "_stamped",
        "_value_cut", "max_batch_bytes", "max_batch_records", "_last_key",
    )  # fmt: skip

    def __init__(
        self,
        name: str = "seed",
        content_type: str = "application/json",
        head: str = _SEED_HEAD,
        separator: str = ",",
        tail: str = _SEED_TAIL,
        group_mark: str = "",
        group_tail: str = "",
        request_headers: tuple[tuple[str, str], ...] = (),
        query: str = "",
        max_entry_bytes: int = 0,
        encoder: Encoder | None = None,
        max_batch_bytes: int = 0,
        max_batch_records: int = 0,
    ) -> None:
        self.name = name
        self.max_batch_bytes = max_batch_bytes  # the receiver's limits per request (0: none)
        self.max_batch_records = max_batch_records
        self.content_type = content_type
        self.head = head
        self.separator = separator
        self.tail = tail
        self.group_mark = group_mark
        self.group_tail = group_tail
        self.request_headers = request_headers
        self.query = query
        self.max_entry_bytes = max_entry_bytes
        self.encoder = encoder
        self._stamped = STAMP in tail
        # The body's bytes around the entries (the stamp counted at its fixed length).
        self.overhead = len(head) + len(tail) + (STAMP_CHARS - len(STAMP) if self._stamped else 0)
        self._value_cut = len(group_mark) + len(group_tail)
        # The last key found, and it with the mark: the entry after is most often of the same
        # group. One tuple, read and replaced whole, so any thread may use it (see ``key``).
        self._last_key = ("", "\0")

    @classmethod
    def of(cls, encoder: Encoder) -> Framing:
        return cls(
            encoder.name,
            encoder.content_type,
            encoder.head,
            encoder.separator,
            encoder.tail,
            encoder.group_mark,
            encoder.group_tail,
            encoder.request_headers,
            encoder.query,
            encoder.max_entry_bytes,
            encoder,
            encoder.max_batch_bytes,
            encoder.max_batch_records,
        )

    @property
    def grouped(self) -> bool:
        return bool(self.group_mark)

    def key(self, entry: str) -> tuple[str, int]:
        """A grouped entry's key, and where its value starts. The mark can't occur inside a
        JSON string (its quote would be escaped there), so its first occurrence ends the key."""
        key, lead = self._last_key
        if entry.startswith(lead):
            # The last key again, the very object (its hash kept): no search, no new string.
            # Its mark is the first one here too: the two entries agree up to the mark's end.
            return key, len(lead)
        index = entry.find(self.group_mark)
        if index < 0:
            raise ValueError(f"not a {self.name} entry: no {self.group_mark!r}")
        start = index + len(self.group_mark)
        key = entry[:index]
        self._last_key = (key, entry[:start])
        return key, start

    def size(self, entries: list[str]) -> int:
        """The exact byte length of the body ``entries`` make."""
        if not entries:
            return self.overhead
        sep = len(self.separator)
        size = self.overhead + sum(map(len, entries)) + sep * (len(entries) - 1)
        if self.group_mark:
            seen: set[str] = set()
            for entry in entries:
                key, start = self.key(entry)
                if key in seen:
                    size -= start + len(self.group_tail)  # shares its group's head and tail
                else:
                    seen.add(key)
        return size

    def body(
        self,
        entries: list[str],
        timestamp: str | None = None,
        groups: dict[str, list[str]] | None = None,
    ) -> bytes:
        """The request body of ``entries``: built with one join and one encode (a batch is up
        to a megabyte, built once per send). ``groups``: a grouped format's entries by key,
        when the caller kept them (``Batch``), else they are found here."""
        tail = self.tail
        if self._stamped:
            tail = tail.replace(STAMP, timestamp or utc_now_iso())
        if self.group_mark:
            return self._grouped_body(groups if groups is not None else self.by_key(entries), tail)
        if not entries:
            return (self.head + tail).encode("ascii")
        parts = list(entries)
        parts[0] = self.head + parts[0]
        parts[-1] = parts[-1] + tail
        return self.separator.join(parts).encode("ascii")

    def by_key(self, entries: list[str]) -> dict[str, list[str]]:
        """A grouped format's entries by key, keys in the order they first appear."""
        groups: dict[str, list[str]] = {}
        _append_grouped(groups, entries, [self.key(entry)[0] for entry in entries])
        return groups

    def _grouped_body(self, groups: dict[str, list[str]], tail: str) -> bytes:
        """A grouped format's body: each group's entries merged into one group — its head (key
        and mark), its entries' values joined by the separator, its tail — and the groups joined
        with ``head`` and ``tail`` by one more join, each piece referenced, not copied, until
        then. A batch is up to a megabyte and usually one stream: every copy of a whole group
        on the way (the group with its head, then with the body's) was another megabyte held
        while the body was encoded. The values are cut out by an ``itemgetter`` of one slice,
        mapped in C: no Python call per entry."""
        from operator import itemgetter  # only grouped formats need it, at send time

        mark, sep, group_tail = self.group_mark, self.separator, self.group_tail
        end = -len(group_tail) or None
        pieces = [self.head]
        for key, entries in groups.items():
            if len(pieces) > 1:
                pieces.append(sep)
            if len(entries) == 1:
                pieces.append(entries[0])
                continue
            head = key + mark
            values = map(itemgetter(slice(len(head), end)), entries)
            pieces += (head, sep.join(values), group_tail)
        pieces.append(tail)
        text = "".join(pieces)
        del pieces  # the groups' joined values, freed before the encoded copy is made
        return text.encode("ascii")

    def truncate(self, entry: str, max_chars: int) -> str:
        """``entry`` cut to at most ``max_chars`` by its format (see ``Encoder.truncate``)."""
        if len(entry) <= max_chars:
            return entry
        if self.encoder is None:
            return truncate_entry(entry, max_chars)
        return self.encoder.truncate(entry, max_chars)

    def entry_limit(self, max_bytes: int) -> int:
        """The largest entry a batch of ``max_bytes`` can hold in this format."""
        limit = max_bytes - self.overhead
        return min(limit, self.max_entry_bytes) if self.max_entry_bytes else limit


SEED = Framing()
"""The default format's framing, for batches made without an encoder at hand (tests)."""


def envelope(payload: bytes, timestamp: str | None = None) -> bytes:
    """``{"logs":[<payload>],"source":"aws-lambda-extension","timestamp":…}``."""
    stamp = timestamp or utc_now_iso()
    return b"".join((_SEED_HEAD.encode(), payload, _SEED_TAIL.replace(STAMP, stamp).encode()))


def new_batch_id() -> str:
    """Unique per batch, stable across its retries, unique across processes (a random tag)."""
    return f"{_process_tag}-{next(_batch_numbers)}"


def truncate_entry(entry: str, max_chars: int) -> str:
    """A seed entry shrunk to at most ``max_chars`` (where possible) by cutting its message.

    The structured ``record`` goes first (it repeats the message and is usually what is big),
    then the message is cut and a marker says how much was removed.
    """
    from ..records.encoders.base import truncated  # rare path

    def shrink(fields: dict[str, object]) -> tuple[dict[str, object], str]:
        fields.pop("record", None)
        fields.setdefault("message", "")
        return fields, "message"

    return truncated(entry, max_chars, shrink)  # type: ignore[arg-type]


class Batch:
    """Entries that go out in one request, and the request ids whose ``runtimeDone`` they carry.

    ``batch_id`` stays the same across retries, so a receiver can de-duplicate a batch that was
    delivered but whose answer was lost (e.g. to a freeze). ``reports`` counts the synthetic
    drop-report entries in it (its first ones), so dropping a batch of nothing but reports
    reports nothing. ``groups`` holds a grouped format's entries by key.
    """

    __slots__ = ("entries", "size", "marks", "created", "batch_id", "attempts", "reports",
                 "framing", "groups")  # fmt: skip

    def __init__(
        self, created: float, entries: list[str] | None = None, framing: Framing = SEED
    ) -> None:
        self.entries: list[str] = entries if entries is not None else []
        self.framing = framing
        self.size = framing.size(self.entries)
        # A grouped format's entries by key (the same strings as ``entries``), kept as they
        # are added: the body needs no search for them.
        self.groups: dict[str, list[str]] = (
            framing.by_key(self.entries) if framing.group_mark else {}
        )
        self.marks: list[str] = []
        self.created = created
        self.batch_id = new_batch_id()
        self.attempts = 0
        self.reports = 0

    def __len__(self) -> int:
        return len(self.entries)

    def payload(self) -> bytes:
        """The entries, one per line: how a batch is kept on disk (``spill``), in any format."""
        return "\n".join(self.entries).encode("ascii")

    def body(self, timestamp: str | None = None) -> bytes:
        """The request body, in the batch's format."""
        return self.framing.body(self.entries, timestamp, self.groups or None)


class Batcher:
    """Holds the batch being filled; hands back batches as they become full."""

    def __init__(self, max_bytes: int, max_records: int, framing: Framing = SEED) -> None:
        """``max_bytes``/``max_records``: the settings', clamped to the format's receiver's
        documented limits (Datadog: 5 MB, 1000 logs), once, with a line saying so."""
        clamped = []
        if framing.max_batch_bytes and max_bytes > framing.max_batch_bytes:
            max_bytes = framing.max_batch_bytes
            clamped.append(f"{HTTP_MAX_BATCH_BYTES} to {max_bytes}")
        if framing.max_batch_records and max_records > framing.max_batch_records:
            max_records = framing.max_batch_records
            clamped.append(f"{HTTP_MAX_BATCH_RECORDS} to {max_records}")
        if clamped:
            log.info(
                f"batches limited to what the {framing.name} receiver takes per request: "
                f"{' and '.join(clamped)}"
            )
        self.framing = framing
        self.max_bytes = max_bytes  # sets _entry_limit too
        self.max_records = max_records
        self.open: Batch | None = None
        self.truncated = 0  # entries cut to fit max_bytes (or the format's entry limit)

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    @max_bytes.setter
    def max_bytes(self, value: int) -> None:
        # Lowered after a 413 (``sending``); the largest entry follows, computed once here
        # rather than for every entry ``add`` takes.
        self._max_bytes = value
        self._entry_limit = self.framing.entry_limit(value)

    def add(self, entry: str, now: float, mark: str = "", report: bool = False) -> Batch | None:
        """Add one entry; return the previous batch if this entry did not fit in it."""
        framing = self.framing
        if len(entry) > self._entry_limit:
            entry = framing.truncate(entry, self._entry_limit)
            self.truncated += 1
        full = None
        batch = self.open
        # "batch is not None", not "batch": a Batch has a __len__, a call for every entry.
        filled = batch is not None and batch.entries
        key = ""
        if framing.group_mark:
            key, start = framing.key(entry)
            if batch is not None and key in batch.groups:
                added = len(entry) - start - len(framing.group_tail) + len(framing.separator)
            else:
                added = len(entry) + (len(framing.separator) if filled else 0)
        else:
            added = len(entry) + (len(framing.separator) if filled else 0)
        if filled and (
            batch.size + added > self._max_bytes  # type: ignore[union-attr]
            or len(batch.entries) >= self.max_records  # type: ignore[union-attr]
        ):
            full, batch = batch, None
            added = len(entry)
        if batch is None:
            batch = self.open = Batch(now, framing=framing)
        batch.entries.append(entry)
        batch.size += added
        if key:
            group = batch.groups.get(key)
            if group is None:
                batch.groups[key] = [entry]
            else:
                group.append(entry)
        if mark:
            batch.marks.append(mark)
        if report:
            batch.reports += 1
        return full

    def extend(self, entries: list[str], now: float) -> list[Batch]:
        """``add`` each of ``entries`` (none with a mark or a report); return the batches they
        filled, in order. The same batches as ``add`` one at a time, found by bisecting the
        entries' running sizes: the common push costs a few C calls, not a call per entry."""
        framing = self.framing
        if max(map(len, entries), default=0) > self._entry_limit:
            return [full for full in map(self.add, entries, itertools.repeat(now)) if full]
        if framing.group_mark:
            return self._extend_grouped(entries, now) if entries else []
        sep = len(framing.separator)
        # ends[k]: what entries[0..k] add to a batch that holds an entry already (each with
        # its separator). All in C: no Python call per entry.
        ends = list(
            itertools.accumulate(map(int.__add__, map(len, entries), itertools.repeat(sep)))
        )
        filled: list[Batch] = []
        start, count = 0, len(entries)
        while start < count:
            batch = self.open
            if batch is None:
                batch = self.open = Batch(now, framing=framing)
            held = len(batch.entries)
            base = ends[start - 1] if start else 0
            # An empty batch takes its first entry without a separator: one more to spend.
            room = self._max_bytes - batch.size + (0 if held else sep)
            stop = min(bisect_right(ends, base + room, start), start + self.max_records - held)
            if stop <= start:
                if held:  # the next entry does not fit: this batch is full
                    filled.append(batch)
                    self.open = None
                    continue
                stop = start + 1  # an empty batch takes any entry (none exceeds the limit)
            batch.entries += entries[start:stop]
            batch.size += ends[stop - 1] - base - (0 if held else sep)
            start = stop
        return filled

    def _extend_grouped(self, entries: list[str], now: float) -> list[Batch]:
        """``extend`` for a grouped format. The keys are cut out in C (``str.partition``,
        mapped). A push that fits in the open batch goes in at once (``_fits_grouped``). One
        that does not goes through ``add`` until a batch closes, and the rest is tried at once
        in the new batch: the usual push after a full batch costs one ``add``, not one each."""
        from operator import itemgetter  # only grouped formats need it

        mark = self.framing.group_mark
        parts = list(map(str.partition, entries, itertools.repeat(mark)))
        if not all(map(itemgetter(1), parts)):
            raise ValueError(f"not a {self.framing.name} entry: no {mark!r}")
        keys = list(map(itemgetter(0), parts))
        if self._fits_grouped(entries, keys, now):
            return []
        for at, entry in enumerate(entries):
            full = self.add(entry, now)
            if full is not None:
                rest = at + 1
                if self._fits_grouped(entries[rest:], keys[rest:], now):
                    return [full]
                more = map(self.add, entries[rest:], itertools.repeat(now))
                return [full, *(batch for batch in more if batch is not None)]
        return []

    def _fits_grouped(self, entries: list[str], keys: list[str], now: float) -> bool:
        """Put ``entries`` (of ``keys``) in the open batch at once if they all fit there, its
        size counted per group; say whether they did. Sizes only grow, so when the whole fits,
        ``add`` would not have closed the batch on the way: the same batch either way."""
        from collections import Counter  # only grouped formats need it

        framing = self.framing
        batch = self.open
        if batch is None:
            batch = self.open = Batch(now, framing=framing)
        held, groups = batch.entries, batch.groups
        if len(held) + len(entries) > self.max_records:
            return False
        counts = Counter(keys)
        # Each entry with its separator, but the batch's first; less, for each entry of a
        # group the batch holds by then, its key, mark and tail (shared with the group's).
        sep = len(framing.separator)
        size = sum(map(len, entries)) + sep * (len(entries) - (0 if held else 1))
        cut = len(framing.group_mark) + len(framing.group_tail)
        for key, count in counts.items():
            size -= (count if key in groups else count - 1) * (len(key) + cut)
        if batch.size + size > self._max_bytes:
            return False
        held += entries
        batch.size += size
        _append_grouped(groups, entries, keys)
        return True

    def take(self) -> Batch | None:
        """Close and return the open batch (None if empty)."""
        batch, self.open = self.open, None
        return batch if batch is not None and batch.entries else None


def _append_grouped(groups: dict[str, list[str]], entries: list[str], keys: list[str]) -> None:
    """Each of ``entries`` appended to the list of its key (``keys``, in step) in ``groups``,
    a new list for a key not there yet: dict order stays the order keys first appear."""
    for entry, key in zip(entries, keys):
        group = groups.get(key)
        if group is None:
            groups[key] = [entry]
        else:
            group.append(entry)
