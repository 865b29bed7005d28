"""``HTTP_FORMAT=ndjson``: the seed entries, one per line, each line ending in a newline — what
``jq``, Vector, Fluent Bit's ``http`` input and most log pipelines read as newline-delimited
JSON, without the seed envelope."""

from __future__ import annotations

from .seed import SeedEncoder


class NdjsonEncoder(SeedEncoder):
    name = "ndjson"
    content_type = "application/x-ndjson"
    head = ""
    separator = "\n"
    tail = "\n"


ENCODER = NdjsonEncoder
