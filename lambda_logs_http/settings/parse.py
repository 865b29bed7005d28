"""Strict parsing of single environment variables, each error naming its variable.

``HTTP_TIMEOUT_SECONDS=3O`` is an error, not 30: a log shipper that silently guesses is worse
than one that says what is wrong. Each function reads one variable from the mapping it is given
(never from ``os.environ`` itself) and either returns a valid value or raises ``ConfigError``
with the fix in words.

Imports nothing: this runs before the extension registers, on every cold start.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds to import on the cold-start path
if TYPE_CHECKING:
    from collections.abc import Mapping

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})
# RFC 9110 token characters besides letters and digits (header names).
_TOKEN_PUNCTUATION = frozenset("!#$%&'*+-.^_`|~")


class ConfigError(ValueError):
    """A setting that cannot be used; ``variable`` names it and the message says the fix."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable


def text(env: Mapping[str, str], name: str) -> str:
    """The variable's value without surrounding white space ("" when unset)."""
    return env.get(name, "").strip()


def boolean(env: Mapping[str, str], name: str, default: bool) -> bool:
    """``true/false``, ``1/0``, ``yes/no``, ``on/off`` in any case; unset or empty: ``default``."""
    value = text(env, name).lower()
    if not value:
        return default
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ConfigError(name, f"must be true or false, got {env[name]!r}")


def integer(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    """A whole number (``_`` separators allowed) of at least ``minimum``."""
    raw = text(env, name)
    if not raw:
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise ConfigError(name, f"must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(name, f"must be at least {minimum}, got {value}")
    return value


def number(env: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    """A finite number of at least ``minimum`` (NaN and infinities are refused)."""
    raw = text(env, name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(name, f"must be a number, got {raw!r}") from None
    if not value >= minimum or value == float("inf"):  # also rejects NaN
        raise ConfigError(name, f"must be a finite number of at least {minimum}, got {raw!r}")
    return value


def clamped(
    env: Mapping[str, str], name: str, default: int, limits: tuple[int, int], warnings: list[str]
) -> int:
    """A whole number brought into ``limits``, with a warning when it had to be.

    For values Lambda itself limits (the Telemetry buffering): the intent is clear, and a
    function should not lose its logs over an off-by-one.
    """
    value = integer(env, name, default, minimum=-(2**63))
    low, high = limits
    result = min(max(value, low), high)
    if result != value:
        warnings.append(f"{name}={value} is outside Lambda's range {low}..{high}; using {result}")
    return result


def choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """One of ``choices`` (case-insensitive); the first is the default."""
    value = text(env, name).lower() or choices[0]
    if value not in choices:
        raise ConfigError(name, f"use one of {', '.join(choices)}, got {value!r}")
    return value


def is_token(value: str) -> bool:
    """Whether ``value`` is an RFC 9110 token (what a header name must be)."""
    return bool(value) and all(
        (c.isascii() and c.isalnum()) or c in _TOKEN_PUNCTUATION for c in value
    )
