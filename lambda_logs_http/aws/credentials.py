"""The function's AWS credentials: from the environment, or from the container endpoint.

Lambda gives a function its execution role's credentials as ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY`` and ``AWS_SESSION_TOKEN``. With SnapStart (and in containers that work
the same way) it gives instead ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` and
``AWS_CONTAINER_AUTHORIZATION_TOKEN``: a GET there, with the token as ``Authorization``, answers
``{"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}``, and the credentials must be fetched
again before ``Expiration``. The environment's keys win when both are present, as in the AWS
SDKs. ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`` is read (each fetch) when the token variable is
not set. Not supported: ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`` (ECS), profiles, IMDS.

No credential ever reaches a ``repr``, a log line or an exception's text.
"""

from __future__ import annotations

import time

from ..settings.names import (
    AWS_ACCESS_KEY_ID,
    AWS_CONTAINER_AUTHORIZATION_TOKEN,
    AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE,
    AWS_CONTAINER_CREDENTIALS_FULL_URI,
    AWS_SECRET_ACCESS_KEY,
    AWS_SESSION_TOKEN,
)
from . import errors
from .errors import AwsError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from .errors import Request


REFRESH_MARGIN_SECONDS = 300.0
"""Fetch new credentials this long before ``Expiration``, so a signature never uses stale ones."""
RETRY_AFTER_FAILURE_SECONDS = 30.0
"""After a failed refresh while the old credentials still hold, wait this long to try again."""
TIMEOUT_SECONDS = 2.0

# Plain http is only acceptable to the machine itself and to the link-local addresses that ECS,
# EKS and Lambda serve credentials on: anywhere else the authorization token would travel in clear.
_PLAIN_HTTP_HOSTS = ("localhost", "169.254.170.2", "169.254.170.23", "fd00:ec2::23")


class Credentials:
    """An access key ID, secret key, optional session token and optional expiry (epoch seconds)."""

    __slots__ = ("access_key_id", "expiration", "secret_access_key", "session_token")

    def __init__(
        self,
        access_key_id: str,
        secret_access_key: str,
        session_token: str | None = None,
        expiration: float | None = None,
    ) -> None:
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.session_token = session_token or None
        self.expiration = expiration

    def __repr__(self) -> str:
        # The access key ID is not a secret in AWS's sense, but it names an account's principal.
        return f"Credentials(<hidden>, expiration={self.expiration!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Credentials):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[str, str, str | None, float | None]:
        return (self.access_key_id, self.secret_access_key, self.session_token, self.expiration)

    def secrets(self) -> tuple[str, ...]:
        """Every value that must not appear in text (for ``errors.scrub``)."""
        values = (self.access_key_id, self.secret_access_key, self.session_token)
        return tuple(value for value in values if value)


def from_environment(environ: Mapping[str, str]) -> Credentials | None:
    """The static credentials in the environment; None when neither key variable is set."""
    key_id = environ.get(AWS_ACCESS_KEY_ID, "").strip()
    secret = environ.get(AWS_SECRET_ACCESS_KEY, "").strip()
    if key_id and secret:
        return Credentials(key_id, secret, environ.get(AWS_SESSION_TOKEN, "").strip() or None)
    if key_id or secret:
        missing = AWS_SECRET_ACCESS_KEY if key_id else AWS_ACCESS_KEY_ID
        present = AWS_ACCESS_KEY_ID if key_id else AWS_SECRET_ACCESS_KEY
        raise AwsError(
            errors.INCOMPLETE_CREDENTIALS,
            f"{present} is set but {missing} is not: set both, or neither to use the function's "
            "role (Lambda sets them)",
            variable=missing,
        )
    return None


class CredentialsProvider:
    """The credentials to sign with now: cached, and refreshed ahead of their expiry.

    ``environ`` is read once, here. ``request`` is needed only for the container endpoint.
    ``clock`` gives epoch seconds. ``get()`` is safe to call from several threads.
    """

    def __init__(
        self,
        environ: Mapping[str, str],
        request: Request | None = None,
        *,
        clock: Callable[[], float] = time.time,
        refresh_margin: float = REFRESH_MARGIN_SECONDS,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        import threading

        self._static = from_environment(environ)
        self._uri = environ.get(AWS_CONTAINER_CREDENTIALS_FULL_URI, "").strip()
        self._token = environ.get(AWS_CONTAINER_AUTHORIZATION_TOKEN, "").strip()
        self._token_file = environ.get(AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, "").strip()
        self._request = request
        self._clock = clock
        self._margin = refresh_margin
        self._timeout = timeout
        self._lock = threading.Lock()
        self._cached: Credentials | None = None
        self._refresh_at = 0.0
        if self._static is None and self._uri:
            _check_endpoint(self._uri)

    @property
    def source(self) -> str:
        """``"environment"``, ``"container"`` or ``""`` (no credentials configured)."""
        if self._static is not None:
            return "environment"
        return "container" if self._uri else ""

    def __repr__(self) -> str:
        return f"CredentialsProvider(source={self.source!r})"

    def get(self) -> Credentials:
        """Credentials valid now; raises ``AwsError`` when there are none to be had."""
        if self._static is not None:
            return self._static
        if not self._uri:
            raise AwsError(
                errors.NO_CREDENTIALS,
                f"no AWS credentials: neither {AWS_ACCESS_KEY_ID}/{AWS_SECRET_ACCESS_KEY} nor "
                f"{AWS_CONTAINER_CREDENTIALS_FULL_URI} is set (Lambda sets them for the "
                "function's execution role)",
            )
        with self._lock:
            now = self._clock()
            cached = self._cached
            if cached is not None and now < self._refresh_at:
                return cached
            try:
                fresh = self._fetch()
            except AwsError:
                if cached is not None and cached.expiration is not None and now < cached.expiration:
                    # Still valid: keep signing with it, and try again a little later.
                    self._refresh_at = min(now + RETRY_AFTER_FAILURE_SECONDS, cached.expiration)
                    return cached
                raise
            self._cached = fresh
            self._refresh_at = _refresh_time(fresh.expiration, now, self._margin)
            return fresh

    def _fetch(self) -> Credentials:
        if self._request is None:
            raise AwsError(
                errors.NO_CREDENTIALS,
                f"{AWS_CONTAINER_CREDENTIALS_FULL_URI} is set but no HTTP client was given",
            )
        headers = {"Accept": "application/json"}
        token = self._authorization_token()
        if token:
            headers["Authorization"] = token
        status, body = 0, b""
        for attempt in (1, 2):  # a local endpoint: one immediate retry, no backoff
            try:
                status, _, body = self._request("GET", self._uri, headers, b"", self._timeout)
            except OSError as exc:
                if attempt == 2:
                    raise AwsError(
                        errors.CREDENTIALS_ENDPOINT_ERROR,
                        f"the credentials endpoint in {AWS_CONTAINER_CREDENTIALS_FULL_URI} did "
                        f"not answer ({type(exc).__name__})",
                    ) from None
                continue
            if status < 500:
                break
        if status != 200:
            raise AwsError(
                errors.CREDENTIALS_ENDPOINT_ERROR,
                f"the credentials endpoint in {AWS_CONTAINER_CREDENTIALS_FULL_URI} answered HTTP "
                f"{status}"
                + (f": check {AWS_CONTAINER_AUTHORIZATION_TOKEN}" if status in (401, 403) else ""),
                status=status,
            )
        return _parse_credentials(body)

    def _authorization_token(self) -> str:
        if self._token or not self._token_file:
            return self._token
        try:
            with open(self._token_file, encoding="utf-8") as handle:
                return handle.read().strip()
        except OSError as exc:
            raise AwsError(
                errors.NO_CREDENTIALS,
                f"cannot read {AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE} ({type(exc).__name__})",
            ) from None


def _refresh_time(expiration: float | None, now: float, margin: float) -> float:
    """When to fetch again: ``margin`` before expiry, or half-way there for short-lived ones."""
    if expiration is None:
        return float("inf")
    if expiration - margin > now:
        return expiration - margin
    return now + max(0.0, (expiration - now) / 2)


def _parse_credentials(body: bytes) -> Credentials:
    import json

    def invalid(why: str) -> AwsError:
        return AwsError(
            errors.INVALID_RESPONSE,
            f"the credentials endpoint in {AWS_CONTAINER_CREDENTIALS_FULL_URI} answered {why}",
        )

    try:
        document = json.loads(body)
    except ValueError:
        raise invalid("something that is not JSON") from None
    if not isinstance(document, dict):
        raise invalid("JSON that is not an object")
    key_id, secret = document.get("AccessKeyId"), document.get("SecretAccessKey")
    token = document.get("Token")
    if not isinstance(key_id, str) or not isinstance(secret, str) or not key_id or not secret:
        raise invalid("no AccessKeyId/SecretAccessKey")
    if token is not None and not isinstance(token, str):
        raise invalid("a Token that is not text")
    expiration = document.get("Expiration")
    expires_at = None
    if expiration is not None:
        expires_at = parse_timestamp(expiration) if isinstance(expiration, str) else None
        if expires_at is None:
            raise invalid("an Expiration that is not an ISO 8601 time")
    return Credentials(key_id, secret, token, expires_at)


def parse_timestamp(text: str) -> float | None:
    """Epoch seconds of an ISO 8601 UTC time such as ``2026-05-01T12:00:00Z``; None if invalid.

    Accepts fractions of a second and a ``+HH:MM`` offset (``datetime.fromisoformat`` before
    Python 3.11 rejects ``Z``).
    """
    from datetime import datetime, timezone

    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    if "." in value:  # 3.9/3.10's fromisoformat wants 3 or 6 digits of fraction
        head, _, rest = value.partition(".")
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        value = f"{head}.{(digits + '000000')[:6]}{rest}"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def _check_endpoint(uri: str) -> None:
    """Refuse a plain-http credentials endpoint that is not on this machine or link-local."""
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    try:
        host = (parts.hostname or "").lower()
    except ValueError:
        host = ""
    if scheme == "https" and host:
        return
    if scheme == "http" and (host in _PLAIN_HTTP_HOSTS or _is_loopback(host)):
        return
    raise AwsError(
        errors.INVALID_CREDENTIALS_ENDPOINT,
        f"{AWS_CONTAINER_CREDENTIALS_FULL_URI} must be an https:// URL, or http:// to a loopback "
        "or the container credentials address (169.254.170.2/.23)",
        variable=AWS_CONTAINER_CREDENTIALS_FULL_URI,
    )


def _is_loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
