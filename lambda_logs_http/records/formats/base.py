"""What a format is: a class that writes one ``Record`` as the text of one entry of a body.

Entries are ASCII text (JSON with non-ASCII escaped), so a body's size in bytes is the sum of
its entries' lengths and its framing: the batch limit counts exactly, in every format.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii as quote

from .. import jsonsafe

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, ClassVar

    from ..record import EntryContext, Record

__all__ = ["Encoder", "quote"]
_MAX_DEPTH = jsonsafe.MAX_DEPTH


class Encoder:
    """One format. Subclasses set ``name`` and ``content_type`` and write ``entry``.

    ``dump`` writes a structured value as strict JSON. It refuses what strict JSON cannot hold
    (NaN, an integer too long for decimal text, a non-string key, nesting beyond the C
    encoder's reach) by raising: the transformer then encodes the event again from a sanitized
    copy, with ``dump`` swapped for ``jsonsafe.dumps``, which always succeeds.
    """

    name: ClassVar[str]
    content_type: ClassVar[str] = "application/json"

    def __init__(self, context: EntryContext) -> None:
        self.context = context
        # allow_nan=False: NaN and the infinities are not JSON; they make the fast path refuse,
        # and the sanitized retry writes them as strings. No circular check: values come from
        # json.loads (a cycle would end in RecursionError, and the retry handles it too).
        self.dump: Callable[[Any], str] = json.JSONEncoder(
            separators=(",", ":"), allow_nan=False, check_circular=False, default=str
        ).encode

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
