"""Pluggable authentication: one small class per ``HTTP_AUTH_TYPE``.

A strategy only adds headers to a request; it never sees bodies, queues or connections. Adding a
strategy is one class and one line in ``STRATEGIES``. ``required_variables`` lets ``config``
reject a half-configured strategy before anything is sent.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..settings.load import Config

DEFAULT_API_KEY_HEADER = "X-API-Key"
REDACTED = "***"


class Auth:
    """No authentication; also the base class, whose ``apply`` adds nothing."""

    required_variables: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: Config) -> Auth:
        """Build the strategy from validated settings; override when it needs any."""
        return cls()

    def apply(self, headers: dict[str, str]) -> None:
        """Add this strategy's headers to ``headers`` in place."""

    def secret_headers(self) -> tuple[str, ...]:
        """Header names whose values must be redacted wherever headers are shown."""
        return ()


class BasicAuth(Auth):
    """``Authorization: Basic base64(username:credentials)`` (RFC 7617)."""

    required_variables = ("HTTP_AUTH_USERNAME", "HTTP_AUTH_CREDENTIALS")

    @classmethod
    def from_config(cls, config: Config) -> Auth:
        return cls(config.auth_username, config.auth_credentials)

    def __init__(self, username: str, credentials: str) -> None:
        import base64  # only this strategy needs it

        token = base64.b64encode(f"{username}:{credentials}".encode()).decode("ascii")
        self._value = f"Basic {token}"

    def apply(self, headers: dict[str, str]) -> None:
        headers["Authorization"] = self._value

    def secret_headers(self) -> tuple[str, ...]:
        return ("Authorization",)


class BearerAuth(Auth):
    """``Authorization: Bearer <credentials>`` (RFC 6750)."""

    required_variables = ("HTTP_AUTH_CREDENTIALS",)

    @classmethod
    def from_config(cls, config: Config) -> Auth:
        return cls(config.auth_credentials)

    def __init__(self, credentials: str) -> None:
        self._value = f"Bearer {credentials}"

    def apply(self, headers: dict[str, str]) -> None:
        headers["Authorization"] = self._value

    def secret_headers(self) -> tuple[str, ...]:
        return ("Authorization",)


class ApiKeyAuth(Auth):
    """``<HTTP_AUTH_HEADER_NAME>: <credentials>``; the header defaults to ``X-API-Key``."""

    required_variables = ("HTTP_AUTH_CREDENTIALS",)

    @classmethod
    def from_config(cls, config: Config) -> Auth:
        return cls(config.auth_header_name, config.auth_credentials)

    def __init__(self, header_name: str, credentials: str) -> None:
        self._header = header_name or DEFAULT_API_KEY_HEADER
        self._value = credentials

    def apply(self, headers: dict[str, str]) -> None:
        headers[self._header] = self._value

    def secret_headers(self) -> tuple[str, ...]:
        return (self._header,)


STRATEGIES: dict[str, type[Auth]] = {
    "none": Auth,
    "basic": BasicAuth,
    "bearer": BearerAuth,
    "apikey": ApiKeyAuth,
}


def from_config(config: Config) -> Auth:
    """The strategy named by ``config.auth_type`` (already validated by ``config.load``)."""
    return STRATEGIES[config.auth_type].from_config(config)


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
