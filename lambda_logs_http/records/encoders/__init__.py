"""The output formats (``HTTP_FORMAT``): one module per format, one ``Encoder`` class in each.

Only the module of the format in use is imported (a format's encoder runs once the extension has
registered; no cold start pays for the others).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .base import Encoder

DEFAULT = "seed"
# HTTP_FORMAT value -> the module (in this package) whose ENCODER is its class.
MODULES = {
    "seed": "seed",
    "ndjson": "ndjson",
    "otlp": "otlp",
    "loki": "loki",
    "elasticsearch": "elasticsearch",
    "splunk_hec": "splunk_hec",
    "datadog": "datadog",
}


def encoder_class(name: str) -> type[Encoder]:
    """The ``Encoder`` class of format ``name`` (one of ``MODULES``), its module imported now."""
    module = __import__(f"{__name__}.{MODULES[name]}", fromlist=["ENCODER"])
    return module.ENCODER
