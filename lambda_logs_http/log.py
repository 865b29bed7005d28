"""The extension's own log lines.

They go to stdout, which Lambda sends to CloudWatch (and, as ``extension`` records, back to our
own Telemetry subscription, where ``transform`` recognises the prefix and skips them so a debug
line never turns into a batch that logs another debug line). ``logging`` is not used: it costs
several milliseconds to import on every cold start, and a prefix plus a level is all we need.

No line carries a secret. The settings register every credential once (``add_secrets``), with
the forms it may take in someone else's text — base64, percent-encoded, JSON- or HTML-escaped —
and ``emit`` replaces each of them by ``***`` in every line, whatever the line quotes (a
receiver's error body that echoes our request, an exception's text). Values shorter than
``MIN_SECRET_CHARS`` are not registered: replacing ``abc`` in every line would garble the lines
and protect nothing that matters. Text cut to a length before it is logged goes through
``excerpt``, which scrubs before cutting so a cut never leaves the start of a secret behind.
"""

from __future__ import annotations

import _thread
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

PREFIX = "[EXTENSION]"

DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
LEVELS = {"debug": DEBUG, "info": INFO, "warning": WARNING, "warn": WARNING, "error": ERROR}
_NAMES = {DEBUG: "DEBUG", INFO: "INFO", WARNING: "WARNING", ERROR: "ERROR"}

REDACTED = "***"
MIN_SECRET_CHARS = 4

_lock = _thread.allocate_lock()  # not threading: it is not imported before registering
_threshold = INFO
_stream = sys.stdout
_secrets: tuple[str, ...] = ()  # every registered form, longest first
_pending: list[str] = []  # registered values whose forms are not computed yet
_secrets_lock = _thread.allocate_lock()


def set_level(level: int) -> None:
    """Show lines at ``level`` and above (one of DEBUG, INFO, WARNING, ERROR)."""
    global _threshold
    _threshold = level


def set_stream(stream: object) -> None:
    """Redirect output (tests); the stream needs ``write`` and ``flush``."""
    global _stream
    _stream = stream


def enabled(level: int) -> bool:
    """Whether a line at ``level`` would be shown: lets callers skip building costly messages."""
    return level >= _threshold


def add_secrets(values: Iterable[str]) -> None:
    """Scrub ``values`` (and their encoded forms) from every line from now on; values shorter
    than ``MIN_SECRET_CHARS`` are ignored.

    The forms are computed when the next line is written (normally after the extension
    registered, on another thread): 0.15 ms that a cold start need not wait for.
    """
    with _secrets_lock:
        _pending.extend(v for v in values if len(v) >= MIN_SECRET_CHARS)


def clear_secrets() -> None:
    """Forget every registered secret (tests)."""
    global _secrets
    with _secrets_lock:
        _secrets = ()
        _pending.clear()


def _registered() -> tuple[str, ...]:
    """Every form of every registered secret, longest first (computed once per registration)."""
    global _secrets
    if _pending:
        with _secrets_lock:
            forms = set(_secrets)
            for value in set(_pending):
                forms.update(encoded_forms(value))
            # Longest first: a form that contains another (a token, and the token in base64 of
            # a "user:token" pair) is replaced whole. Published before _pending is emptied: a
            # thread reading both at once always finds the new forms in one or the other.
            _secrets = tuple(sorted(forms, key=len, reverse=True))
            _pending.clear()
    return _secrets


def scrub(text: str) -> str:
    """``text`` with every registered secret form replaced by ``***``.

    One ``in`` test per form, in C: about 0.5 µs for a 100-character line with 11 forms (a
    Basic pair and a query key), half of what one regular expression of their alternation
    takes, and no ``re`` before the extension registers; emit's check with none registered is
    40 ns (python -m timeit, noisy shared machine; the command is in docs/design.md).
    """
    for secret in _registered():
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def excerpt(text: str, limit: int) -> str:
    """The first ``limit`` characters of ``text``, scrubbed, fit to quote in a line.

    Scrubbed before it is cut, so the cut cannot split a secret; and when ``text`` itself ends
    in the beginning of a secret (it was cut short before it reached us, as a receiver's body
    read up to a bound), that beginning is replaced too.
    """
    text = scrub(text)
    for secret in _registered():
        tail = text[-(len(secret) - 1) :]
        start = tail.find(secret[:MIN_SECRET_CHARS])
        while start >= 0:
            if secret.startswith(tail[start:]):
                text = text[: len(text) - len(tail) + start] + REDACTED
                break
            start = tail.find(secret[:MIN_SECRET_CHARS], start + 1)
    return text[:limit]


def encoded_forms(value: str) -> set[str]:
    """``value`` as it may appear in text: as is, base64 (standard and URL-safe, padded or not),
    percent-encoded (as every common encoder writes it, ``+`` for spaces too), JSON-, HTML- and
    Python-escaped. Written here without ``base64``, ``urllib.parse`` or ``json``: this runs
    before the extension registers (the tests compare them with the standard library's)."""
    forms = {value, _json_escaped(value, False), _json_escaped(value, True), repr(value)[1:-1]}
    forms.add(
        value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        .replace('"', "&quot;").replace("'", "&#x27;")
    )  # fmt: skip
    try:
        data = value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: only the text forms can appear
        return forms
    padded = b64encode(data)
    for encoded in (padded, padded.rstrip("=")):  # unpadded too: some encoders leave it off
        forms.add(encoded)
        forms.add(encoded.replace("+", "-").replace("/", "_"))
    for safe in (_UNRESERVED, _UNRESERVED | {ord("/")}, _URL_SAFE):
        encoded = percent_encode(data, safe)
        forms.add(encoded)
        forms.add(percent_encode(data, safe, plus=True))
        forms.add(_lower_hex(encoded))
    return forms


def b64encode(data: bytes) -> str:
    """Base64 (RFC 4648, padded), as ``base64.b64encode``."""
    out = []
    for i in range(0, len(data) - len(data) % 3, 3):
        n = data[i] << 16 | data[i + 1] << 8 | data[i + 2]
        out.append(_B64[n >> 18] + _B64[n >> 12 & 63] + _B64[n >> 6 & 63] + _B64[n & 63])
    rest = len(data) % 3
    if rest:
        n = data[-rest] << 16 | (data[-1] << 8 if rest == 2 else 0)
        out.append(_B64[n >> 18] + _B64[n >> 12 & 63])
        out.append(_B64[n >> 6 & 63] + "=" if rest == 2 else "==")
    return "".join(out)


def percent_encode(data: bytes, safe: frozenset[int], plus: bool = False) -> str:
    """``%XX`` for every byte not in ``safe`` (``+`` for a space when ``plus``), as
    ``urllib.parse.quote`` (``quote_plus``) writes it."""
    return "".join(
        chr(b) if b in safe else "+" if plus and b == 0x20 else f"%{b:02X}" for b in data
    )


def _lower_hex(encoded: str) -> str:
    parts = encoded.split("%")
    return parts[0] + "".join("%" + p[:2].lower() + p[2:] for p in parts[1:])


def _json_escaped(value: str, slash: bool) -> str:
    """``value`` inside a JSON string as ``json.dumps`` writes it (``\\/`` too when ``slash``:
    some encoders escape it)."""
    out = []
    for c in value:
        if c in _JSON_ESCAPES:
            out.append(_JSON_ESCAPES[c])
        elif c == "/" and slash:
            out.append("\\/")
        elif " " <= c <= "~":
            out.append(c)
        elif ord(c) < 0x10000:
            out.append(f"\\u{ord(c):04x}")
        else:
            high, low = divmod(ord(c) - 0x10000, 0x400)
            out.append(f"\\u{0xD800 + high:04x}\\u{0xDC00 + low:04x}")
    return "".join(out)


_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# What a URL builder may leave unencoded in a query value (JavaScript's encodeURI).
_URL_SAFE = _UNRESERVED | frozenset(b"!#$&'()*+,/:;=?@")
_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                 "\b": "\\b", "\f": "\\f"}  # fmt: skip


def emit(level: int, message: str) -> None:
    """Write one line, secrets scrubbed; newlines inside ``message`` are folded so each call
    stays one record."""
    if level < _threshold:
        return
    if _secrets or _pending:
        message = scrub(message)
    if "\n" in message:
        message = message.replace("\n", " | ")
    line = f"{PREFIX} {_NAMES.get(level, 'INFO')} {message}\n"
    with _lock:
        try:
            _stream.write(line)  # type: ignore[attr-defined]
            _stream.flush()  # type: ignore[attr-defined]
        except (OSError, ValueError):
            pass  # a closed stdout must never take the extension down


def debug(message: str) -> None:
    emit(DEBUG, message)


def info(message: str) -> None:
    emit(INFO, message)


def warning(message: str) -> None:
    emit(WARNING, message)


def error(message: str) -> None:
    emit(ERROR, message)
