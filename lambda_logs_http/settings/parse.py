"""Strict parsing of single environment variables, each error naming its variable.

``HTTP_TIMEOUT_SECONDS=3O`` is an error, not 30: a log shipper that silently guesses is worse
than one that says what is wrong. Each function reads one variable from the mapping it is given
(never from ``os.environ`` itself) and either returns a valid value or raises ``ConfigError``
with the fix in words.

Imports nothing: this runs before the extension registers, on every cold start (``ca_bundle``
loads the C half of ``ssl``, only when ``HTTP_CA_BUNDLE`` is set).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds to import on the cold-start path
if TYPE_CHECKING:
    from collections.abc import Mapping

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})
# RFC 9110 token characters besides letters and digits (header names).
_TOKEN_PUNCTUATION = frozenset("!#$%&'*+-.^_`|~")
# Headers the transport writes itself, or that frame the body or govern the connection: a header
# of ours by one of these names would break the request, or be overwritten.
RESERVED_HEADERS = frozenset({
    "host", "content-length", "content-type", "content-encoding", "transfer-encoding", "te",
    "trailer", "connection", "keep-alive", "upgrade", "expect", "user-agent",
    "idempotency-key", "x-request-id",
})  # fmt: skip
RESERVED_HEADER_PREFIXES = ("proxy-", "content-")
_SHOWN_CHARS = 60  # of a refused value, in an error message


class ConfigError(ValueError):
    """A setting that cannot be used; ``variable`` names it and the message says the fix."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable


def text(env: Mapping[str, str], name: str) -> str:
    """The variable's value without surrounding white space ("" when unset)."""
    return env.get(name, "").strip()


def shown(value: str) -> str:
    """``value`` quoted for an error message, cut to a readable length."""
    return repr(value if len(value) <= _SHOWN_CHARS else value[:_SHOWN_CHARS] + "...")


def boolean(env: Mapping[str, str], name: str, default: bool) -> bool:
    """``true/false``, ``1/0``, ``yes/no``, ``on/off`` in any case; unset or empty: ``default``."""
    value = text(env, name).lower()
    if not value:
        return default
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ConfigError(name, f"must be true or false, got {shown(env[name])}")


def integer(
    env: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int | None = None
) -> int:
    """A whole number (``_`` separators allowed) from ``minimum`` to ``maximum``."""
    raw = text(env, name)
    if not raw:
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError:  # also a number of more than 4,300 digits
        raise ConfigError(name, f"must be a whole number, got {shown(raw)}") from None
    if value < minimum or (maximum is not None and value > maximum):
        raise ConfigError(name, _out_of_range("a whole number", minimum, maximum, shown(raw)))
    return value


def number(
    env: Mapping[str, str],
    name: str,
    default: float,
    *,
    minimum: float,
    maximum: float | None = None,
) -> float:
    """A number from ``minimum`` to ``maximum`` (NaN and infinities are refused)."""
    raw = text(env, name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(name, f"must be a number, got {shown(raw)}") from None
    top = float("inf") if maximum is None else maximum
    if not minimum <= value <= top or value == float("inf"):  # also rejects NaN
        raise ConfigError(name, _out_of_range("a number", minimum, maximum, shown(raw)))
    return value


def _out_of_range(what: str, minimum: float, maximum: float | None, got: str) -> str:
    if maximum is None:
        return f"must be {what} of at least {_plain(minimum)} (and finite), got {got}"
    return f"must be {what} from {_plain(minimum)} to {_plain(maximum)}, got {got}"


def _plain(value: float) -> str:
    """``900`` for 900.0, ``0.001`` for 0.001: as a user would type it."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


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


def check_header_name(name: str, header: str) -> None:
    """``ConfigError`` for the variable ``name`` unless ``header`` is a header name we may send:
    an RFC 9110 token, and none the transport owns (``RESERVED_HEADERS``, ``Proxy-*``,
    ``Content-*``)."""
    if not is_token(header):
        raise ConfigError(name, f"{shown(header)} is not a valid header name")
    lower = header.lower()
    if lower in RESERVED_HEADERS or lower.startswith(RESERVED_HEADER_PREFIXES):
        raise ConfigError(
            name,
            f"{header!r} is a header the extension sets itself, or one that frames the request "
            "or governs the connection; use another name (e.g. X-API-Key)",
        )


def check_header_value(name: str, value: str) -> None:
    """``ConfigError`` for the variable ``name`` unless ``value`` can go verbatim in a header:
    Latin-1 text without control characters (a tab is allowed). The value is not quoted: it
    is usually a credential."""
    if not all(" " <= c <= "~" or c == "\t" or "\xa0" <= c <= "\xff" for c in value):
        raise ConfigError(
            name,
            "holds a character an HTTP header cannot carry (only Latin-1 text without control "
            "characters such as line breaks; non-Latin-1 text must be encoded first)",
        )


def has_control_characters(value: str) -> bool:
    """Whether ``value`` holds a C0 control character or DEL (a line break, NUL...)."""
    return any(c < " " or c == "\x7f" for c in value)


def is_utf8(value: str) -> bool:
    """Whether ``value`` encodes as UTF-8 (``os.environ`` holds bytes that did not decode as
    lone surrogates, which Basic auth's encoding would trip over)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def ca_bundle(env: Mapping[str, str], name: str) -> str:
    """The path in ``name`` (``""`` when unset), checked to hold at least one certificate
    OpenSSL loads, so a wrong file fails at start instead of every TLS handshake.

    Only then, and before registering, the C half of ``ssl`` loads (``_ssl``: 6 ms where the
    whole of ``ssl`` costs 15, which the worker pays later, off the cold-start path, for
    ``https://`` in any case).
    """
    path = text(env, name)
    if not path:
        return ""
    import _ssl

    context = _ssl._SSLContext(_ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(path)
    except FileNotFoundError:
        raise ConfigError(name, f"no such file {shown(path)}") from None
    except _ssl.SSLError:
        raise ConfigError(
            name, f"{shown(path)} holds no certificate; use a PEM file of CA certificates"
        ) from None
    except OSError as exc:
        raise ConfigError(name, f"cannot read {shown(path)}: {exc.strerror or exc}") from None
    if not context.cert_store_stats().get("x509"):
        raise ConfigError(
            name, f"{shown(path)} holds no certificate; use a PEM file of CA certificates"
        )
    return path


def secret_values(env: Mapping[str, str], names: tuple[str, ...]) -> list[str]:
    """The secrets in ``env`` as the extension may print or send them, read from the raw values
    (before any validation, so even the error that refuses one cannot show it): each variable
    in ``names`` as is; ``user:password`` pairs (what Basic auth encodes) are the caller's."""
    values = []
    for name in names:
        value = env.get(name, "")
        values.extend((value, value.strip()))
    return values


def query_values(url: str) -> list[str]:
    """Every query value of ``url`` as written, percent-decoded, and with ``+`` as a space."""
    query = url.partition("#")[0].partition("?")[2]
    values = []
    for part in query.split("&"):
        value = part.partition("=")[2]
        values.extend((value, unquote(value), unquote(value.replace("+", " "))))
    return values


def userinfo_values(url: str) -> list[str]:
    """The password, and ``user:password`` (decoded, as Basic auth encodes it), of a URL that
    carries credentials (``scheme://user:password@host``)."""
    authority = url.partition("://")[2].split("/", 1)[0]
    userinfo, at, _ = authority.rpartition("@")
    if not at:
        return []
    user, _, password = userinfo.partition(":")
    return [password, unquote(password), userinfo, f"{unquote(user)}:{unquote(password)}"]


def unquote(text: str) -> str:
    """``%XX`` decoded as UTF-8 (invalid bytes replaced), the rest kept: ``urllib.parse.unquote``
    (a test holds them equal), which this runs too early to import."""
    if "%" not in text:
        return text
    parts = text.split("%")
    out = [parts[0]]
    run = bytearray()  # consecutive %XX bytes, decoded together (one character may take four)
    for part in parts[1:]:
        if len(part) >= 2 and part[0] in _HEX and part[1] in _HEX:
            run.append(int(part[:2], 16))
            rest = part[2:]
        else:
            rest = "%" + part
        if rest:
            out.append(run.decode("utf-8", "replace") + rest)
            run.clear()
    out.append(run.decode("utf-8", "replace"))
    return "".join(out)


_HEX = frozenset("0123456789abcdefABCDEF")
