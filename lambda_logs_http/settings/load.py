"""``load(environ)``: the environment in, a frozen ``Settings`` out — the only place it is read.

Every variable is parsed strictly and validated here, so a value the extension could not use
fails at start with one line naming the variable and the fix (``ConfigError``), instead of
failing later on every batch. Values Lambda itself limits (the Telemetry buffering) are clamped
with a warning instead, since the intent is clear.

This runs before the extension registers: it imports nothing heavy, because every millisecond
here is added to the function's cold start. What costs more waits until after the register
call (``settings.secrets.complete``): the settings that come from AWS (before register,
``names_secret_sources`` only tells that some do, without an import; then the whole environment
is loaded after), ``HTTP_HEADERS``, which needs ``json`` (``Auth.headers`` stays empty here), and
inferring ``aws_sigv4``'s service from the host (``infer_sigv4_service``).
"""

from __future__ import annotations

import os

from ..http import auth
from ..lambda_api.events import STREAMS
from . import parse
from .endpoint import parse_endpoint
from .model import (
    COMPRESSIONS,
    FLUSH_STRATEGIES,
    PERIODIC,
    Auth,
    Batching,
    Delivery,
    Endpoint,
    LambdaEnv,
    Settings,
    Telemetry,
)
from .names import (
    AWS_DEFAULT_REGION,
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    AWS_LAMBDA_FUNCTION_NAME,
    AWS_LAMBDA_FUNCTION_VERSION,
    AWS_LAMBDA_INITIALIZATION_TYPE,
    AWS_REGION,
    HTTP_AUTH_CREDENTIALS,
    HTTP_AUTH_HEADER_NAME,
    HTTP_AUTH_TYPE,
    HTTP_AUTH_USERNAME,
    HTTP_AWS_SIGV4_REGION,
    HTTP_AWS_SIGV4_SERVICE,
    HTTP_BATCH_MAX_AGE_MS,
    HTTP_CA_BUNDLE,
    HTTP_COMPRESSION,
    HTTP_COMPRESSION_LEVEL,
    HTTP_DEADLINE_MARGIN_MS,
    HTTP_ENDPOINT,
    HTTP_EXTENSION_LOG_LEVEL,
    HTTP_FLUSH_BUDGET_MS,
    HTTP_FLUSH_STRATEGY,
    HTTP_LISTENER_PORT,
    HTTP_MAX_BATCH_BYTES,
    HTTP_MAX_BATCH_RECORDS,
    HTTP_MAX_BUFFER_BYTES,
    HTTP_MAX_SPILL_BYTES,
    HTTP_SPILL_DIR,
    HTTP_STRICT_CONFIG,
    HTTP_TELEMETRY_MAX_BYTES,
    HTTP_TELEMETRY_MAX_ITEMS,
    HTTP_TELEMETRY_TIMEOUT_MS,
    HTTP_TELEMETRY_TYPES,
    HTTP_TEST_MODE,
    HTTP_TIMEOUT_SECONDS,
    HTTP_TLS_VERIFY,
    MANAGED_INSTANCES,
    SECRET_SETTINGS,
    SECRET_SUFFIXES,
)
from .parse import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..aws.sources import SecretSource

# Lambda's own limits for the Telemetry API buffering (telemetry-api reference).
TELEMETRY_MAX_ITEMS_RANGE = (1_000, 10_000)
TELEMETRY_MAX_BYTES_RANGE = (262_144, 1_048_576)
TELEMETRY_TIMEOUT_MS_RANGE = (25, 30_000)
TELEMETRY_TYPES = STREAMS
LOG_LEVELS = ("debug", "info", "warning", "warn", "error")
DEFAULT_SPILL_DIR = "/tmp/lambda-logs-http"
LAMBDA_PORT = 9001  # the Runtime and Extensions APIs' own port
# Which variable holds each value an auth strategy may take (see http.auth).
AUTH_FIELD_VARIABLES = {
    "username": HTTP_AUTH_USERNAME,
    "credentials": HTTP_AUTH_CREDENTIALS,
    "header_name": HTTP_AUTH_HEADER_NAME,
    "aws_service": HTTP_AWS_SIGV4_SERVICE,
    "aws_region": HTTP_AWS_SIGV4_REGION,
}
# A SigV4 service or region name: lower-case letters, digits and dashes.
_AWS_NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


def is_managed_instances(environ: Mapping[str, str]) -> bool:
    """Lambda Managed Instances: many concurrent invocations, no INVOKE events, no freeze."""
    return environ.get(AWS_LAMBDA_INITIALIZATION_TYPE, "") == MANAGED_INSTANCES


def strict_requested(environ: Mapping[str, str]) -> bool:
    """``HTTP_STRICT_CONFIG``, read on its own so a broken config can still be reported strictly."""
    return parse.text(environ, HTTP_STRICT_CONFIG).lower() in parse.TRUE


def names_secret_sources(environ: Mapping[str, str]) -> bool:
    """Whether a variable names an AWS source for a setting (``<VAR>_SECRET_ARN``...).

    Before register, instead of ``secret_sources``: a dozen lookups, and no import.
    """
    return any(s + suffix in environ for s in SECRET_SETTINGS for suffix in SECRET_SUFFIXES)


def secret_sources(environ: Mapping[str, str]) -> dict[str, SecretSource]:
    """The settings whose value comes from AWS (``aws.sources``), by setting; {} for none.

    Pure: nothing is fetched (``settings.secrets`` does it). A setting given twice (plainly and
    by a source, or by two sources) or half a source is a ``ConfigError``.
    """
    if not names_secret_sources(environ):
        return {}
    from ..aws import sources

    try:
        return sources.find_sources(environ, SECRET_SETTINGS)
    except sources.SourceConfigError as exc:
        raise ConfigError(exc.variable, str(exc)) from None


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """Parse and validate the environment (``os.environ`` by default) into ``Settings``."""
    env = os.environ if environ is None else environ
    warnings: list[str] = []
    batching = _batching(env)
    return Settings(
        endpoint=_endpoint(env),
        auth=_auth(env),
        batching=batching,
        telemetry=_telemetry(env, warnings),
        delivery=_delivery(env, batching),
        lambda_env=_lambda_env(env),
        log_level=_log_level(env),
        strict=strict_requested(env),
        warnings=tuple(warnings),
    )


def _endpoint(env: Mapping[str, str]) -> Endpoint:
    ca_bundle = parse.text(env, HTTP_CA_BUNDLE)
    if ca_bundle and not os.path.isfile(ca_bundle):
        raise ConfigError(HTTP_CA_BUNDLE, f"no such file {ca_bundle!r}")
    return parse_endpoint(
        env.get(HTTP_ENDPOINT, ""),
        timeout_seconds=parse.number(env, HTTP_TIMEOUT_SECONDS, 30.0, minimum=0.001),
        tls_verify=parse.boolean(env, HTTP_TLS_VERIFY, True),
        ca_bundle=ca_bundle,
        proxy_env=env,
    )


def _auth(env: Mapping[str, str]) -> Auth:
    kind = parse.text(env, HTTP_AUTH_TYPE).lower() or "none"
    strategy = auth.STRATEGIES.get(kind)
    if strategy is None:
        raise ConfigError(
            HTTP_AUTH_TYPE, f"unknown auth type {kind!r}; use one of {', '.join(auth.STRATEGIES)}"
        )
    values = {
        "username": env.get(HTTP_AUTH_USERNAME, ""),
        "credentials": env.get(HTTP_AUTH_CREDENTIALS, ""),
        "header_name": parse.text(env, HTTP_AUTH_HEADER_NAME),
        "aws_service": "",
        "aws_region": "",
    }
    if kind == auth.AWS_SIGV4:
        values["aws_service"], values["aws_region"] = _sigv4_scope(env)
    for field in strategy.required:
        if not values[field]:
            raise ConfigError(
                AUTH_FIELD_VARIABLES[field], f"is required when {HTTP_AUTH_TYPE}={kind}"
            )
    for field, value in values.items():
        if "\r" in value or "\n" in value:
            raise ConfigError(AUTH_FIELD_VARIABLES[field], "must not contain line breaks")
    header_name = values["header_name"]
    if header_name and not parse.is_token(header_name):
        raise ConfigError(HTTP_AUTH_HEADER_NAME, f"{header_name!r} is not a valid header name")
    return Auth(kind=kind, headers=(), **values)


def infer_sigv4_service(settings: Settings) -> Settings:
    """``settings`` with ``aws_sigv4``'s service inferred from the endpoint's host when
    ``HTTP_AWS_SIGV4_SERVICE`` left it empty; ``ConfigError`` when the host does not tell.

    Called after register (``settings.secrets``): ``aws.sigv4`` is not imported before it.
    """
    auth_section = settings.auth
    if auth_section.kind != auth.AWS_SIGV4 or auth_section.aws_service:
        return settings
    from ..aws.sigv4 import infer_service

    host = settings.endpoint.host
    service = infer_service(host)
    if not service:
        raise ConfigError(
            HTTP_AWS_SIGV4_SERVICE,
            f"cannot be inferred from the host {host}: set it to the service the receiver "
            "checks signatures for (execute-api for API Gateway, lambda for a function URL, "
            "es or aoss for OpenSearch, aps for Managed Prometheus)",
        )
    return settings.replace(auth=auth_section.replace(aws_service=service))


def _sigv4_scope(env: Mapping[str, str]) -> tuple[str, str]:
    """``aws_sigv4``'s service ("" when to be inferred, ``infer_sigv4_service``) and region."""
    service = parse.text(env, HTTP_AWS_SIGV4_SERVICE).lower()
    region = (
        parse.text(env, HTTP_AWS_SIGV4_REGION).lower()
        or parse.text(env, AWS_REGION)
        or parse.text(env, AWS_DEFAULT_REGION)
    )
    if not region:
        raise ConfigError(
            HTTP_AWS_SIGV4_REGION,
            f"is not set, nor is {AWS_REGION}: set it to the receiver's region, e.g. eu-west-1",
        )
    for variable, value in ((HTTP_AWS_SIGV4_SERVICE, service), (HTTP_AWS_SIGV4_REGION, region)):
        if value and not set(value) <= _AWS_NAME_CHARACTERS:
            raise ConfigError(
                variable, f"{value!r} is not an AWS name (lower-case letters, digits, dashes)"
            )
    return service, region


def _batching(env: Mapping[str, str]) -> Batching:
    compression_level = parse.integer(env, HTTP_COMPRESSION_LEVEL, 1, minimum=1)
    if compression_level > 9:
        raise ConfigError(HTTP_COMPRESSION_LEVEL, f"must be 1..9, got {compression_level}")
    return Batching(
        max_bytes=parse.integer(env, HTTP_MAX_BATCH_BYTES, 1_000_000, minimum=1_024),
        max_records=parse.integer(env, HTTP_MAX_BATCH_RECORDS, 10_000, minimum=1),
        max_age_ms=parse.integer(env, HTTP_BATCH_MAX_AGE_MS, 1_000, minimum=0),
        compression=parse.choice(env, HTTP_COMPRESSION, COMPRESSIONS),
        compression_level=compression_level,
    )


def _telemetry(env: Mapping[str, str], warnings: list[str]) -> Telemetry:
    return Telemetry(
        types=_telemetry_types(env),
        max_items=parse.clamped(
            env, HTTP_TELEMETRY_MAX_ITEMS, 1_000, TELEMETRY_MAX_ITEMS_RANGE, warnings
        ),
        max_bytes=parse.clamped(
            env, HTTP_TELEMETRY_MAX_BYTES, 262_144, TELEMETRY_MAX_BYTES_RANGE, warnings
        ),
        timeout_ms=parse.clamped(
            env, HTTP_TELEMETRY_TIMEOUT_MS, 25, TELEMETRY_TIMEOUT_MS_RANGE, warnings
        ),
        listener_port=_listener_port(env),
    )


def _delivery(env: Mapping[str, str], batching: Batching) -> Delivery:
    flush_strategy = parse.choice(env, HTTP_FLUSH_STRATEGY, FLUSH_STRATEGIES)
    if is_managed_instances(env):
        flush_strategy = PERIODIC  # no INVOKE events to hold, and no freeze to beat
    return Delivery(
        flush_strategy=flush_strategy,
        flush_budget_ms=parse.integer(env, HTTP_FLUSH_BUDGET_MS, 500, minimum=0),
        deadline_margin_ms=parse.integer(env, HTTP_DEADLINE_MARGIN_MS, 100, minimum=0),
        max_buffer_bytes=parse.integer(
            env, HTTP_MAX_BUFFER_BYTES, 16 << 20, minimum=batching.max_bytes
        ),
        spill_dir=parse.text(env, HTTP_SPILL_DIR) or DEFAULT_SPILL_DIR,
        max_spill_bytes=parse.integer(env, HTTP_MAX_SPILL_BYTES, 64 << 20, minimum=0),
        test_mode=parse.boolean(env, HTTP_TEST_MODE, False),
    )


def _lambda_env(env: Mapping[str, str]) -> LambdaEnv:
    memory = parse.text(env, AWS_LAMBDA_FUNCTION_MEMORY_SIZE)
    return LambdaEnv(
        function_name=env.get(AWS_LAMBDA_FUNCTION_NAME, ""),
        function_version=env.get(AWS_LAMBDA_FUNCTION_VERSION, ""),
        function_memory_size=int(memory) if memory.isdigit() else None,
        region=env.get(AWS_REGION, "") or env.get(AWS_DEFAULT_REGION, ""),
        managed_instances=is_managed_instances(env),
    )


def _log_level(env: Mapping[str, str]) -> str:
    level = parse.text(env, HTTP_EXTENSION_LOG_LEVEL).lower() or "info"
    if level not in LOG_LEVELS:
        raise ConfigError(HTTP_EXTENSION_LOG_LEVEL, "use one of debug, info, warning, error")
    return level


def _telemetry_types(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = parse.text(env, HTTP_TELEMETRY_TYPES)
    if not raw:
        return TELEMETRY_TYPES
    types = tuple(dict.fromkeys(t.strip().lower() for t in raw.split(",") if t.strip()))
    unknown = [t for t in types if t not in TELEMETRY_TYPES]
    if unknown or not types:
        raise ConfigError(
            HTTP_TELEMETRY_TYPES, f"use a comma-separated subset of {','.join(TELEMETRY_TYPES)}"
        )
    return types


def _listener_port(env: Mapping[str, str]) -> int:
    """The listener's port; 0 lets the system pick a free one (the subscription names it)."""
    port = parse.integer(env, HTTP_LISTENER_PORT, 4243, minimum=0)
    if port > 65535 or port == LAMBDA_PORT:
        raise ConfigError(
            HTTP_LISTENER_PORT, f"must be 0..65535 and not {LAMBDA_PORT} (Lambda's own port)"
        )
    return port
