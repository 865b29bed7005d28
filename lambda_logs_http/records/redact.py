"""Redaction: secrets replaced by ``[REDACTED]`` in a record before any format writes it.

Runs on the worker thread, on ``Record.message`` and on every string (keys and values, at any
depth) of ``Record.fields``, so every format's entry is covered: a format only ever sees the
redacted record. The record's own structure is never rewritten as text, so redaction cannot
make an entry invalid JSON.

Built in (``HTTP_REDACT``, on by default), see ``BUILT_IN``:

* AWS access key ids (``AKIA``/``ASIA`` + 16 upper-case letters or digits) and AWS secret
  access keys and session tokens *named as such* (``aws_secret_access_key=…``,
  ``"SecretAccessKey": "…"``): a lone 40-character string is not told from a commit hash;
* ``Authorization``/``Proxy-Authorization`` values (``Authorization: Bearer …``, ``Basic …``,
  SigV4's ``AWS4-HMAC-SHA256 Credential=…``), ``Bearer`` tokens, JWTs (``eyJ….eyJ….…``);
* passwords in URLs (``scheme://user:password@host``: the password only);
* private-key blocks (``-----BEGIN … PRIVATE KEY-----`` to its ``END`` line, or to the end
  of the record when the block is cut);
* credential assignments: ``password=…``, ``"api_key": "…"``, ``token: …``, ``client_secret=…``
  and the like (``_ASSIGNED_NAMES``); and in structured fields, the whole string value of a key
  with such a name (``SENSITIVE_KEYS``, compared without case, ``-``, ``_`` or ``.``).

Plus the user's ``HTTP_REDACT_PATTERNS``: each match, whole, becomes ``[REDACTED]``.

The common record holds no secret, so a pre-check keeps it cheap: the record's text is
lower-cased once and searched for a few short substrings (``_TEXT_TRIGGERS``) every built-in
pattern needs, a rare letter of each first; only when one is there do the regular expressions
run. The user's patterns cannot be pre-checked: each runs on every string.
"""

from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from .record import Record

REDACTED = "[REDACTED]"

# Names whose value is a secret when assigned (name=value, "name": "value", name: value).
_ASSIGNED_NAMES = (
    r"password|passwd|passphrase|secret|client[_-]?secret|api[_-]?key|x-api-key|"
    r"access[_-]?token|refresh[_-]?token|id[_-]?token|auth[_-]?token|session[_-]?token|token|"
    r"private[_-]?key"
)
# The value of an assignment: a quoted string (to its closing quote), else up to white space or
# a delimiter. "[^\\"]|\\." never backtracks catastrophically: each character is taken one way.
_VALUE = r"""(?:"(?:[^"\\\n]|\\.)*"?|'[^'\n]*'?|[^\s"',;&}\]]+)"""
# Between a name and its value: optional closing quote of a quoted key, then = or :.
_ASSIGN = r"""["']?[ \t]*[:=][ \t]*"""

# (kind, lower-case triggers, pattern, group to replace: 0 for the whole match), applied in
# this order. The README documents each; tests/unit/test_redact.py holds examples and
# near-misses for each kind. A pattern runs only on text (lower-cased) holding a trigger.
BUILT_IN: tuple[tuple[str, tuple[str, ...], str, int], ...] = (
    (
        "private_key",
        ("-----",),
        r"-----BEGIN[A-Z0-9 ]{0,40} PRIVATE KEY(?: BLOCK)?-----"
        r"(?:[\s\S]*?-----END[A-Z0-9 ]{0,40} PRIVATE KEY(?: BLOCK)?-----|[\s\S]*)",
        0,
    ),
    (
        "aws_access_key_id",
        ("akia", "asia"),
        r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])",
        0,
    ),
    (
        "aws_secret",
        ("secret", "token"),
        r"(?i)(?:aws[_.-]?)?(?:secret[_.-]?access[_.-]?key|session[_.-]?token|"
        r"security[_.-]?token|secret[_.-]?key)" + _ASSIGN + r"""["']?([A-Za-z0-9/+=]{16,})""",
        1,
    ),
    (
        "authorization",
        ("authorization",),
        r"(?i)\b(?:proxy-)?authorization"
        + _ASSIGN
        + r"""["']?(?:[A-Za-z0-9-]{1,20}[ \t]+(?=[^ \t]))?([^"'\r\n]+)""",
        1,
    ),
    ("bearer", ("bearer",), r"\b[Bb]earer[ \t]+([A-Za-z0-9._~+/-]{8,}=*)", 1),
    ("jwt", ("eyj",), r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*", 0),
    (
        "url_password",
        ("://",),
        r"\b[A-Za-z][A-Za-z0-9+.-]{0,30}://[^\s:/?#@\"'<>]{0,256}:"
        r"""([^\s/?#"'<>]{1,256})@""",
        1,
    ),
    (
        "assignment",
        (
            "pass",
            "secret",
            "token",
            "api_key",
            "apikey",
            "api-key",
            "private_key",
            "privatekey",
            "private-key",
        ),
        r"(?i)(?<![A-Za-z0-9])(?:[A-Za-z0-9]+[_.-])*(?:"
        + _ASSIGNED_NAMES
        + r")"
        + _ASSIGN
        + "("
        + _VALUE
        + ")",
        1,
    ),
)
KINDS = tuple(kind for kind, _, _, _ in BUILT_IN)
# Field names whose string value is a secret whatever it looks like (normalized: lower case,
# without "-", "_", "." or spaces). Each holds one of _TRIGGERS.
SENSITIVE_KEYS = frozenset({
    "password", "passwd", "passphrase", "secret", "clientsecret", "apikey", "xapikey",
    "accesstoken", "refreshtoken", "idtoken", "authtoken", "sessiontoken", "token",
    "authorization", "proxyauthorization", "cookie", "setcookie", "privatekey",
    "secretaccesskey", "awssecretaccesskey", "awssessiontoken", "xamzsecuritytoken",
    "secretkey", "awssecretkey",
})  # fmt: skip
# Every pattern's triggers once: a text holding none of them holds nothing the built-in
# patterns replace (_text_may_hold_secret)...
_TEXT_TRIGGERS = tuple(dict.fromkeys(t for _, ts, _, _ in BUILT_IN for t in ts))
# ... and, with "cookie", no field name of SENSITIVE_KEYS either (_may_hold_secret).
_TRIGGERS = (*_TEXT_TRIGGERS, "cookie")
_KEY_CACHE_MAX = 1_024
# The lines of a PEM block after its BEGIN: base64, its headers (Proc-Type, DEK-Info, or
# OpenPGP's Version/Comment), blank, or its END; at most _KEY_LINES of them (an 8,192-bit RSA
# key is ~100 lines of 64 characters).
_KEY_BLOCK_LINE = re.compile(
    r"[A-Za-z0-9+/=]*|(?:Proc-Type|DEK-Info|Version|Comment): [^\r\n]*|"
    r"-----END[A-Z0-9 ]{0,40} PRIVATE KEY(?: BLOCK)?-----.*",
    re.DOTALL,
)
_KEY_LINES = 200


def _replacer(group: int) -> Callable[[re.Match[str]], str]:
    """A substitution keeping what surrounds ``group`` and replacing it (a quoted value keeps
    its quotes, so that JSON text in a message stays readable)."""

    def replace(match: re.Match[str]) -> str:
        whole = match.group(0)
        start, end = match.span(group)
        base = match.start(0)
        value = whole[start - base : end - base]
        text = match.string
        if text.startswith(REDACTED, start) or text.startswith(REDACTED, start + 1):
            return whole  # replaced already (by a pattern before this one, or by the user)
        inner = REDACTED
        if len(value) >= 2 and value[0] in "\"'" and value[-1] == value[0]:
            inner = value[0] + REDACTED + value[0]
        return whole[: start - base] + inner + whole[end - base :]

    return replace


def _whole(_match: re.Match[str]) -> str:
    return REDACTED


def normalized_key(key: str) -> str:
    return key.lower().replace("-", "").replace("_", "").replace(".", "").replace(" ", "")


class Redactor:
    """Replaces secrets in records. Owned by the worker thread (it caches field names)."""

    def __init__(self, built_in: bool = True, patterns: Sequence[re.Pattern[str]] = ()) -> None:
        """``built_in``: ``HTTP_REDACT``; ``patterns``: ``HTTP_REDACT_PATTERNS``, compiled."""
        self.built_in = built_in
        self._built_in = (
            [(ts, re.compile(p), _replacer(g) if g else _whole) for _, ts, p, g in BUILT_IN]
            if built_in
            else []
        )
        self._user = list(patterns)
        # A pattern without anchors finds in the fields' strings joined by newlines everything
        # it finds in each of them ("\n", like a text's edge, is no word character): one search
        # tells whether any string needs it. ^, $, \A, \Z would not: those look at each one;
        # nor would a negative lookaround, which holds at a text's edge but may fail on "\n".
        self._user_anchored = [p for p in self._user if _anchored(p.pattern)]
        self._user_joinable = [p for p in self._user if not _anchored(p.pattern)]
        self._sensitive_keys: dict[str, bool] = {}
        # A private key printed line by line reaches us as one record per line (Lambda splits
        # stdout at newlines): after a BEGIN without its END, the lines that follow and look
        # like the block's (base64, its headers, END) are redacted whole, up to _KEY_LINES.
        self._key_block_open = False  # set by the private_key replacement (_open_block)
        self._key_lines_left = 0
        if built_in:
            kind_index = KINDS.index("private_key")
            triggers, pattern, _ = self._built_in[kind_index]
            self._built_in[kind_index] = (triggers, pattern, self._open_block)

    def _open_block(self, match: re.Match[str]) -> str:
        if "-----END" not in match.group(0):
            self._key_block_open = True
        return REDACTED

    def record(self, record: Record) -> None:
        """Redact ``record``'s message and fields in place (the fields' dict is replaced by a
        redacted copy when something changes: the event it came from is left as it was)."""
        message = record.message
        fields = record.fields
        if self._key_lines_left and fields is None and record.log_type != "platform":
            if _KEY_BLOCK_LINE.fullmatch(message.strip()):
                self._key_lines_left = 0 if "-----END" in message else self._key_lines_left - 1
                record.message = REDACTED
                return
            self._key_lines_left = 0  # not the block's: it ended without its END line
        if fields is not None:
            redacted = self.fields(fields)
            if (
                redacted is fields
                and not self._user_anchored
                and (fields.get("message") is message or fields.get("msg") is message)
            ):
                return  # the message is one of the fields' strings, checked with them
            record.fields = redacted
        if self._user:
            record.message = self.text(message)
        elif self._built_in:  # text(), without its call: the common line, built-in patterns
            lowered = message.lower()
            if _text_may_hold_secret(lowered):
                record.message = self._replace(message, lowered)
        if self._key_block_open:
            self._key_block_open = False
            self._key_lines_left = _KEY_LINES

    def text(self, text: str) -> str:
        """``text`` with every secret replaced (the same object when there is none)."""
        if self._built_in:
            lowered = text.lower()
            if _text_may_hold_secret(lowered):
                text = self._replace(text, lowered)
        for pattern in self._user:
            text = pattern.sub(REDACTED, text)
        return text

    def _replace(self, text: str, lowered: str) -> str:
        """``text`` with the built-in patterns applied (``lowered``: ``text.lower()``), each
        only where its triggers are."""
        for triggers, pattern, replace in self._built_in:
            if _any_in(triggers, lowered):
                text = pattern.sub(replace, text)
        return text

    def fields(self, fields: dict[str, Any]) -> dict[str, Any]:
        """``fields``, or a redacted copy of it when a key or value holds a secret."""
        # The pre-check over every string at once: one join and one scan per pattern.
        if not self._user_anchored:
            joined = _joined(fields, 0)
            if not (self.built_in and _may_hold_secret(joined.lower())) and not any(
                p.search(joined) for p in self._user_joinable
            ):
                return fields
        redacted = self._value(fields)
        return redacted if isinstance(redacted, dict) else fields

    def _value(self, value: Any, key_sensitive: bool = False) -> Any:
        if isinstance(value, str):
            if key_sensitive and self.built_in:
                return REDACTED if value else value
            return self.text(value)
        if isinstance(value, dict):
            out: dict[Any, Any] | None = None
            for key, item in value.items():
                new_key = self.text(key) if isinstance(key, str) else key
                new_item = self._value(item, isinstance(key, str) and self._sensitive(key))
                if out is None and (new_key is not key or new_item is not item):
                    out = {}
                    for k, v in value.items():  # the unchanged ones before this key
                        if k is key:
                            break
                        out[k] = v
                if out is not None:
                    if new_key in out and new_key is not key:
                        new_key = _unique(out, new_key)
                    out[new_key] = new_item
            return value if out is None else out
        if isinstance(value, list):
            items = [self._value(item, key_sensitive) for item in value]
            return value if all(a is b for a, b in zip(items, value)) else items
        return value

    def _sensitive(self, key: str) -> bool:
        known = self._sensitive_keys.get(key)
        if known is None:
            known = normalized_key(key) in SENSITIVE_KEYS
            if len(self._sensitive_keys) < _KEY_CACHE_MAX:
                self._sensitive_keys[key] = known
        return known


def _unique(out: dict[Any, Any], key: str) -> str:
    """A key not yet in ``out``: two keys redacted to the same text are both kept."""
    n = 2
    while f"{key}#{n}" in out:
        n += 1
    return f"{key}#{n}"


def _text_may_hold_secret(lowered: str) -> bool:
    """Whether the lower-cased text holds one of ``_TEXT_TRIGGERS``: "key" with "api" or
    "private" stands for the six that end in "key" (one expression, not a loop: this runs for
    every record; tests/unit/test_redact.py checks it finds every trigger). A bare "key"
    (``cache key=…``) is no trigger: it would send the line through every pattern's triggers
    for nothing.

    Each substring search walks the text (~6 instructions a character); a one-character one
    is a ``memchr``, several times cheaper. So a rare letter of a trigger is looked for first
    where it has one, and the searches that need it run only on the lines that have it (most
    lines have no "j" or "z", and many no "k", "b" or "p")."""
    return (
        ("k" in lowered and (
            "token" in lowered or "akia" in lowered
            or ("key" in lowered and ("api" in lowered or "private" in lowered))
        ))
        or ("p" in lowered and "pass" in lowered)
        or "secret" in lowered or "://" in lowered or "-----" in lowered or "asia" in lowered
        or ("j" in lowered and "eyj" in lowered)
        or ("b" in lowered and "bearer" in lowered)
        or ("z" in lowered and "authorization" in lowered)
    )  # fmt: skip


def _may_hold_secret(lowered: str) -> bool:
    """Whether the lower-cased text holds one of ``_TRIGGERS``: a field name of
    ``SENSITIVE_KEYS`` among the fields' strings, or a text trigger."""
    return "cookie" in lowered or _text_may_hold_secret(lowered)


def _any_in(triggers: tuple[str, ...], lowered: str) -> bool:
    # A loop, not any(generator): this runs for every string, and the generator costs more.
    for trigger in triggers:  # noqa: SIM110
        if trigger in lowered:
            return True
    return False


def _anchored(pattern: str) -> bool:
    """Whether ``pattern`` may look at a text's edges: an anchor (conservatively: a ``[^...]``
    counts too) or a negative lookaround (``(?<!\\s)x`` matches ``x`` alone, not after the
    newline that joins it to the string before)."""
    return (
        "^" in pattern or "$" in pattern or "\\A" in pattern or "\\Z" in pattern
        or "(?!" in pattern or "(?<!" in pattern
    )  # fmt: skip


def _joined(value: dict[str, Any] | list[Any], depth: int) -> str:
    """Every string in ``value`` (keys too), joined by newlines: one text to pre-check. A
    value nested too deep to walk is taken as its ``repr``, which holds its strings too."""
    if depth > 100:
        return repr(value)
    if type(value) is dict:
        parts = list(value)  # the keys: strings (JSON objects, jsonsafe.sanitize)
        items = value.values()
    else:
        parts = []
        items = value
    for item in items:
        kind = type(item)
        if kind is str:
            parts.append(item)
        elif kind is dict or kind is list:
            parts.append(_joined(item, depth + 1))
    return "\n".join(parts)
