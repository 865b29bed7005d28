"""The settings' steps after the register call: values from AWS, ``HTTP_HEADERS``, credentials.

Lambda starts the function's runtime only once every extension has registered, so what is slow
runs after the register call and before the Telemetry subscription, overlapping the runtime's
own init (``app.run``):

1. Which settings come from AWS (``load.secret_sources``: before register, only
   ``load.names_secret_sources`` looked, so that ``aws.sources`` is not imported before it);
   each is fetched: one call (Secrets Manager, SSM or KMS, ``aws.services``) with a 2 s timeout
   and one retry on throttling or a 5xx, signed with the function's credentials and sent
   through ``http.request`` (the receiver's proxy settings apply).
2. The settings are loaded from the environment with each fetched value in place of its source
   variables, so it is validated by the same code as a plain value; an error about it quotes
   none of it.
3. ``HTTP_HEADERS`` is parsed (``settings.headers``: it needs ``json``).
4. For ``HTTP_AUTH_TYPE=aws_sigv4``: the service inferred from the host when not given, and
   the function's credentials checked to be there.

A failure raises ``ConfigError`` (``SecretUnavailable`` when AWS did not give the value), whose
text names the variable, AWS's error code and the fix; the extension then stays a no-op
(``lifecycle.run_unconfigured``). A fetched value is never part of any message. When
``HTTP_ENDPOINT`` comes from AWS, log lines show its scheme and host only (``display``): a
secret URL often carries its token in the path.
"""

from __future__ import annotations

import time

from .. import log
from ..aws.errors import AwsError
from ..http.auth import AWS_SIGV4
from .headers import parse_headers
from .load import infer_sigv4_service, load, secret_sources
from .names import AWS_LAMBDA_FUNCTION_NAME, HTTP_AUTH_TYPE, HTTP_ENDPOINT, HTTP_HEADERS
from .parse import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..aws.credentials import CredentialsProvider
    from ..aws.errors import Request
    from ..aws.sources import SecretSource
    from .model import Endpoint, Settings


class SecretUnavailable(ConfigError):
    """A setting's value could not be read from AWS.

    ``variable`` is the variable to look at (``..._SECRET_ARN``, or ``..._SECRET_KEY`` for a
    missing JSON key), ``setting`` the setting it was for, ``code`` AWS's error code or one of
    ``aws.errors.LOCAL_CODES``.
    """

    def __init__(self, error: AwsError, setting: str) -> None:
        super().__init__(error.variable or setting, error.message)
        self.setting = setting
        self.code = error.code


def complete(
    environ: Mapping[str, str],
    settings: Settings | None = None,
    *,
    function_name: str = "",
    request: Request | None = None,
    credentials: CredentialsProvider | None = None,
) -> tuple[Settings, CredentialsProvider | None]:
    """The final settings, and the credentials provider when something signs with it.

    ``settings`` is what ``load`` gave before register, or None (when a setting comes from
    AWS: then they are loaded here). ``request`` (tests) replaces ``http.request.HttpRequester``
    for the AWS calls; ``credentials`` (tests) the provider built from ``environ``.
    """
    sources = secret_sources(environ)
    values: dict[str, str] = {}
    if sources:
        credentials = credentials or provider(environ)
        values = fetch(environ, sources, credentials, function_name=function_name, request=request)
        environ = with_values(environ, sources, values)
        settings = _load_fetched(environ, sources, values)
    elif settings is None:
        settings = load(environ)
    if settings.auth.kind == AWS_SIGV4:
        settings = infer_sigv4_service(settings)
        credentials = credentials or provider(environ)
        if not credentials.source:
            raise ConfigError(
                HTTP_AUTH_TYPE,
                f"{AWS_SIGV4} signs with the function's AWS credentials, but neither "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY nor AWS_CONTAINER_CREDENTIALS_FULL_URI "
                "is set (Lambda sets them for the execution role)",
            )
    raw_headers = environ.get(HTTP_HEADERS, "")
    if raw_headers.strip():
        try:
            headers = parse_headers(
                raw_headers,
                auth_kind=settings.auth.kind,
                api_key_header=settings.auth.header_name,
            )
        except ConfigError as exc:
            raise _from_source(exc, sources, values) from None
        settings = settings.replace(auth=settings.auth.replace(headers=headers))
    if HTTP_ENDPOINT in sources:
        settings = settings.replace(endpoint=hidden(settings.endpoint))
    return settings, credentials


def provider(environ: Mapping[str, str]) -> CredentialsProvider:
    """The function's credentials: the environment's, else the container endpoint's (fetched
    directly, never through a proxy, as the AWS SDKs do)."""
    from ..aws.credentials import AWS_CONTAINER_CREDENTIALS_FULL_URI, CredentialsProvider

    request = None
    if environ.get(AWS_CONTAINER_CREDENTIALS_FULL_URI, "").strip():
        # Only the container endpoint needs HTTP (``socket``...): not imported for the keys.
        from ..http.request import HttpRequester

        request = HttpRequester(environ, direct=True)
    try:
        return CredentialsProvider(environ, request)
    except AwsError as error:
        raise ConfigError(error.variable or HTTP_AUTH_TYPE, error.message) from None


def fetch(
    environ: Mapping[str, str],
    sources: Mapping[str, SecretSource],
    credentials: CredentialsProvider,
    *,
    function_name: str = "",
    request: Request | None = None,
) -> dict[str, str]:
    """Each source's value, by setting; the first failure raises ``SecretUnavailable``."""
    from ..aws import sources as aws_sources
    from ..aws.services import AwsClient

    requester = None
    if request is None:
        from ..http.request import HttpRequester

        request = requester = HttpRequester(environ)
    name = environ.get(AWS_LAMBDA_FUNCTION_NAME, "") or function_name
    client = AwsClient(environ, request, credentials.get)
    values = {}
    try:
        for setting, source in sources.items():
            started = time.monotonic()
            try:
                values[setting] = aws_sources.resolve(source, client, function_name=name)
            except AwsError as error:
                raise SecretUnavailable(error, setting) from None
            except ConfigError as exc:  # the proxy variables, read for the first time here
                raise ConfigError(exc.variable, str(exc)[len(exc.variable) + 2 :]) from None
            if log.enabled(log.DEBUG):
                took = (time.monotonic() - started) * 1000
                log.debug(f"read {setting} from {source.variable} in {took:.1f} ms")
    finally:
        if requester is not None:
            requester.close()
    return values


def with_values(
    environ: Mapping[str, str], sources: Mapping[str, SecretSource], values: Mapping[str, str]
) -> dict[str, str]:
    """``environ`` with each fetched value as its setting, and the source variables gone."""
    from ..aws.sources import SECRET_KEY

    final = dict(environ)
    for setting, source in sources.items():
        final.pop(source.variable, None)
        final.pop(setting + SECRET_KEY, None)
        final[setting] = values[setting]
    return final


def hidden(endpoint: Endpoint) -> Endpoint:
    """``endpoint`` shown as its scheme and host only (its path and query may be the secret)."""
    return endpoint.replace(display=f"{endpoint.scheme}://{endpoint.host_header}/***")


def _load_fetched(
    environ: Mapping[str, str], sources: Mapping[str, SecretSource], values: Mapping[str, str]
) -> Settings:
    try:
        return load(environ)
    except ConfigError as exc:
        raise _from_source(exc, sources, values) from None


def _from_source(
    exc: ConfigError, sources: Mapping[str, SecretSource], values: Mapping[str, str]
) -> ConfigError:
    """``exc`` about a fetched value: what it quotes replaced by ``***``, its source named."""
    message = str(exc)[len(exc.variable) + 2 :]
    source = sources.get(exc.variable)
    # Shorter values would match inside words; they are never quoted unmarked anyway.
    fetched = sorted((v for v in values.values() if len(v) >= 3), key=len, reverse=True)
    if source is None and not any(value in message for value in fetched):
        return exc
    import re

    for value in fetched:
        message = message.replace(value, "***")
    message = re.sub(r"'[^']*'|\"[^\"]*\"", "'***'", message)  # whatever a repr quoted
    if source is not None:
        message += f" (the value read from {source.variable})"
    return ConfigError(exc.variable, message)
