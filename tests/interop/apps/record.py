"""What every Python receiver app shares: append one JSON line per request body received.

The line is ``{"headers": {...}, "body": "..."}`` (header names lower-cased, the body as text),
the shape ``tests/faults/harness.Tally`` counts markers in. One ``write`` per line on a file
opened for appending, so lines from several threads or workers never interleave.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable


def record(headers: Iterable[tuple[str, str]], body: bytes) -> None:
    """Append the request to the file named by ``INTEROP_RECORD``."""
    line = json.dumps({
        "headers": {name.lower(): value for name, value in headers},
        "body": body.decode("utf-8", "replace"),
    }) + "\n"
    with open(os.environ["INTEROP_RECORD"], "a", encoding="utf-8") as out:
        out.write(line)
