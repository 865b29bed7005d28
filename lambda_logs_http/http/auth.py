"""Pluggable authentication: one small class per ``HTTP_AUTH_TYPE``.

A strategy only adds headers to a request; it never sees queues or connections. It is given the
request it signs (method, URL and body as sent, after compression), which a signing strategy
needs and the others ignore. It takes plain values, never the settings: ``required`` and
``optional`` name the values it takes (fields of ``settings.model.Auth``), so the settings can
refuse a half-configured strategy at start and build any strategy the same way; ``in_header``
and ``forbidden`` say which values it sends verbatim in a header and what they must not hold,
so that a value it could not send is refused at start rather than on every batch. Adding a
strategy is one class and one line in ``STRATEGIES``.

Imported before the extension registers (the settings check the registry): it imports nothing.
"""

from __future__ import annotations

DEFAULT_API_KEY_HEADER = "X-API-Key"
REDACTED = "***"


class Request:
    """What a strategy may need to see of the request it adds headers to."""

    __slots__ = ("method", "url", "body")

    def __init__(self, method: str, url: str, body: bytes) -> None:
        self.method = method
        self.url = url  # the whole URL, as the request targets it
        self.body = body  # as sent (compressed when it is)


NO_REQUEST = Request("POST", "", b"")


class Auth:
    """No authentication; also the base class, whose ``apply`` adds nothing."""

    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    # The values sent as they are as a header value (Latin-1 text without control characters).
    in_header: tuple[str, ...] = ()
    # Characters a value must not hold, by value.
    forbidden: dict[str, str] = {}  # noqa: RUF012 (read-only class data)

    def apply(self, headers: dict[str, str], request: Request = NO_REQUEST) -> None:
        """Add this strategy's headers to ``headers`` (the request's others) in place."""

    def secret_headers(self) -> tuple[str, ...]:
        """Header names whose values must be redacted wherever headers are shown."""
        return ()


class BasicAuth(Auth):
    """``Authorization: Basic base64(username:credentials)`` (RFC 7617)."""

    required = ("username", "credentials")
    forbidden = {"username": ":"}  # noqa: RUF012 (RFC 7617: the first ':' ends the user name)

    def __init__(self, username: str, credentials: str) -> None:
        import base64  # only this strategy needs it

        token = base64.b64encode(f"{username}:{credentials}".encode()).decode("ascii")
        self._value = f"Basic {token}"

    def apply(self, headers: dict[str, str], request: Request = NO_REQUEST) -> None:
        headers["Authorization"] = self._value

    def secret_headers(self) -> tuple[str, ...]:
        return ("Authorization",)


class BearerAuth(Auth):
    """``Authorization: Bearer <credentials>`` (RFC 6750)."""

    required = ("credentials",)
    in_header = ("credentials",)

    def __init__(self, credentials: str) -> None:
        self._value = f"Bearer {credentials}"

    def apply(self, headers: dict[str, str], request: Request = NO_REQUEST) -> None:
        headers["Authorization"] = self._value

    def secret_headers(self) -> tuple[str, ...]:
        return ("Authorization",)


class ApiKeyAuth(Auth):
    """``<header_name>: <credentials>``; the header defaults to ``X-API-Key``."""

    required = ("credentials",)
    optional = ("header_name",)
    in_header = ("credentials",)

    def __init__(self, credentials: str, header_name: str = "") -> None:
        self._header = header_name or DEFAULT_API_KEY_HEADER
        self._value = credentials

    def apply(self, headers: dict[str, str], request: Request = NO_REQUEST) -> None:
        headers[self._header] = self._value

    def secret_headers(self) -> tuple[str, ...]:
        return (self._header,)


STRATEGIES: dict[str, type[Auth]] = {
    "none": Auth,
    "basic": BasicAuth,
    "bearer": BearerAuth,
    "apikey": ApiKeyAuth,
}


def build(kind: str, **values: str) -> Auth:
    """The strategy registered as ``kind``, given the values it takes (others are ignored)."""
    strategy = STRATEGIES[kind]
    return strategy(**{name: values[name] for name in (*strategy.required, *strategy.optional)})


def redact_headers(headers: dict[str, str], auth: Auth) -> dict[str, str]:
    """A copy of ``headers`` safe to print: secret values replaced, the scheme word kept."""
    secret = {name.lower() for name in auth.secret_headers()}
    shown = {}
    for name, value in headers.items():
        if name.lower() in secret:
            scheme = value.split(" ", 1)[0] if name.lower() == "authorization" else ""
            value = f"{scheme} {REDACTED}" if scheme else REDACTED
        shown[name] = value
    return shown
