"""Pluggable authentication: one small class per ``HTTP_AUTH_TYPE``.

A strategy only adds headers to a request; it never sees queues or connections. It is given the
request it signs (method, URL and body as sent, after compression), which a signing strategy
needs and the others ignore. It takes plain values, never the settings: ``required`` and
``optional`` name the values it takes (fields of ``settings.model.Auth``), so the settings can
refuse a half-configured strategy at start and build any strategy the same way; ``in_header``
and ``forbidden`` say which values it sends verbatim in a header and what they must not hold,
so that a value it could not send is refused at start rather than on every batch; ``runtime``
names what the composition root gives instead (``aws_credentials``: a callable returning the
function's current AWS credentials). Adding a strategy is one class and one line in
``STRATEGIES``. ``WithHeaders`` wraps any strategy with ``HTTP_HEADERS``' fixed headers.

Imported before the extension registers (the settings check the registry): it imports nothing.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from ..aws.credentials import Credentials

DEFAULT_API_KEY_HEADER = "X-API-Key"
REDACTED = "***"
AWS_SIGV4 = "aws_sigv4"


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
    runtime: tuple[str, ...] = ()

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


class SplunkAuth(Auth):
    """``Authorization: Splunk <credentials>``: a Splunk HTTP Event Collector token."""

    required = ("credentials",)
    in_header = ("credentials",)

    def __init__(self, credentials: str) -> None:
        self._value = f"Splunk {credentials}"

    def apply(self, headers: dict[str, str], request: Request = NO_REQUEST) -> None:
        headers["Authorization"] = self._value

    def secret_headers(self) -> tuple[str, ...]:
        return ("Authorization",)


class SigningFailed(OSError):
    """No signature could be made (the credentials endpoint did not answer...): an ``OSError``,
    so the transport treats it as a failed send and the batch is kept and retried."""


class AwsSigV4Auth(Auth):
    """AWS Signature Version 4 with the function's own credentials (``aws.sigv4``).

    For receivers behind IAM: API Gateway with IAM authorization (``execute-api``), Lambda
    function URLs with ``AWS_IAM`` (``lambda``), OpenSearch (``es``, ``aoss``), Amazon Managed
    Prometheus (``aps``). Each request is signed as sent: every header but the hop-by-hop ones,
    and the body after compression, whose hash also goes in ``X-Amz-Content-Sha256`` (OpenSearch
    and CloudFront-fronted APIs want it). ``aws_credentials`` is called for every request; the
    provider behind it (``aws.credentials.CredentialsProvider``) answers from its cache and
    fetches new credentials only before they expire.
    """

    required = ("aws_region",)
    optional = ("aws_service",)  # inferred from the host after register when not given
    runtime = ("aws_credentials",)

    def __init__(
        self,
        aws_service: str,
        aws_region: str,
        aws_credentials: Callable[[], Credentials],
        clock: Callable[[], float] | None = None,
    ) -> None:
        import time

        if not aws_service:
            raise ValueError("aws_sigv4 needs the service to sign for (settings.load infers it)")
        self._service = aws_service
        self._region = aws_region
        self._credentials = aws_credentials
        self._clock = clock or time.time

    def apply(self, headers: dict[str, str], request: Request = NO_REQUEST) -> None:
        from ..aws import sigv4
        from ..aws.errors import AwsError

        try:
            credentials = self._credentials()
        except AwsError as exc:
            raise SigningFailed(f"no AWS credentials to sign with: {exc}") from None
        signed = sigv4.sign(
            request.method,
            request.url,
            headers,
            request.body,
            credentials=credentials,
            region=self._region,
            service=self._service,
            now=self._clock(),
            content_sha256_header=True,
        )
        headers.update(signed.headers)

    def secret_headers(self) -> tuple[str, ...]:
        return ("Authorization", "X-Amz-Security-Token")


class WithHeaders(Auth):
    """``inner`` plus fixed extra headers (``HTTP_HEADERS``), added first so that a signing
    strategy signs them too. Their values are treated as secrets (tenant tokens travel there)."""

    def __init__(self, inner: Auth, headers: tuple[tuple[str, str], ...]) -> None:
        self._inner = inner
        self._headers = headers

    def apply(self, headers: dict[str, str], request: Request = NO_REQUEST) -> None:
        headers.update(self._headers)
        self._inner.apply(headers, request)

    def secret_headers(self) -> tuple[str, ...]:
        return (*self._inner.secret_headers(), *(name for name, _ in self._headers))


STRATEGIES: dict[str, type[Auth]] = {
    "none": Auth,
    "basic": BasicAuth,
    "bearer": BearerAuth,
    "apikey": ApiKeyAuth,
    "splunk": SplunkAuth,
    AWS_SIGV4: AwsSigV4Auth,
}


def build(kind: str, **values: object) -> Auth:
    """The strategy registered as ``kind``, given the values it takes (others are ignored)."""
    strategy = STRATEGIES[kind]
    names = (*strategy.required, *strategy.optional, *strategy.runtime)
    return strategy(**{name: values[name] for name in names})  # type: ignore[arg-type]


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
