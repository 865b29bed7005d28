"""The one error type of every AWS call, and the HTTP hook the calls go through.

``AwsError.code`` is AWS's own error code (``AccessDeniedException``, ``ParameterNotFound``...)
or, for what fails before or around AWS, one of the ``LOCAL_CODES`` below. ``str(error)`` is a
complete sentence for an ``[EXTENSION] ERROR`` line: what failed and the fix. It never holds a
secret's value or a credential: AWS's own message is cut to its first line (AWS appends the
canonical request, session token included, to signature errors) and any credential in it is
replaced.

The HTTP request itself is made by a callable the caller injects (``Request``), so this package
carries no HTTP client of its own: at run time it is the extension's transport (with its proxy
and TLS settings), in tests whatever the test wires in.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    Request = Callable[
        [str, str, dict[str, str], bytes, float], tuple[int, Mapping[str, str], bytes]
    ]
    """``request(method, url, headers, body, timeout) -> (status, headers, body)``.

    Sends ``headers`` as given (it may add ``Content-Length``, ``Connection``, ``User-Agent`` or
    ``Accept-Encoding``, which are not signed, but no other ``Host``), waits at most ``timeout``
    seconds in all, and raises ``OSError`` when no answer comes (``TimeoutError`` for a timeout).
    Response header names may be in any case.
    """

# Codes for failures that are not AWS's answer.
NO_CREDENTIALS = "NoCredentials"
INCOMPLETE_CREDENTIALS = "IncompleteCredentials"
INVALID_CREDENTIALS_ENDPOINT = "InvalidCredentialsEndpoint"
CREDENTIALS_ENDPOINT_ERROR = "CredentialsEndpointError"
NO_REGION = "NoRegion"
ENDPOINT_UNREACHABLE = "EndpointUnreachable"
TIMEOUT = "Timeout"
INVALID_RESPONSE = "InvalidResponse"
SECRET_NOT_TEXT = "SecretNotText"
SECRET_NOT_JSON = "SecretNotJson"
JSON_KEY_NOT_FOUND = "JsonKeyNotFound"
INVALID_CIPHERTEXT_BASE64 = "InvalidCiphertextBase64"
LOCAL_CODES = (
    NO_CREDENTIALS,
    INCOMPLETE_CREDENTIALS,
    INVALID_CREDENTIALS_ENDPOINT,
    CREDENTIALS_ENDPOINT_ERROR,
    NO_REGION,
    ENDPOINT_UNREACHABLE,
    TIMEOUT,
    INVALID_RESPONSE,
    SECRET_NOT_TEXT,
    SECRET_NOT_JSON,
    JSON_KEY_NOT_FOUND,
    INVALID_CIPHERTEXT_BASE64,
)

MAX_AWS_MESSAGE = 300
REDACTED = "***"


class AwsError(Exception):
    """An AWS call, or the credentials or configuration it needs, failed.

    ``code``: AWS's error code or one of ``LOCAL_CODES``. ``status``: the HTTP status (0 when
    there was no answer). ``service``/``action``: e.g. ``secretsmanager``/``GetSecretValue``
    ("" when not an AWS call). ``variable``: the environment variable the failure is about
    ("" until the caller that knows it sets it, see ``for_variable``).
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int = 0,
        service: str = "",
        action: str = "",
        variable: str = "",
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.service = service
        self.action = action
        self.variable = variable

    def __str__(self) -> str:
        return f"{self.variable}: {self.message}" if self.variable else self.message

    def __repr__(self) -> str:
        return f"AwsError({self.code!r}, {str(self)!r})"

    def for_variable(self, variable: str) -> AwsError:
        """The same error, about ``variable`` (its name leads the message)."""
        return AwsError(
            self.code,
            self.message,
            status=self.status,
            service=self.service,
            action=self.action,
            variable=variable,
        )


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` safe to log: its first line, at most ``MAX_AWS_MESSAGE`` characters, no secret."""
    line = text.strip().split("\n", 1)[0].strip()
    for secret in secrets:
        if secret:
            line = line.replace(secret, REDACTED)
    if len(line) > MAX_AWS_MESSAGE:
        line = line[: MAX_AWS_MESSAGE - 3] + "..."
    return line


def header(headers: Mapping[str, str], name: str) -> str:
    """A response header's value by case-insensitive name ("" when absent)."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return ""
