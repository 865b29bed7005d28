"""JSON for values nobody vouches for: encoded as strict JSON, decoded without ever giving up.

A function can log anything, and Lambda forwards it: a value nested 5,000 levels deep, a NaN
(Python's ``json.dumps`` writes it by default), a number too large for ``float``, an integer of
5,000 digits (Python 3.11+ refuses to convert one beyond 4,300 digits, in both directions), a lone
surrogate, keys that are not strings. The C encoder and decoder stay the fast path everywhere;
this module is what runs when they refuse, so one odd record costs a little time instead of
taking its push, or the worker, down with it.

What it guarantees:

* ``dumps`` turns any value into compact ASCII JSON that a strict parser accepts: NaN and the
  infinities become the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``; an integer too long
  for decimal text becomes a hexadecimal string; a key that is not a string becomes its text;
  an object of another type becomes its ``str``; a value nested deeper than ``MAX_DEPTH``
  becomes a string holding its compact JSON text (many receivers' parsers stop at a depth of a
  few hundred, some at 128); a cycle becomes ``"<cycle>"``.
* ``loads`` decodes any JSON text Lambda may send, raising ``ValueError`` only for text that is
  not JSON: a value nested deeper than ``MAX_DEPTH`` is kept as its original text (a string),
  an integer too long for ``int`` as its digits (a string), ``NaN``/``Infinity`` as strings,
  bytes that are not UTF-8 as lone surrogates (which ``dumps`` escapes).
"""

from __future__ import annotations

import json
import re
from json.decoder import JSONDecodeError, scanstring
from json.encoder import encode_basestring_ascii as _quote

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

MAX_DEPTH = 64
"""Containers nested deeper than this (counting the outermost) are kept as text."""

NAN, INFINITY, NEG_INFINITY = "NaN", "Infinity", "-Infinity"
CONSTANTS = {"NaN": NAN, "Infinity": INFINITY, "-Infinity": NEG_INFINITY}
"""The strings NaN and the infinities become (for ``JSONDecoder(parse_constant=...)``)."""
_CYCLE = '"<cycle>"'

_dump_strict = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=str).encode


def _int_or_digits(text: str) -> int | str:
    try:
        return int(text)
    except ValueError:  # beyond sys.get_int_max_str_digits(): keep the digits, exactly
        return text


_decoder = json.JSONDecoder(
    parse_constant=CONSTANTS.__getitem__, parse_int=_int_or_digits, strict=False
)
_scan_once = _decoder.scan_once
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
# Strings (with their escapes) and brackets: enough to find where a too-deep value ends.
_SKIP_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[{]+|[\]}]+', re.DOTALL)
_LITERALS = (("true", True), ("false", False), ("null", None), ("NaN", NAN),
             ("Infinity", INFINITY), ("-Infinity", NEG_INFINITY))  # fmt: skip


# -- encoding ---------------------------------------------------------------------------------


def dumps(value: object) -> str:
    """``value`` as compact, strict, ASCII-only JSON; never raises (see the module docstring)."""
    try:
        return _dump_strict(value)
    except Exception:  # RecursionError, ValueError (NaN, long int), TypeError (keys), ...
        return _dump_strict(sanitize(value))


def sanitize(value: object, depth: int = 1) -> object:
    """A copy of ``value`` that the strict C encoder always encodes: strings, small enough
    integers, finite floats, booleans, None, and dicts (with string keys) and lists of them,
    nested at most ``MAX_DEPTH`` deep counting ``value`` itself as ``depth``."""
    if isinstance(value, str) or value is None or value is True or value is False:
        return value
    if isinstance(value, int):
        text = _int_text(value)
        return value if text[0] != '"' else text[1:-1]
    if isinstance(value, float):
        return value if value - value == 0.0 else _float_constant(value)
    if isinstance(value, (dict, list, tuple)):
        if depth > MAX_DEPTH:
            return text_of(value)
        if isinstance(value, dict):
            return {_key(k): sanitize(v, depth + 1) for k, v in value.items()}
        return [sanitize(v, depth + 1) for v in value]
    return _str(value)


def text_of(value: object) -> str:
    """Compact ASCII JSON for a value of any depth, without recursion (a deep value's text)."""
    out: list[str] = []
    # Each frame: [iterator over the container's items, is it a dict, its id, items written].
    stack: list[list[object]] = []
    on_path: set[int] = set()
    pending: object = value
    have_pending = True
    while True:
        if have_pending:
            have_pending = False
            item = pending
            if isinstance(item, (dict, list, tuple)):
                ident = id(item)
                if ident in on_path:
                    out.append(_CYCLE)
                else:
                    is_dict = isinstance(item, dict)
                    out.append("{" if is_dict else "[")
                    on_path.add(ident)
                    items = iter(item.items()) if is_dict else iter(item)  # type: ignore[union-attr]
                    stack.append([items, is_dict, ident, 0])
            else:
                out.append(_scalar(item))
        if not stack:
            return "".join(out)
        frame = stack[-1]
        iterator: Iterator[object] = frame[0]  # type: ignore[assignment]
        nxt = next(iterator, _END)
        if nxt is _END:
            out.append("}" if frame[1] else "]")
            on_path.discard(frame[2])  # type: ignore[arg-type]
            stack.pop()
            continue
        if frame[3]:
            out.append(",")
        frame[3] = 1
        if frame[1]:
            key, pending = nxt  # type: ignore[misc]
            out.append(_quote(_key(key)) + ":")
        else:
            pending = nxt
        have_pending = True


_END = object()


def _scalar(value: object) -> str:
    if isinstance(value, str):
        return _quote(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return _int_text(value)
    if isinstance(value, float):
        return float.__repr__(value) if value - value == 0.0 else _quote(_float_constant(value))
    return _quote(_str(value))


def _int_text(value: int) -> str:
    """Decimal digits, or a quoted hexadecimal string for an integer too long for decimal text
    (hexadecimal conversion has no limit and takes linear time)."""
    try:
        return int.__repr__(value)
    except ValueError:
        return _quote(hex(value))


def _float_constant(value: float) -> str:
    return NAN if value != value else (INFINITY if value > 0 else NEG_INFINITY)


def _key(key: object) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int, float)):
        text = _scalar(key)
        return text[1:-1] if text[:1] == '"' else text
    return _str(key)


def _str(value: object) -> str:
    try:
        text = str(value)
    except Exception:
        return f"<{type(value).__name__}>"
    return text if type(text) is str else f"<{type(value).__name__}>"


# -- decoding ---------------------------------------------------------------------------------


def loads(data: bytes | str) -> object:
    """The value of one JSON text; ``ValueError`` only if it is not JSON (module docstring)."""
    text = _text(data) if isinstance(data, (bytes, bytearray)) else data
    try:
        return _decoder.decode(text)
    except RecursionError:
        pass
    end = _WHITESPACE.match(text, 0).end()  # type: ignore[union-attr]
    value, end = parse_capped(text, end, MAX_DEPTH)
    end = _WHITESPACE.match(text, end).end()  # type: ignore[union-attr]
    if end != len(text):
        raise JSONDecodeError("Extra data", text, end)
    return value


def _text(data: bytes | bytearray) -> str:
    encoding = json.detect_encoding(data)
    try:
        return data.decode(encoding, "surrogatepass")
    except UnicodeDecodeError:
        # Not valid UTF-8 (or UTF-16/32): keep every byte, as a lone surrogate, rather than
        # refuse everything else in the text.
        return data.decode(encoding, "surrogateescape")


def parse_capped(text: str, index: int, max_depth: int, fast_depth: int = 2) -> tuple[object, int]:
    """The JSON value at ``text[index:]`` and where it ends, without recursion: containers
    nested deeper than ``max_depth`` are kept as their text. Containers at ``fast_depth`` (the
    events of a push, the members of a line's object) are handed to the C decoder first, so
    only a deep one is parsed here, one token at a time (0: parse everything here)."""
    # Each frame: [the container, the key awaiting its value (dicts) or None].
    stack: list[list[object]] = []
    try:
        while True:
            # A value starts at ``index``.
            index = _WHITESPACE.match(text, index).end()  # type: ignore[union-attr]
            char = text[index]
            complete = True
            if char == "{" or char == "[":
                depth = len(stack) + 1
                if depth > max_depth:
                    end = _skip_container(text, index)
                    value: object = text[index:end]
                    index = end
                else:
                    parsed = _try_fast(text, index) if depth == fast_depth else None
                    if parsed is not None:
                        value, index = parsed
                    else:
                        container: object = {} if char == "{" else []
                        stack.append([container, None])
                        index = _WHITESPACE.match(text, index + 1).end()  # type: ignore[union-attr]
                        closing = "}" if char == "{" else "]"
                        if text[index] == closing:
                            stack.pop()
                            value, index = container, index + 1
                        else:
                            complete = False
                            if char == "{":
                                index = _key_at(text, index, stack[-1])
            elif char == '"':
                value, index = scanstring(text, index + 1, False)
            else:
                value, index = _scalar_at(text, index)
            # A value is complete: put it in its container, and close what it completes.
            while complete:
                if not stack:
                    return value, index
                frame = stack[-1]
                container = frame[0]
                if isinstance(container, dict):
                    container[frame[1]] = value
                else:
                    container.append(value)  # type: ignore[attr-defined]
                index = _WHITESPACE.match(text, index).end()  # type: ignore[union-attr]
                char = text[index]
                if char == ",":
                    index += 1
                    if isinstance(container, dict):
                        index = _key_at(text, index, frame)
                    complete = False
                elif char == ("}" if isinstance(container, dict) else "]"):
                    stack.pop()
                    value, index = container, index + 1
                else:
                    raise JSONDecodeError("Expecting ',' delimiter", text, index)
    except IndexError:
        raise JSONDecodeError("Unexpected end of text", text, len(text)) from None


def _try_fast(text: str, index: int) -> tuple[object, int] | None:
    try:
        return _scan_once(text, index)  # type: ignore[no-any-return]
    except RecursionError:
        return None
    except StopIteration:
        raise JSONDecodeError("Expecting value", text, index) from None


def _key_at(text: str, index: int, frame: list[object]) -> int:
    """Read ``"key" :`` at ``index`` into ``frame``; return where its value starts."""
    index = _WHITESPACE.match(text, index).end()  # type: ignore[union-attr]
    if text[index] != '"':
        raise JSONDecodeError("Expecting property name enclosed in double quotes", text, index)
    frame[1], index = scanstring(text, index + 1, False)
    index = _WHITESPACE.match(text, index).end()  # type: ignore[union-attr]
    if text[index] != ":":
        raise JSONDecodeError("Expecting ':' delimiter", text, index)
    return index + 1


def _scalar_at(text: str, index: int) -> tuple[object, int]:
    match = _NUMBER.match(text, index)
    if match:
        number = match.group()
        if match.group(1) or match.group(2):
            return float(number), match.end()
        return _int_or_digits(number), match.end()
    for literal, value in _LITERALS:
        if text.startswith(literal, index):
            return value, index + len(literal)
    raise JSONDecodeError("Expecting value", text, index)


def capped(encoded: str, value: object) -> str:
    """``encoded`` (the C encoder's text for ``value``), or, when it nests deeper than
    ``MAX_DEPTH``, ``value`` encoded with its too-deep parts as text: the C encoder follows
    several thousand levels on newer Pythons, and receivers' parsers stop at a few hundred,
    some at 128. The test that clears almost every text is two counts at C speed."""
    if encoded.count("{") + encoded.count("[") <= MAX_DEPTH or text_depth(encoded) <= MAX_DEPTH:
        return encoded
    return _dump_strict(sanitize(value))


def text_depth(text: str) -> int:
    """How deep the containers of a JSON text nest (brackets inside strings not counted)."""
    depth = deepest = 0
    for match in _SKIP_TOKENS.finditer(text):
        token = match.group()
        first = token[0]
        if first == '"':
            continue
        if first == "[" or first == "{":
            depth += len(token)
            deepest = max(deepest, depth)
        else:
            depth -= len(token)
    return deepest


def _skip_container(text: str, index: int) -> int:
    """Where the container that opens at ``index`` ends (its brackets balance). Runs of
    brackets are one match each: a value 100,000 levels deep costs two matches, not 200,000."""
    depth = 0
    for match in _SKIP_TOKENS.finditer(text, index):
        token = match.group()
        first = token[0]
        if first == '"':
            continue
        if first == "[" or first == "{":
            depth += len(token)
        elif len(token) >= depth:
            return match.start() + depth
        else:
            depth -= len(token)
    raise JSONDecodeError("Unterminated container", text, index)
