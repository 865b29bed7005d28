"""``load(environ)``: the environment in, a frozen ``Settings`` out — the only place it is read.

Every variable is parsed strictly and validated here, so a value the extension could not use
fails at start with one line naming the variable and the fix (``ConfigError``), instead of
failing later on every batch. Values Lambda itself limits (the Telemetry buffering) are clamped
with a warning instead, since the intent is clear.

Every number has a range (``RANGES``; the README's configuration table says why each bound is
where it is), so that no setting can make a send overflow or a wait never end. Every credential
is handed to ``log.add_secrets`` first of all, before anything is validated, so that no line
the extension prints can show one — not even the error that refuses it.

This runs before the extension registers: it imports nothing heavy, because every millisecond
here is added to the function's cold start. What costs more waits until after the register
call (``settings.secrets.complete``): the settings that come from AWS (before register,
``names_secret_sources`` only tells that some do, without an import; then the whole environment
is loaded after), ``HTTP_HEADERS``, which needs ``json`` (``Auth.headers`` stays empty here), and
inferring ``aws_sigv4``'s service from the host (``infer_sigv4_service``).
"""

from __future__ import annotations

import os

from .. import log
from ..http import auth
from ..lambda_api.events import STREAMS
from . import parse
from .endpoint import parse_endpoint
from .model import (
    COMPRESSIONS,
    FLUSH_STRATEGIES,
    FORMATS,
    LEVELS,
    PERIODIC,
    Auth,
    Batching,
    Delivery,
    Endpoint,
    LambdaEnv,
    Records,
    Settings,
    Telemetry,
)
from .names import (
    AWS_DEFAULT_REGION,
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    AWS_LAMBDA_FUNCTION_NAME,
    AWS_LAMBDA_FUNCTION_VERSION,
    AWS_LAMBDA_INITIALIZATION_TYPE,
    AWS_LAMBDA_LOG_LEVEL,
    AWS_LAMBDA_LOG_STREAM_NAME,
    AWS_REGION,
    AWS_SECRET_ACCESS_KEY,
    AWS_SESSION_TOKEN,
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
    HTTP_EXCLUDE_PATTERN,
    HTTP_EXTENSION_LOG_LEVEL,
    HTTP_EXTRA_FIELDS,
    HTTP_FLUSH_BUDGET_MS,
    HTTP_FLUSH_STRATEGY,
    HTTP_FORMAT,
    HTTP_INCLUDE_PATTERN,
    HTTP_LISTENER_PORT,
    HTTP_MAX_BATCH_BYTES,
    HTTP_MAX_BATCH_RECORDS,
    HTTP_MAX_BUFFER_BYTES,
    HTTP_MAX_SPILL_BYTES,
    HTTP_MIN_LEVEL,
    HTTP_PROXY,
    HTTP_REDACT,
    HTTP_REDACT_PATTERNS,
    HTTP_SPILL_DIR,
    HTTP_STRICT_CONFIG,
    HTTP_TELEMETRY_MAX_BYTES,
    HTTP_TELEMETRY_MAX_ITEMS,
    HTTP_TELEMETRY_TIMEOUT_MS,
    HTTP_TELEMETRY_TYPES,
    HTTP_TEST_MODE,
    HTTP_TIMEOUT_SECONDS,
    HTTP_TLS_VERIFY,
    HTTPS_PROXY,
    MANAGED_INSTANCES,
    OTEL_SERVICE_NAME,
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
# One send may take this long, all of it (connect, TLS, request, answer): a healthy receiver
# answers a 1 MB batch in well under a second even across regions; past 10 s a new connection
# is likelier to help than more waiting (a dead NAT mapping, a receiver that hung). It holds
# nothing up meanwhile: pushes keep being taken in, and invocations are released at the flush
# budget whatever a send is doing.
DEFAULT_TIMEOUT_SECONDS = 10.0
LONGEST_INVOCATION_MS = 900_000  # Lambda's function timeout is at most 15 minutes
LARGEST_FUNCTION_BYTES = 10_240 << 20  # Lambda's largest memory size, and largest /tmp
MAX_BATCH_BYTES = 16 << 20
# The smallest entry is about 190 bytes (its context fields): more records than this can never
# fit in the largest batch.
MAX_BATCH_RECORDS = 100_000
# (minimum, maximum) of every number a user sets; HTTP_MAX_BUFFER_BYTES is also at least
# HTTP_MAX_BATCH_BYTES.
RANGES: dict[str, tuple[float, float]] = {
    HTTP_TIMEOUT_SECONDS: (0.001, LONGEST_INVOCATION_MS // 1000),
    HTTP_MAX_BATCH_BYTES: (1_024, MAX_BATCH_BYTES),
    HTTP_MAX_BATCH_RECORDS: (1, MAX_BATCH_RECORDS),
    HTTP_BATCH_MAX_AGE_MS: (0, LONGEST_INVOCATION_MS),
    HTTP_COMPRESSION_LEVEL: (1, 9),
    HTTP_FLUSH_BUDGET_MS: (0, LONGEST_INVOCATION_MS),
    HTTP_DEADLINE_MARGIN_MS: (0, LONGEST_INVOCATION_MS),
    HTTP_MAX_BUFFER_BYTES: (1_024, LARGEST_FUNCTION_BYTES),
    HTTP_MAX_SPILL_BYTES: (0, LARGEST_FUNCTION_BYTES),
    HTTP_LISTENER_PORT: (0, 65_535),
}
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
# HTTP_MIN_LEVEL's spellings beyond LEVELS (Python's logging names).
LEVEL_ALIASES = {"WARNING": "WARN", "CRITICAL": "FATAL"}
# The longest text of each setting that records.options compiles or parses: a regular
# expression longer than this is a program, not a filter; HTTP_EXTRA_FIELDS is repeated in
# every entry (records.options bounds its fields further).
MAX_PATTERN_CHARS = 4_096
MAX_REDACT_PATTERNS_CHARS = 16_384
MAX_EXTRA_FIELDS_CHARS = 4_096
# A log stream name is at most 512 characters in CloudWatch Logs.
MAX_LOG_STREAM_CHARS = 512


def is_managed_instances(environ: Mapping[str, str]) -> bool:
    """Lambda Managed Instances: many concurrent invocations, no INVOKE events, no freeze."""
    return environ.get(AWS_LAMBDA_INITIALIZATION_TYPE, "") == MANAGED_INSTANCES


def strict_requested(environ: Mapping[str, str]) -> bool:
    """``HTTP_STRICT_CONFIG``, read on its own so a broken config can still be reported strictly.

    Never raises: a value that is not a boolean is itself the configuration error ``load``
    reports (first, before any other), and meanwhile counts as the default, false — whether to
    fail the function's init is exactly what such a value does not say.
    """
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
    log.add_secrets(_secrets(env))
    strict = parse.boolean(env, HTTP_STRICT_CONFIG, False)
    warnings: list[str] = []
    batching = _batching(env)
    return Settings(
        endpoint=_endpoint(env),
        auth=_auth(env),
        batching=batching,
        telemetry=_telemetry(env, warnings),
        delivery=_delivery(env, batching),
        lambda_env=_lambda_env(env),
        records=_records(env, warnings),
        log_level=_log_level(env),
        strict=strict,
        warnings=tuple(warnings),
    )


def _secrets(env: Mapping[str, str]) -> list[str]:
    """Every credential in ``env``, in the forms the extension itself may send or show."""
    values = parse.secret_values(env, (HTTP_AUTH_CREDENTIALS,))
    credentials = env.get(HTTP_AUTH_CREDENTIALS, "")
    if credentials:
        values.append(f"{env.get(HTTP_AUTH_USERNAME, '')}:{credentials}")  # what Basic encodes
    values.extend(v for v in parse.query_values(env.get(HTTP_ENDPOINT, "")) if len(v) >= 8)
    for name in (HTTPS_PROXY, HTTP_PROXY):
        for spelling in (name, name.lower()):
            values.extend(parse.userinfo_values(env.get(spelling, "")))
    # The role's keys, which aws_sigv4 and the secret sources sign with.
    values.extend(v for v in (env.get(AWS_SECRET_ACCESS_KEY), env.get(AWS_SESSION_TOKEN)) if v)
    return values


def _endpoint(env: Mapping[str, str]) -> Endpoint:
    return parse_endpoint(
        env.get(HTTP_ENDPOINT, ""),
        timeout_seconds=parse.number(
            env, HTTP_TIMEOUT_SECONDS, DEFAULT_TIMEOUT_SECONDS, **_range(HTTP_TIMEOUT_SECONDS)
        ),
        tls_verify=parse.boolean(env, HTTP_TLS_VERIFY, True),
        ca_bundle=parse.ca_bundle(env, HTTP_CA_BUNDLE),
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
        if parse.has_control_characters(value):
            raise ConfigError(
                AUTH_FIELD_VARIABLES[field],
                "must not contain control characters (line breaks, NUL)",
            )
        if not parse.is_utf8(value):  # bytes that were not UTF-8 in the environment
            raise ConfigError(AUTH_FIELD_VARIABLES[field], "must be UTF-8 text")
    for field in strategy.in_header:
        parse.check_header_value(AUTH_FIELD_VARIABLES[field], values[field])
    for field, characters in strategy.forbidden.items():
        if any(c in values[field] for c in characters):
            raise ConfigError(
                AUTH_FIELD_VARIABLES[field],
                f"must not contain {characters!r} with {HTTP_AUTH_TYPE}={kind}",
            )
    if values["header_name"]:
        parse.check_header_name(HTTP_AUTH_HEADER_NAME, values["header_name"])
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


def _range(name: str) -> dict[str, float]:
    """``minimum`` and ``maximum`` of ``name``, as the parse functions take them."""
    minimum, maximum = RANGES[name]
    return {"minimum": minimum, "maximum": maximum}


def _integer(env: Mapping[str, str], name: str, default: int, minimum: int | None = None) -> int:
    low, high = RANGES[name]
    return parse.integer(
        env, name, default, minimum=int(low if minimum is None else minimum), maximum=int(high)
    )


def _batching(env: Mapping[str, str]) -> Batching:
    return Batching(
        max_bytes=_integer(env, HTTP_MAX_BATCH_BYTES, 1_000_000),
        max_records=_integer(env, HTTP_MAX_BATCH_RECORDS, 10_000),
        max_age_ms=_integer(env, HTTP_BATCH_MAX_AGE_MS, 1_000),
        compression=parse.choice(env, HTTP_COMPRESSION, COMPRESSIONS),
        compression_level=_integer(env, HTTP_COMPRESSION_LEVEL, 1),
        output_format=parse.choice(env, HTTP_FORMAT, FORMATS),
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
        flush_budget_ms=_integer(env, HTTP_FLUSH_BUDGET_MS, 500),
        deadline_margin_ms=_integer(env, HTTP_DEADLINE_MARGIN_MS, 100),
        max_buffer_bytes=_integer(env, HTTP_MAX_BUFFER_BYTES, 16 << 20, batching.max_bytes),
        spill_dir=_spill_dir(env),
        max_spill_bytes=_integer(env, HTTP_MAX_SPILL_BYTES, 64 << 20),
        test_mode=parse.boolean(env, HTTP_TEST_MODE, False),
    )


def _lambda_env(env: Mapping[str, str]) -> LambdaEnv:
    memory = parse.text(env, AWS_LAMBDA_FUNCTION_MEMORY_SIZE)
    return LambdaEnv(
        function_name=env.get(AWS_LAMBDA_FUNCTION_NAME, ""),
        function_version=env.get(AWS_LAMBDA_FUNCTION_VERSION, ""),
        function_memory_size=int(memory) if memory.isascii() and memory.isdigit() else None,
        region=env.get(AWS_REGION, "") or env.get(AWS_DEFAULT_REGION, ""),
        managed_instances=is_managed_instances(env),
        initialization_type=parse.text(env, AWS_LAMBDA_INITIALIZATION_TYPE),
        log_stream_name=parse.text(env, AWS_LAMBDA_LOG_STREAM_NAME)[:MAX_LOG_STREAM_CHARS],
    )


def _records(env: Mapping[str, str], warnings: list[str]) -> Records:
    """The filters, redaction and added fields: checked here as far as no import is needed."""
    min_level, variable = _min_level(env, warnings)
    return Records(
        min_level=min_level,
        min_level_variable=variable,
        include_pattern=_bounded(env, HTTP_INCLUDE_PATTERN, MAX_PATTERN_CHARS),
        exclude_pattern=_bounded(env, HTTP_EXCLUDE_PATTERN, MAX_PATTERN_CHARS),
        redact=parse.boolean(env, HTTP_REDACT, True),
        redact_patterns=_bounded(env, HTTP_REDACT_PATTERNS, MAX_REDACT_PATTERNS_CHARS),
        extra_fields=_bounded(env, HTTP_EXTRA_FIELDS, MAX_EXTRA_FIELDS_CHARS),
        service_name=parse.text(env, OTEL_SERVICE_NAME),
    )


def level_name(value: str) -> str | None:
    """One of ``LEVELS`` for ``value`` (any case, ``WARNING`` and ``CRITICAL`` too), or None."""
    name = value.strip().upper()
    name = LEVEL_ALIASES.get(name, name)
    return name if name in LEVELS else None


def _min_level(env: Mapping[str, str], warnings: list[str]) -> tuple[str, str]:
    """``(level, variable)``: ``HTTP_MIN_LEVEL``, else Lambda's ``AWS_LAMBDA_LOG_LEVEL`` (the
    function's own log level, set with Lambda's advanced logging controls), else ``("", "")``:
    every level is forwarded."""
    raw = parse.text(env, HTTP_MIN_LEVEL)
    if raw:
        level = level_name(raw)
        if level is None:
            raise ConfigError(
                HTTP_MIN_LEVEL, f"use one of {', '.join(LEVELS)}, got {parse.shown(raw)}"
            )
        return level, HTTP_MIN_LEVEL
    raw = parse.text(env, AWS_LAMBDA_LOG_LEVEL)
    if raw:
        level = level_name(raw)
        if level is not None:
            return level, AWS_LAMBDA_LOG_LEVEL
        # Lambda's own variable: not ours to refuse, but not a level we can filter by either.
        warnings.append(
            f"{AWS_LAMBDA_LOG_LEVEL}={parse.shown(raw)} is not a log level: every level is "
            f"forwarded (set {HTTP_MIN_LEVEL} to filter)"
        )
    return "", ""


def _bounded(env: Mapping[str, str], name: str, max_chars: int) -> str:
    """The variable's text as it is ("" when unset or only white space), at most ``max_chars``
    long. Not stripped: a regular expression's spaces are part of it."""
    value = env.get(name, "")
    if not value.strip():
        return ""
    if len(value) > max_chars:
        raise ConfigError(name, f"is {len(value):,} characters long; at most {max_chars:,}")
    return value


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


def _spill_dir(env: Mapping[str, str]) -> str:
    directory = parse.text(env, HTTP_SPILL_DIR) or DEFAULT_SPILL_DIR
    if not directory.startswith("/"):
        raise ConfigError(
            HTTP_SPILL_DIR,
            f"must be an absolute path (under /tmp on Lambda), got {parse.shown(directory)}",
        )
    return directory


def _listener_port(env: Mapping[str, str]) -> int:
    """The listener's port; 0 lets the system pick a free one (the subscription names it)."""
    port = parse.integer(env, HTTP_LISTENER_PORT, 4243, **_range(HTTP_LISTENER_PORT))
    if port == LAMBDA_PORT:
        raise ConfigError(
            HTTP_LISTENER_PORT, f"must be 0..65535 and not {LAMBDA_PORT} (Lambda's own port)"
        )
    return port
