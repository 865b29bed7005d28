"""``HTTP_HEADERS``: a JSON object of extra headers sent with every request to the receiver.

``{"X-Scope-OrgID": "team-a", "X-Tenant-Token": "..."}``. Each name must be a valid header name
and each value text that can go on the wire as it is (Latin-1, no line break or other control
character but tab); a header the extension itself sets on the way — the message framing
(``Content-Length``, ``Transfer-Encoding``, ``Host``), the connection's (``Connection``,
``Keep-Alive``, ``Upgrade``, ``TE``, ``Trailer``, ``Expect``, ``Proxy-*``), the body's coding
(``Content-Encoding``), the batch's ids (``Idempotency-Key``, ``X-Request-Id``) and the ones
the chosen ``HTTP_AUTH_TYPE`` sets — is refused rather than silently overridden either way.
``Authorization`` is allowed with ``HTTP_AUTH_TYPE=none``, for schemes the auth types do not
cover (``Splunk <token>``). An error names a header, never a value: values are secrets.

Parsed after the register call (by ``settings.secrets``), not in ``load``: ``json`` (with
``re``) takes about a millisecond to import, which before register every cold start would pay.
"""

from __future__ import annotations

from . import parse
from .names import HTTP_AUTH_TYPE, HTTP_HEADERS
from .parse import ConfigError

# Set by the extension on every request (or by the connection): never from HTTP_HEADERS.
RESERVED = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "content-encoding",
        "idempotency-key",
        "x-request-id",
    }
)
# What each auth type sets (apikey's header name is the settings' own).
_SET_BY_AUTH = {
    "basic": ("authorization",),
    "bearer": ("authorization",),
    "splunk": ("authorization",),
    "aws_sigv4": (
        "authorization",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-content-sha256",
    ),
}
EXAMPLE = '{"X-Scope-OrgID": "team-a"}'
MAX_HEADERS = 64


def parse_headers(raw: str, *, auth_kind: str, api_key_header: str) -> tuple[tuple[str, str], ...]:
    """The ``(name, value)`` pairs of ``raw``, in their order; ``ConfigError`` naming
    ``HTTP_HEADERS`` and the fix. ``api_key_header`` is the header ``apikey`` sets."""
    import json

    if not raw.strip():
        return ()

    try:
        # Objects as their pairs: a repeated name is kept, which a dict would silently collapse.
        document = json.loads(raw, object_pairs_hook=_Pairs)
    except ValueError as exc:
        # The position helps find the typo; the decoder's message quotes no part of the text.
        where = f" (line {exc.lineno}, column {exc.colno})" if hasattr(exc, "lineno") else ""
        raise ConfigError(
            HTTP_HEADERS, f"is not valid JSON{where}: give an object, e.g. {EXAMPLE}"
        ) from None
    if not isinstance(document, _Pairs):
        raise ConfigError(
            HTTP_HEADERS, f"must be a JSON object of header names and values, e.g. {EXAMPLE}"
        )
    if len(document) > MAX_HEADERS:
        raise ConfigError(HTTP_HEADERS, f"has {len(document)} headers; at most {MAX_HEADERS}")
    taken = set(RESERVED) | set(_SET_BY_AUTH.get(auth_kind, ()))
    if auth_kind == "apikey":
        taken.add((api_key_header or "X-API-Key").lower())
    seen: set[str] = set()
    headers = []
    for name, value in document:
        shown = _shown(name)
        if not parse.is_token(name) or not name.isascii():
            raise ConfigError(HTTP_HEADERS, f"{shown} is not a valid header name")
        lower = name.lower()
        if lower in seen:
            raise ConfigError(HTTP_HEADERS, f"names {shown} twice (header names ignore case)")
        seen.add(lower)
        if lower in taken:
            raise ConfigError(HTTP_HEADERS, _taken(name, lower, auth_kind))
        if not isinstance(value, str):
            raise ConfigError(
                HTTP_HEADERS, f"the value of {shown} must be a JSON string (in double quotes)"
            )
        value = value.strip(" \t")
        if any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in value):
            raise ConfigError(
                HTTP_HEADERS, f"the value of {shown} holds a line break or a control character"
            )
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise ConfigError(
                HTTP_HEADERS,
                f"the value of {shown} is not Latin-1 text: HTTP header values cannot carry "
                "it as it is (encode it, e.g. percent-encoded or base64, as the receiver expects)",
            ) from None
        headers.append((name, value))
    from .. import log

    # Such headers often carry a tenant's token: never shown, in any form (values under the
    # scrubber's minimum length excepted).
    log.add_secrets(value for _, value in headers)
    return tuple(headers)


class _Pairs(list):  # type: ignore[type-arg]
    """A JSON object's ``(name, value)`` pairs, told apart from a JSON array."""


def _shown(name: object) -> str:
    """A header name fit for a message: quoted, at most 40 characters."""
    text = str(name)
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _taken(name: str, lower: str, auth_kind: str) -> str:
    if lower in RESERVED:
        return f"must not set {name}: the extension sets it on every request"
    if lower == "authorization":
        return (
            f"must not set {name}: {HTTP_AUTH_TYPE}={auth_kind} sets it (remove it from "
            f"{HTTP_HEADERS}, or set {HTTP_AUTH_TYPE}=none to send your own)"
        )
    return f"must not set {name}: {HTTP_AUTH_TYPE}={auth_kind} sets it"
