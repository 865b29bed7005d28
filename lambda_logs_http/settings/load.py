"""Configuration: the environment is read here and nowhere else.

``load(environ)`` turns the process environment into a frozen ``Config`` or raises ``ConfigError``
naming the variable and the fix. Parsing is strict (``HTTP_TIMEOUT_SECONDS=3O`` is an error, not
30) because a log shipper that silently guesses is worse than one that says what is wrong. Values
that Lambda itself limits (the Telemetry buffering) are clamped with a warning instead, since the
intent is clear and the function should not lose its logs over an off-by-one.

This module runs before the extension registers, so it imports nothing heavy: every millisecond
here is added to the function's cold start.
"""

from __future__ import annotations

import os

from ..http import auth

TYPE_CHECKING = False  # typing costs milliseconds to import on the cold-start path
if TYPE_CHECKING:
    from collections.abc import Mapping

# The seed contract: these names are public and must not change.
HTTP_ENDPOINT = "HTTP_ENDPOINT"
HTTP_AUTH_TYPE = "HTTP_AUTH_TYPE"
HTTP_AUTH_USERNAME = "HTTP_AUTH_USERNAME"
HTTP_AUTH_CREDENTIALS = "HTTP_AUTH_CREDENTIALS"
HTTP_AUTH_HEADER_NAME = "HTTP_AUTH_HEADER_NAME"
HTTP_TIMEOUT_SECONDS = "HTTP_TIMEOUT_SECONDS"
HTTP_TEST_MODE = "HTTP_TEST_MODE"
# Added since.
HTTP_TLS_VERIFY = "HTTP_TLS_VERIFY"
HTTP_CA_BUNDLE = "HTTP_CA_BUNDLE"
HTTP_MAX_BATCH_BYTES = "HTTP_MAX_BATCH_BYTES"
HTTP_MAX_BATCH_RECORDS = "HTTP_MAX_BATCH_RECORDS"
HTTP_BATCH_MAX_AGE_MS = "HTTP_BATCH_MAX_AGE_MS"
HTTP_MAX_BUFFER_BYTES = "HTTP_MAX_BUFFER_BYTES"
HTTP_FLUSH_BUDGET_MS = "HTTP_FLUSH_BUDGET_MS"
HTTP_DEADLINE_MARGIN_MS = "HTTP_DEADLINE_MARGIN_MS"
HTTP_LISTENER_PORT = "HTTP_LISTENER_PORT"
HTTP_TELEMETRY_TYPES = "HTTP_TELEMETRY_TYPES"
HTTP_TELEMETRY_MAX_ITEMS = "HTTP_TELEMETRY_MAX_ITEMS"
HTTP_TELEMETRY_MAX_BYTES = "HTTP_TELEMETRY_MAX_BYTES"
HTTP_TELEMETRY_TIMEOUT_MS = "HTTP_TELEMETRY_TIMEOUT_MS"
HTTP_EXTENSION_LOG_LEVEL = "HTTP_EXTENSION_LOG_LEVEL"
HTTP_STRICT_CONFIG = "HTTP_STRICT_CONFIG"
HTTP_COMPRESSION = "HTTP_COMPRESSION"
HTTP_COMPRESSION_LEVEL = "HTTP_COMPRESSION_LEVEL"
HTTP_FLUSH_STRATEGY = "HTTP_FLUSH_STRATEGY"
HTTP_SPILL_DIR = "HTTP_SPILL_DIR"
HTTP_MAX_SPILL_BYTES = "HTTP_MAX_SPILL_BYTES"

# Set by Lambda.
AWS_LAMBDA_RUNTIME_API = "AWS_LAMBDA_RUNTIME_API"
AWS_LAMBDA_FUNCTION_NAME = "AWS_LAMBDA_FUNCTION_NAME"
AWS_LAMBDA_FUNCTION_VERSION = "AWS_LAMBDA_FUNCTION_VERSION"
AWS_LAMBDA_FUNCTION_MEMORY_SIZE = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"
AWS_REGION = "AWS_REGION"
AWS_DEFAULT_REGION = "AWS_DEFAULT_REGION"
AWS_LAMBDA_INITIALIZATION_TYPE = "AWS_LAMBDA_INITIALIZATION_TYPE"
MANAGED_INSTANCES = "lambda-managed-instances"

# Lambda's own limits for the Telemetry API buffering (telemetry-api reference).
TELEMETRY_MAX_ITEMS_RANGE = (1_000, 10_000)
TELEMETRY_MAX_BYTES_RANGE = (262_144, 1_048_576)
TELEMETRY_TIMEOUT_MS_RANGE = (25, 30_000)
TELEMETRY_TYPES = ("platform", "function", "extension")
COMPRESSIONS = ("none", "gzip")
# end: deliver each invocation's logs before releasing it. periodic: release at once, send in the
# background every HTTP_BATCH_MAX_AGE_MS (Managed Instances always work this way).
FLUSH_STRATEGIES = ("end", "periodic")
DEFAULT_SPILL_DIR = "/tmp/lambda-logs-http"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(ValueError):
    """A setting that cannot be used; ``variable`` names it and the message says the fix."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable


class Config:
    """Every setting the extension uses, parsed and validated once, then read-only.

    Attributes are documented in the README's configuration table; durations are kept in the
    unit their variable names (``_ms``/``_seconds``) so a reader never converts in their head.
    """

    __slots__ = (
        "endpoint", "auth_type", "auth_username", "auth_credentials", "auth_header_name",
        "timeout_seconds", "test_mode", "tls_verify", "ca_bundle", "max_batch_bytes",
        "max_batch_records", "batch_max_age_ms", "max_buffer_bytes", "flush_budget_ms",
        "deadline_margin_ms", "listener_port", "telemetry_types", "telemetry_max_items",
        "telemetry_max_bytes", "telemetry_timeout_ms", "log_level", "strict",
        "function_name", "function_version", "function_memory_size", "aws_region",
        "managed_instances", "warnings", "compression", "compression_level", "flush_strategy",
        "spill_dir", "max_spill_bytes",
    )  # fmt: skip

    endpoint: str
    auth_type: str
    auth_username: str
    auth_credentials: str
    auth_header_name: str
    timeout_seconds: float
    test_mode: bool
    tls_verify: bool
    ca_bundle: str
    max_batch_bytes: int
    max_batch_records: int
    batch_max_age_ms: int
    max_buffer_bytes: int
    flush_budget_ms: int
    deadline_margin_ms: int
    listener_port: int
    telemetry_types: tuple[str, ...]
    telemetry_max_items: int
    telemetry_max_bytes: int
    telemetry_timeout_ms: int
    log_level: str
    strict: bool
    function_name: str
    function_version: str
    function_memory_size: int | None
    aws_region: str
    managed_instances: bool
    warnings: tuple[str, ...]
    compression: str
    compression_level: int
    flush_strategy: str
    spill_dir: str
    max_spill_bytes: int

    def __init__(self, **values: object) -> None:
        missing = set(self.__slots__) - set(values)
        if missing:
            raise TypeError(f"Config needs {sorted(missing)}")
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Config is read-only")

    def replace(self, **changes: object) -> Config:
        """A copy with some values changed (tests, and settings derived after loading)."""
        values = {name: getattr(self, name) for name in self.__slots__}
        values.update(changes)
        return Config(**values)

    def __repr__(self) -> str:
        # Credentials never reach a log line, even through a repr in a traceback.
        shown = {n: getattr(self, n) for n in self.__slots__ if n != "auth_credentials"}
        return f"Config({shown}, auth_credentials={'***' if self.auth_credentials else ''!r})"


def is_managed_instances(environ: Mapping[str, str]) -> bool:
    """Lambda Managed Instances: many concurrent invocations, no INVOKE events, no freeze."""
    return environ.get(AWS_LAMBDA_INITIALIZATION_TYPE, "") == MANAGED_INSTANCES


def strict_requested(environ: Mapping[str, str]) -> bool:
    """``HTTP_STRICT_CONFIG``, read on its own so a broken config can still be reported strictly."""
    return environ.get(HTTP_STRICT_CONFIG, "").strip().lower() in _TRUE


def load(environ: Mapping[str, str] | None = None) -> Config:
    """Parse and validate the environment (``os.environ`` by default) into a ``Config``."""
    env = os.environ if environ is None else environ
    warnings: list[str] = []

    endpoint = _endpoint(env)
    auth_type = env.get(HTTP_AUTH_TYPE, "").strip().lower() or "none"
    strategy = auth.STRATEGIES.get(auth_type)
    if strategy is None:
        raise ConfigError(
            HTTP_AUTH_TYPE,
            f"unknown auth type {auth_type!r}; use one of {', '.join(auth.STRATEGIES)}",
        )
    auth_values = {
        HTTP_AUTH_USERNAME: env.get(HTTP_AUTH_USERNAME, ""),
        HTTP_AUTH_CREDENTIALS: env.get(HTTP_AUTH_CREDENTIALS, ""),
        HTTP_AUTH_HEADER_NAME: env.get(HTTP_AUTH_HEADER_NAME, "").strip(),
    }
    for variable in strategy.required_variables:
        if not auth_values[variable]:
            raise ConfigError(variable, f"is required when {HTTP_AUTH_TYPE}={auth_type}")
    for variable, value in auth_values.items():
        if "\r" in value or "\n" in value:
            raise ConfigError(variable, "must not contain line breaks")
    header_name = auth_values[HTTP_AUTH_HEADER_NAME] or auth.DEFAULT_API_KEY_HEADER
    if not _is_header_token(header_name):
        raise ConfigError(HTTP_AUTH_HEADER_NAME, f"{header_name!r} is not a valid header name")

    telemetry_types = _telemetry_types(env)
    log_level = env.get(HTTP_EXTENSION_LOG_LEVEL, "").strip().lower() or "info"
    if log_level not in ("debug", "info", "warning", "warn", "error"):
        raise ConfigError(HTTP_EXTENSION_LOG_LEVEL, "use one of debug, info, warning, error")

    ca_bundle = env.get(HTTP_CA_BUNDLE, "").strip()
    if ca_bundle and not os.path.isfile(ca_bundle):
        raise ConfigError(HTTP_CA_BUNDLE, f"no such file {ca_bundle!r}")

    max_batch_bytes = _int(env, HTTP_MAX_BATCH_BYTES, 1_000_000, minimum=1_024)
    compression = _choice(env, HTTP_COMPRESSION, COMPRESSIONS)
    compression_level = _int(env, HTTP_COMPRESSION_LEVEL, 1, minimum=1)
    if compression_level > 9:
        raise ConfigError(HTTP_COMPRESSION_LEVEL, f"must be 1..9, got {compression_level}")
    flush_strategy = _choice(env, HTTP_FLUSH_STRATEGY, FLUSH_STRATEGIES)
    managed_instances = is_managed_instances(env)
    if managed_instances and flush_strategy != "periodic":
        flush_strategy = "periodic"  # no INVOKE events to hold, and no freeze to beat
    return Config(
        endpoint=endpoint,
        auth_type=auth_type,
        auth_username=auth_values[HTTP_AUTH_USERNAME],
        auth_credentials=auth_values[HTTP_AUTH_CREDENTIALS],
        auth_header_name=header_name,
        timeout_seconds=_float(env, HTTP_TIMEOUT_SECONDS, 30.0, minimum=0.001),
        test_mode=_bool(env, HTTP_TEST_MODE, False),
        tls_verify=_bool(env, HTTP_TLS_VERIFY, True),
        ca_bundle=ca_bundle,
        max_batch_bytes=max_batch_bytes,
        max_batch_records=_int(env, HTTP_MAX_BATCH_RECORDS, 10_000, minimum=1),
        batch_max_age_ms=_int(env, HTTP_BATCH_MAX_AGE_MS, 1_000, minimum=0),
        max_buffer_bytes=_int(env, HTTP_MAX_BUFFER_BYTES, 16 << 20, minimum=max_batch_bytes),
        flush_budget_ms=_int(env, HTTP_FLUSH_BUDGET_MS, 500, minimum=0),
        deadline_margin_ms=_int(env, HTTP_DEADLINE_MARGIN_MS, 100, minimum=0),
        listener_port=_port(env),
        telemetry_types=telemetry_types,
        telemetry_max_items=_clamped(env, HTTP_TELEMETRY_MAX_ITEMS, 1_000,
                                     TELEMETRY_MAX_ITEMS_RANGE, warnings),
        telemetry_max_bytes=_clamped(env, HTTP_TELEMETRY_MAX_BYTES, 262_144,
                                     TELEMETRY_MAX_BYTES_RANGE, warnings),
        telemetry_timeout_ms=_clamped(env, HTTP_TELEMETRY_TIMEOUT_MS, 25,
                                      TELEMETRY_TIMEOUT_MS_RANGE, warnings),
        log_level=log_level,
        strict=strict_requested(env),
        function_name=env.get(AWS_LAMBDA_FUNCTION_NAME, ""),
        function_version=env.get(AWS_LAMBDA_FUNCTION_VERSION, ""),
        function_memory_size=_memory_size(env),
        aws_region=env.get(AWS_REGION, "") or env.get(AWS_DEFAULT_REGION, ""),
        managed_instances=managed_instances,
        warnings=tuple(warnings),
        compression=compression,
        compression_level=compression_level,
        flush_strategy=flush_strategy,
        spill_dir=env.get(HTTP_SPILL_DIR, "").strip() or DEFAULT_SPILL_DIR,
        max_spill_bytes=_int(env, HTTP_MAX_SPILL_BYTES, 64 << 20, minimum=0),
    )  # fmt: skip


def _endpoint(env: Mapping[str, str]) -> str:
    endpoint = env.get(HTTP_ENDPOINT, "").strip()
    if not endpoint:
        raise ConfigError(
            HTTP_ENDPOINT,
            "is not set; set it to the URL that receives the logs, "
            "e.g. https://logs.example.com/ingest",
        )
    scheme, sep, rest = endpoint.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        raise ConfigError(
            HTTP_ENDPOINT,
            f"must be an http:// or https:// URL, got {scheme!r}"
            if sep
            else "must be an http:// or https:// URL",
        )
    authority = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if "@" in authority:
        raise ConfigError(
            HTTP_ENDPOINT,
            "must not carry credentials; use HTTP_AUTH_TYPE=basic "
            "with HTTP_AUTH_USERNAME and HTTP_AUTH_CREDENTIALS",
        )
    host = authority.rsplit(":", 1)[0] if not authority.endswith("]") else authority
    if not host.strip("[]"):
        raise ConfigError(HTTP_ENDPOINT, "has no host name")
    if any(c.isspace() for c in endpoint):
        raise ConfigError(HTTP_ENDPOINT, "must not contain spaces")
    if ":" in authority and not authority.endswith("]"):
        port = authority.rsplit(":", 1)[1]
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(HTTP_ENDPOINT, f"has an invalid port {port!r}")
    return scheme.lower() + "://" + rest


def _telemetry_types(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = env.get(HTTP_TELEMETRY_TYPES, "").strip()
    if not raw:
        return TELEMETRY_TYPES
    types = tuple(dict.fromkeys(t.strip().lower() for t in raw.split(",") if t.strip()))
    unknown = [t for t in types if t not in TELEMETRY_TYPES]
    if unknown or not types:
        raise ConfigError(
            HTTP_TELEMETRY_TYPES, f"use a comma-separated subset of {','.join(TELEMETRY_TYPES)}"
        )
    return types


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """One of ``choices`` (case-insensitive); the first is the default."""
    value = env.get(name, "").strip().lower() or choices[0]
    if value not in choices:
        raise ConfigError(name, f"use one of {', '.join(choices)}, got {value!r}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False if value else default
    raise ConfigError(name, f"must be true or false, got {raw!r}")


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise ConfigError(name, f"must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(name, f"must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(name, f"must be a number, got {raw!r}") from None
    if not value >= minimum or value == float("inf"):  # also rejects NaN
        raise ConfigError(name, f"must be a finite number of at least {minimum}, got {raw!r}")
    return value


def _clamped(
    env: Mapping[str, str],
    name: str,
    default: int,
    limits: tuple[int, int],
    warnings: list[str],
) -> int:
    value = _int(env, name, default, minimum=-(2**63))
    low, high = limits
    clamped = min(max(value, low), high)
    if clamped != value:
        warnings.append(f"{name}={value} is outside Lambda's range {low}..{high}; using {clamped}")
    return clamped


def _port(env: Mapping[str, str]) -> int:
    port = _int(env, HTTP_LISTENER_PORT, 4243, minimum=1)
    if port > 65535 or port == 9001:
        raise ConfigError(HTTP_LISTENER_PORT, "must be 1..65535 and not 9001 (Lambda's own port)")
    return port


def _memory_size(env: Mapping[str, str]) -> int | None:
    raw = env.get(AWS_LAMBDA_FUNCTION_MEMORY_SIZE, "").strip()
    return int(raw) if raw.isdigit() else None


def _is_header_token(name: str) -> bool:
    # RFC 9110 token characters.
    allowed = "!#$%&'*+-.^_`|~"
    return bool(name) and all((c.isalnum() and c.isascii()) or c in allowed for c in name)
