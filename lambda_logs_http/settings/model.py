"""The settings, as frozen values grouped by what they govern.

``load()`` builds one ``Settings`` from the environment; every part of the extension then reads
the section it needs and nothing else. Values never change after loading (``replace`` makes a
copy), and no credential reaches a log line through a ``repr``.

Plain classes with ``__slots__`` rather than dataclasses: ``dataclasses`` (with ``inspect`` and
``typing``) costs milliseconds to import, and this is built before the extension registers.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeVar

    _F = TypeVar("_F", bound="Frozen")

# end: deliver each invocation's logs before releasing it. periodic: release at once, send in the
# background every HTTP_BATCH_MAX_AGE_MS (Managed Instances always work this way).
END = "end"
PERIODIC = "periodic"
FLUSH_STRATEGIES = (END, PERIODIC)
NO_COMPRESSION = "none"
GZIP = "gzip"
COMPRESSIONS = (NO_COMPRESSION, GZIP)
# HTTP_FORMAT's values, the default first: records.encoders.MODULES' keys (a unit test checks
# they agree), named here so that reading the setting imports no format.
FORMATS = ("seed", "ndjson", "otlp", "loki", "elasticsearch", "splunk_hec", "datadog")
# The levels an entry can have, lowest first (``HTTP_MIN_LEVEL``; ``records.levels`` maps every
# spelling a line may use onto these).
LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")


class Frozen:
    """A read-only record: every slot is given at construction, none changes afterwards."""

    __slots__: tuple[str, ...] = ()
    _secret: tuple[str, ...] = ()  # slots shown as *** in repr

    def __init__(self, **values: object) -> None:
        missing = set(self.__slots__) - set(values)
        unknown = set(values) - set(self.__slots__)
        if missing or unknown:
            raise TypeError(
                f"{type(self).__name__}: missing {sorted(missing)}, unknown {sorted(unknown)}"
            )
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def replace(self: _F, **changes: object) -> _F:
        """A copy with some values changed (tests, and settings derived after loading)."""
        values = {name: getattr(self, name) for name in self.__slots__}
        values.update(changes)
        return type(self)(**values)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(
            getattr(self, n) == getattr(other, n) for n in self.__slots__
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        values = {name: getattr(self, name) for name in self.__slots__}
        for name in self._secret:
            if values[name]:
                values[name] = "***"
        shown = ", ".join(f"{name}={value!r}" for name, value in values.items())
        return f"{type(self).__name__}({shown})"


class Proxy(Frozen):
    """A forward proxy (``settings.proxy``): where to connect instead, and its credentials.

    ``variable`` is the environment variable it came from, for error messages; ``display`` is
    its URL without credentials.
    """

    __slots__ = ("host", "port", "authorization", "variable", "display")
    _secret = ("authorization",)

    host: str
    port: int
    authorization: str  # the Proxy-Authorization value, "" when the proxy needs none
    variable: str
    display: str


class Endpoint(Frozen):
    """Where records go, parsed once (``settings.endpoint``) into what a request needs.

    ``target`` is the request target (path and query, percent-encoded); ``host`` is the name or
    address to connect to (IPv6 without brackets, international names in their ASCII form);
    ``host_header`` is the ``Host`` header; ``display`` is the URL fit for a log line (query
    values, which often hold API keys, replaced by ``***``). The TLS, timeout and proxy settings
    are here because they govern the connection to this endpoint and nothing else; ``proxy`` is
    None when the connection is direct (no proxy set, or ``NO_PROXY`` exempts the host).
    """

    __slots__ = (
        "url", "scheme", "host", "port", "target", "host_header", "display",
        "timeout_seconds", "tls_verify", "ca_bundle", "proxy",
    )  # fmt: skip
    _secret = ("url", "target")  # the query may hold an API key; ``display`` is the safe form

    url: str
    scheme: str
    host: str
    port: int
    target: str
    host_header: str
    display: str
    timeout_seconds: float
    tls_verify: bool
    ca_bundle: str
    proxy: Proxy | None

    @property
    def https(self) -> bool:
        return self.scheme == "https"


class Auth(Frozen):
    """``HTTP_AUTH_TYPE`` (``kind``) and the values its strategy takes (see ``http.auth``).

    ``aws_service``/``aws_region`` are what ``aws_sigv4`` signs for ("" for other kinds).
    ``headers`` are ``HTTP_HEADERS``' extra request headers, as ``(name, value)`` pairs: parsed
    after the extension registers (``settings.headers``), so ``load`` leaves them empty.
    """

    __slots__ = ("kind", "username", "credentials", "header_name", "aws_service", "aws_region",
                 "headers")  # fmt: skip
    _secret = ("credentials", "headers")

    kind: str
    username: str
    credentials: str
    header_name: str
    aws_service: str
    aws_region: str
    headers: tuple[tuple[str, str], ...]


class Batching(Frozen):
    """What one request holds: ``max_bytes`` counts the encoded body before compression;
    ``output_format`` is ``HTTP_FORMAT`` (one of ``FORMATS``)."""

    __slots__ = ("max_bytes", "max_records", "max_age_ms", "compression", "compression_level",
                 "output_format")  # fmt: skip

    max_bytes: int
    max_records: int
    max_age_ms: int
    compression: str
    compression_level: int
    output_format: str


class Telemetry(Frozen):
    """The Telemetry API subscription (buffering within Lambda's limits) and the listener."""

    __slots__ = ("types", "max_items", "max_bytes", "timeout_ms", "listener_port")

    types: tuple[str, ...]
    max_items: int
    max_bytes: int
    timeout_ms: int
    listener_port: int


class Delivery(Frozen):
    """When records are sent, how long an invocation may wait for them, where the rest waits."""

    __slots__ = (
        "flush_strategy", "flush_budget_ms", "deadline_margin_ms", "max_buffer_bytes",
        "spill_dir", "max_spill_bytes", "test_mode",
    )  # fmt: skip

    flush_strategy: str
    flush_budget_ms: int
    deadline_margin_ms: int
    max_buffer_bytes: int
    spill_dir: str
    max_spill_bytes: int
    test_mode: bool

    @property
    def holds_invocations(self) -> bool:
        """Whether each invocation waits for its logs (``end``) or is released at once."""
        return self.flush_strategy == END


class LambdaEnv(Frozen):
    """What Lambda tells every process of the environment about the function."""

    __slots__ = (
        "function_name", "function_version", "function_memory_size", "region",
        "managed_instances", "initialization_type",
        "log_stream_name",
    )  # fmt: skip

    function_name: str
    function_version: str
    function_memory_size: int | None
    region: str
    managed_instances: bool
    initialization_type: str  # AWS_LAMBDA_INITIALIZATION_TYPE: on-demand, snap-start...
    # AWS_LAMBDA_LOG_STREAM_NAME: Lambda gives it to the runtime, not to extensions; some
    # emulators and container set-ups pass it on. "" when unknown.
    log_stream_name: str


class Records(Frozen):
    """What is forwarded, and what every entry carries besides the record.

    ``min_level`` is one of ``LEVELS`` ("" forwards every level), taken from
    ``min_level_variable`` (``HTTP_MIN_LEVEL``, or Lambda's ``AWS_LAMBDA_LOG_LEVEL``).
    The patterns and the JSON settings are kept as text: ``re`` and ``json`` are not imported
    before register, so they are compiled and parsed on the worker thread
    (``records.options.build``), which is also where their errors are found.
    """

    __slots__ = (
        "min_level", "min_level_variable", "include_pattern", "exclude_pattern", "redact",
        "redact_patterns", "extra_fields", "service_name",
    )  # fmt: skip

    min_level: str
    min_level_variable: str
    include_pattern: str  # "" when unset
    exclude_pattern: str
    redact: bool
    redact_patterns: str  # HTTP_REDACT_PATTERNS' JSON text, "" when unset
    extra_fields: str  # HTTP_EXTRA_FIELDS' JSON text, "" when unset
    service_name: str  # OTEL_SERVICE_NAME, "" when unset (the function's name is used)


class Settings(Frozen):
    """Everything the extension was configured with; ``warnings`` are printed once at start."""

    __slots__ = (
        "endpoint", "auth", "batching", "telemetry", "delivery", "lambda_env", "records",
        "log_level", "strict", "warnings",
    )  # fmt: skip

    endpoint: Endpoint
    auth: Auth
    batching: Batching
    telemetry: Telemetry
    delivery: Delivery
    lambda_env: LambdaEnv
    records: Records
    log_level: str
    strict: bool
    warnings: tuple[str, ...]
