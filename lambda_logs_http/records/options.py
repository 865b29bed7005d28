"""The ``Records`` settings section compiled, on the worker thread: filters and redaction.

``settings.load`` keeps the patterns and ``HTTP_REDACT_PATTERNS`` as text, because ``re`` and
``json`` are not imported before register; ``build`` compiles them once the worker thread
builds its parts, and refuses what cannot be used with a ``ConfigError`` naming the variable
(the worker then forwards nothing and says why: ``delivery.worker``).
"""

from __future__ import annotations

import json

from .. import log
from ..settings.names import (
    HTTP_EXCLUDE_PATTERN,
    HTTP_INCLUDE_PATTERN,
    HTTP_REDACT_PATTERNS,
)
from ..settings.parse import ConfigError, shown
from .filters import Filter, backtracking_risk, compile_pattern
from .redact import Redactor

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re
    from collections.abc import Callable

    from ..settings.model import Records
    from .record import Record

MAX_REDACT_PATTERNS = 32
"""User patterns run on every string of every record, without a pre-check: each one costs."""


class Screen:
    """What the transformer runs on each record before its format writes it: the filters
    (``keeps``: False leaves it out), then redaction (``redact``, in place). The transformer
    calls the two itself, a call less per record than a method of this class would be."""

    __slots__ = ("filter", "redactor", "keeps", "redact")

    def __init__(self, filter: Filter | None, redactor: Redactor | None) -> None:  # noqa: A002
        self.filter = filter if filter is not None and filter.active else None
        self.redactor = redactor
        self.keeps: Callable[[Record], bool] | None = (
            self.filter.keeps if self.filter is not None else None
        )
        """False: leave the record out (None: every record is kept)."""
        self.redact: Callable[[Record], None] | None = (
            redactor.record if redactor is not None else None
        )
        """Replaces the record's secrets in place (None: redaction is off)."""


def build(records: Records) -> Screen | None:
    """The screen for these settings (None when nothing is filtered or redacted). Raises
    ``ConfigError`` for a pattern that is not a regular expression or bad JSON."""
    include = _pattern(HTTP_INCLUDE_PATTERN, records.include_pattern)
    exclude = _pattern(HTTP_EXCLUDE_PATTERN, records.exclude_pattern)
    user = redact_patterns(records.redact_patterns)
    flt = Filter(records.min_level, include, exclude)
    redactor = Redactor(records.redact, user) if records.redact or user else None
    if not flt.active and redactor is None:
        return None
    return Screen(flt, redactor)


def redact_patterns(text: str) -> list[re.Pattern[str]]:
    """``HTTP_REDACT_PATTERNS``: a JSON array of regular expressions, compiled."""
    if not text.strip():
        return []
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ConfigError(
            HTTP_REDACT_PATTERNS,
            f"not valid JSON ({exc}); use a JSON array of regular expressions, "
            'e.g. ["ssn=\\\\d{3}-\\\\d{2}-\\\\d{4}"]',
        ) from None
    if not isinstance(value, list) or not all(isinstance(p, str) and p for p in value):
        raise ConfigError(
            HTTP_REDACT_PATTERNS, "use a JSON array of non-empty strings (regular expressions)"
        )
    if len(value) > MAX_REDACT_PATTERNS:
        raise ConfigError(
            HTTP_REDACT_PATTERNS, f"holds {len(value)} patterns; at most {MAX_REDACT_PATTERNS}"
        )
    compiled = []
    for index, source in enumerate(value, 1):
        try:
            pattern = compile_pattern(HTTP_REDACT_PATTERNS, source)
        except ConfigError as exc:
            raise ConfigError(
                HTTP_REDACT_PATTERNS, f"pattern {index} {shown(source)}: {_detail(exc)}"
            ) from None
        if pattern.search("") is not None:
            raise ConfigError(
                HTTP_REDACT_PATTERNS,
                f"pattern {index} {shown(source)} matches the empty text (it would redact "
                "between every character)",
            )
        _warn_if_risky(HTTP_REDACT_PATTERNS, pattern, f"pattern {index} ")
        compiled.append(pattern)
    return compiled


def _pattern(variable: str, text: str) -> re.Pattern[str] | None:
    if not text:
        return None
    pattern = compile_pattern(variable, text)
    _warn_if_risky(variable, pattern)
    return pattern


def _detail(exc: ConfigError) -> str:
    return str(exc).split(": ", 1)[1]


def _warn_if_risky(variable: str, pattern: re.Pattern[str], which: str = "") -> None:
    if backtracking_risk(pattern):
        log.warning(
            f"{variable}: {which}{shown(pattern.pattern)} repeats a repetition, which can take "
            "exponential time on some lines (the extension waits meanwhile); prefer a possessive "
            "or atomic form (Python 3.11+: a++, (?>...)) or a pattern without nested repeats"
        )
