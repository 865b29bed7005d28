"""What is forwarded at all: ``HTTP_MIN_LEVEL``, ``HTTP_INCLUDE_PATTERN``, ``HTTP_EXCLUDE_PATTERN``.

The filters apply to the function's and the extensions' records; platform records (``START``,
``END``, ``REPORT``…) are kept, whatever their level or text: which of them arrive at all is
``HTTP_TELEMETRY_TYPES``' choice, and a ``REPORT`` is never noise. A record left out is
counted (``filtered=`` in the shutdown summary).

The patterns are the user's regular expressions, run by Python's backtracking engine on the
worker thread, which holds the GIL while it matches: a pattern such as ``(a+)+$`` can take
seconds or longer on one unlucky line, and the whole extension (main thread included) waits
meanwhile. Two bounds: a pattern sees at most ``MAX_MATCH_CHARS`` of the message (a
backtracking blow-up grows with the text's length: polynomial ones stay bounded), and
``backtracking_risk`` finds nested unbounded repeats, the shape of the exponential ones, so
that the extension warns about them at start.
"""

from __future__ import annotations

import re

from ..lambda_api.events import EXTENSION, FUNCTION
from ..settings.model import LEVELS
from ..settings.parse import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .record import Record

MAX_MATCH_CHARS = 8_192
"""The start of the message that HTTP_INCLUDE_PATTERN and HTTP_EXCLUDE_PATTERN are matched on."""
RANKS = {level: rank for rank, level in enumerate(LEVELS)}
_FILTERED_TYPES = (FUNCTION, EXTENSION)


class Filter:
    """Whether a record is forwarded. Owned by the worker thread."""

    def __init__(
        self,
        min_level: str = "",
        include: re.Pattern[str] | None = None,
        exclude: re.Pattern[str] | None = None,
    ) -> None:
        self._min_rank = RANKS[min_level] if min_level else 0
        self._include = include
        self._exclude = exclude

    @property
    def active(self) -> bool:
        return bool(self._min_rank or self._include or self._exclude)

    def keeps(self, record: Record) -> bool:
        """False for a function or extension record below the minimum level, matching the
        exclusion pattern, or not matching the inclusion pattern (exclusion wins)."""
        if record.log_type not in _FILTERED_TYPES:
            return True
        if self._min_rank and RANKS.get(record.level, 2) < self._min_rank:
            return False
        if self._include is None and self._exclude is None:
            return True
        message = record.message
        if len(message) > MAX_MATCH_CHARS:
            message = message[:MAX_MATCH_CHARS]
        if self._exclude is not None and self._exclude.search(message) is not None:
            return False
        return self._include is None or self._include.search(message) is not None


def compile_pattern(variable: str, text: str) -> re.Pattern[str]:
    """``text`` compiled, or a ``ConfigError`` naming ``variable`` and what is wrong."""
    try:
        return re.compile(text)
    except (re.error, RecursionError, OverflowError) as exc:
        raise ConfigError(variable, f"not a valid regular expression ({_why(exc)})") from None


def _why(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, re.error) else type(exc).__name__


def backtracking_risk(pattern: re.Pattern[str]) -> bool:
    """Whether ``pattern`` repeats, without bound, something that itself repeats a variable
    number of times (``(a+)+``, ``(\\w*\\s?)*``, ``(?:x|.+)*``, ``(a{1,3})+``): the shape of
    exponential backtracking.

    A heuristic: some such patterns are safe (``(?:ab+)*``, each round must start with an
    ``a``), and some risky ones have another shape (``(a|a)*``). Never raises: a parse it does
    not understand (another Python's internals) is no risk found."""
    try:
        # re's own parser: re._parser since 3.11, re.sre_parse (which re imports) before; no
        # import statement, so that no Python is asked for the other's module name.
        sre = getattr(re, "_parser", None) or getattr(re, "sre_parse")  # noqa: B009

        parsed = sre.parse(pattern.pattern, pattern.flags)
        return _nested_repeat(list(parsed), sre, inside=False)
    except Exception:
        return False


def _nested_repeat(items: list, sre: object, inside: bool) -> bool:  # type: ignore[type-arg]
    repeats = {getattr(sre, n) for n in ("MAX_REPEAT", "MIN_REPEAT") if hasattr(sre, n)}
    unbounded = sre.MAXREPEAT  # type: ignore[attr-defined]
    for op, av in items:
        if op in repeats:
            low, high, body = av
            if inside and high != low:  # a variable count inside an unbounded repeat
                return True
            if high == unbounded or high > 100:
                if _nested_repeat(list(body), sre, inside=True):
                    return True
            elif _nested_repeat(list(body), sre, inside):
                return True
        else:
            for sub in _subpatterns(av):
                if _nested_repeat(list(sub), sre, inside):
                    return True
    return False


def _subpatterns(av: object) -> list:  # type: ignore[type-arg]
    """The sub-patterns inside one parsed item (groups, branches, lookarounds)."""
    found = []
    values = av if isinstance(av, (tuple, list)) else (av,)
    for value in values:
        if hasattr(value, "data"):  # a SubPattern
            found.append(value)
        elif isinstance(value, (tuple, list)):
            found.extend(_subpatterns(value))
    return found
