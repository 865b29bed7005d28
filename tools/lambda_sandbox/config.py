"""The sandbox's configuration, validated once and frozen.

Every environment variable a Lambda process sees is built here and nowhere else, from a
:class:`SandboxConfig` value: the rest of the package only passes that value around.
"""

from __future__ import annotations

import math
import os
import random
import secrets
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Variable names, as Lambda spells them.
ENV_RUNTIME_API = "AWS_LAMBDA_RUNTIME_API"
ENV_FUNCTION_NAME = "AWS_LAMBDA_FUNCTION_NAME"
ENV_FUNCTION_VERSION = "AWS_LAMBDA_FUNCTION_VERSION"
ENV_FUNCTION_MEMORY = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"
ENV_REGION = "AWS_REGION"
ENV_DEFAULT_REGION = "AWS_DEFAULT_REGION"
ENV_LOG_FORMAT = "AWS_LAMBDA_LOG_FORMAT"
ENV_LOG_LEVEL = "AWS_LAMBDA_LOG_LEVEL"
ENV_INIT_TYPE = "AWS_LAMBDA_INITIALIZATION_TYPE"
ENV_MAX_CONCURRENCY = "AWS_LAMBDA_MAX_CONCURRENCY"
ENV_LOG_GROUP = "AWS_LAMBDA_LOG_GROUP_NAME"
ENV_LOG_STREAM = "AWS_LAMBDA_LOG_STREAM_NAME"
ENV_HANDLER = "_HANDLER"
ENV_TASK_ROOT = "LAMBDA_TASK_ROOT"
ENV_RUNTIME_DIR = "LAMBDA_RUNTIME_DIR"
ENV_TELEMETRY_LOG_FD = "_LAMBDA_TELEMETRY_LOG_FD"
ENV_ACCESS_KEY_ID = "AWS_ACCESS_KEY_ID"
ENV_SECRET_ACCESS_KEY = "AWS_SECRET_ACCESS_KEY"
ENV_SESSION_TOKEN = "AWS_SESSION_TOKEN"
ENV_CONTAINER_CREDENTIALS_URI = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
ENV_CONTAINER_AUTHORIZATION_TOKEN = "AWS_CONTAINER_AUTHORIZATION_TOKEN"

INIT_TYPE_ON_DEMAND = "on-demand"
INIT_TYPE_MANAGED_INSTANCES = "lambda-managed-instances"
INIT_TYPE_SNAP_START = "snap-start"

LOG_FORMATS = ("Text", "JSON")
TELEMETRY_MODES = ("full", "not-supported")
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")

# Lambda refuses these in a function's configuration; the sandbox does too, and points at the
# constructor argument that sets each one instead.
RESERVED_VARIABLES = {
    ENV_RUNTIME_API: "(set by the sandbox)",
    ENV_FUNCTION_NAME: "function_name=",
    ENV_FUNCTION_VERSION: "function_version=",
    ENV_FUNCTION_MEMORY: "memory_mb=",
    ENV_REGION: "region=",
    ENV_DEFAULT_REGION: "region=",
    ENV_LOG_FORMAT: "log_format=",
    ENV_LOG_LEVEL: "log_level=",
    ENV_INIT_TYPE: "managed_instances= or snapstart=",
    ENV_MAX_CONCURRENCY: "managed_instances= and max_concurrency=",
    ENV_LOG_GROUP: "(set by the sandbox)",
    ENV_LOG_STREAM: "(set by the sandbox)",
    ENV_HANDLER: "FunctionSpec(handler=)",
    ENV_TASK_ROOT: "FunctionSpec(code_dir=)",
    ENV_RUNTIME_DIR: "(set by the sandbox)",
    ENV_TELEMETRY_LOG_FD: "FunctionSpec(telemetry_log_fd=)",
    "AWS_EXECUTION_ENV": "(not supported)",
    "_X_AMZN_TRACE_ID": "(set per invocation by the runtime)",
}

# Obviously fake credentials: Lambda always provides some, and code that signs requests (e.g. to
# a local moto server) needs a value. Users may override them through env=.
FAKE_CREDENTIALS = {
    ENV_ACCESS_KEY_ID: "ASIASANDBOXEXAMPLE00",
    ENV_SECRET_ACCESS_KEY: "sandbox-fake-secret-access-key",
    ENV_SESSION_TOKEN: "sandbox-fake-session-token",
}

SAMPLE_FUNCTION_DIR = Path(__file__).resolve().parent / "sample_function"
# Where the sandbox serves the role's credentials in SnapStart mode (on its API server).
CREDENTIALS_PATH = "/2021-04-23/credentials"


@dataclass(frozen=True)
class FunctionSpec:
    """What runs as the function's runtime process.

    By default AWS's own Python runtime client, ``python -m awslambdaric <handler>``, with
    ``python`` as the interpreter (it must have ``awslambdaric`` installed). ``command`` replaces
    that with any ``bootstrap``-style custom runtime (argv list). ``code_dir`` is the working
    directory and ``LAMBDA_TASK_ROOT``; ``None`` means the bundled sample function.
    ``telemetry_log_fd``: pass the framed log pipe ``_LAMBDA_TELEMETRY_LOG_FD`` the way Lambda's
    managed runtimes do; ``None`` means yes for awslambdaric, no for a ``command``.
    """

    handler: str = "app.handler"
    code_dir: Path | None = None
    python: str = sys.executable
    command: Sequence[str] | None = None
    telemetry_log_fd: bool | None = None

    def resolved_code_dir(self) -> Path:
        """The code directory, the sample function when none was given."""
        return Path(self.code_dir).resolve() if self.code_dir is not None else SAMPLE_FUNCTION_DIR

    def argv(self) -> list[str]:
        """The runtime's command line."""
        if self.command is not None:
            return [str(part) for part in self.command]
        return [str(self.python), "-m", "awslambdaric", self.handler]

    def uses_telemetry_fd(self) -> bool:
        """Whether the runtime gets the framed telemetry log pipe."""
        if self.telemetry_log_fd is not None:
            return self.telemetry_log_fd
        return self.command is None


@dataclass(frozen=True)
class DeliveryPolicy:
    """How the sandbox pushes telemetry batches to a subscriber (an immutable value).

    A batch is tried ``attempts`` times; each try waits at most ``timeout_s`` for the listener's
    answer; between tries it sleeps ``backoff(attempt)``. A batch that still failed is dropped
    and counted in a later ``platform.logsDropped``. ``max_buffered_events`` bounds what waits
    for a slow or frozen listener; older events beyond it are dropped the same way.
    """

    attempts: int = 3
    timeout_s: float = 1.0
    backoff_s: float = 0.05
    backoff_max_s: float = 0.5
    max_buffered_events: int = 100_000

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("DeliveryPolicy.attempts must be at least 1")
        if self.timeout_s <= 0:
            raise ValueError("DeliveryPolicy.timeout_s must be positive")

    def backoff(self, attempt: int) -> float:
        """Seconds to sleep after failed try number ``attempt`` (1-based): exponential, capped,
        with up to 10 % jitter so two subscribers do not retry in lockstep."""
        base = min(self.backoff_max_s, self.backoff_s * (2 ** max(0, attempt - 1)))
        return base * (1.0 + random.random() * 0.1)


@dataclass(frozen=True)
class SandboxConfig:
    """Everything that describes one sandboxed function; built by :class:`Sandbox`."""

    layer_dir: Path | None
    function: FunctionSpec
    env: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 3.0
    memory_mb: int = 128
    limit_cpu: bool = False
    log_format: str = "Text"
    log_level: str | None = None
    function_name: str = "demo"
    function_version: str = "$LATEST"
    region: str = "us-east-1"
    account_id: str = "123456789012"
    telemetry: str = "full"
    freeze: bool = True
    managed_instances: bool = False
    max_concurrency: int = 2
    init_timeout_s: float = 10.0
    shutdown_timeout_s: float = 2.0
    runtime_shutdown_s: float = 0.3
    delivery: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    inherit_env: bool = False
    snapstart: bool = False
    snapshot_freeze_s: float = 1.0
    # Tenant isolation: the one tenant this environment serves (None: not a tenant-isolated
    # function).
    tenant_id: str | None = None
    # The token the credentials endpoint wants (SnapStart): new for every sandbox.
    credentials_token: str = field(default_factory=lambda: secrets.token_hex(16))

    def __post_init__(self) -> None:
        if self.log_format not in LOG_FORMATS:
            raise ValueError(f"log_format must be one of {LOG_FORMATS}, not {self.log_format!r}")
        if self.log_level is not None and self.log_level.upper() not in LOG_LEVELS:
            raise ValueError(f"log_level must be one of {LOG_LEVELS}, not {self.log_level!r}")
        if self.telemetry not in TELEMETRY_MODES:
            raise ValueError(f"telemetry must be one of {TELEMETRY_MODES}, not {self.telemetry!r}")
        if not (self.timeout_s > 0 and math.isfinite(self.timeout_s)):
            raise ValueError("timeout_s must be a positive number of seconds")
        if not 128 <= self.memory_mb <= 10240:
            raise ValueError("memory_mb must be between 128 and 10240, as in Lambda")
        if self.max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if self.snapstart and self.managed_instances:
            raise ValueError("snapstart and managed_instances exclude each other, as in Lambda")
        if not (self.snapshot_freeze_s >= 0 and math.isfinite(self.snapshot_freeze_s)):
            raise ValueError("snapshot_freeze_s must be a non-negative number of seconds")
        if self.tenant_id is not None and not (0 < len(self.tenant_id) <= 256):
            raise ValueError("tenant_id must be 1 to 256 characters, as in Lambda")
        if self.layer_dir is not None and not Path(self.layer_dir).is_dir():
            raise ValueError(f"layer_dir {self.layer_dir} is not a directory")
        if not self.function.resolved_code_dir().is_dir():
            raise ValueError(f"code_dir {self.function.resolved_code_dir()} is not a directory")
        for name in self.env:
            if name in RESERVED_VARIABLES:
                raise ValueError(
                    f"environment variable {name} is reserved by Lambda; "
                    f"use {RESERVED_VARIABLES[name]}"
                )

    @property
    def initialization_type(self) -> str:
        if self.managed_instances:
            return INIT_TYPE_MANAGED_INSTANCES
        return INIT_TYPE_SNAP_START if self.snapstart else INIT_TYPE_ON_DEMAND

    @property
    def function_arn(self) -> str:
        return (
            f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.function_name}"
        )

    @property
    def log_group(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def effective_log_level(self) -> str | None:
        """``AWS_LAMBDA_LOG_LEVEL`` as Lambda sets it: the configured application log level,
        which Lambda only offers (default INFO) with the JSON log format."""
        if self.log_level is not None:
            return self.log_level.upper()
        return "INFO" if self.log_format == "JSON" else None

    def _base_environment(self, runtime_api: str) -> dict[str, str]:
        if self.inherit_env:
            base = dict(os.environ)
        else:
            base = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")}
        base.setdefault("LANG", "en_US.UTF-8")
        base.setdefault("TZ", ":UTC")
        if self.snapstart:
            # SnapStart: the role's credentials come from a local endpoint, not variables
            # (keys in a snapshot would outlive their expiry).
            for name in FAKE_CREDENTIALS:
                base.pop(name, None)
            base[ENV_CONTAINER_CREDENTIALS_URI] = f"http://{runtime_api}{CREDENTIALS_PATH}"
            base[ENV_CONTAINER_AUTHORIZATION_TOKEN] = self.credentials_token
        else:
            base.update(FAKE_CREDENTIALS)
        return base

    def lambda_environment(self, runtime_api: str) -> dict[str, str]:
        """The variables every Lambda process (runtime and extensions) sees."""
        env = self._base_environment(runtime_api)
        env.update(
            {
                ENV_RUNTIME_API: runtime_api,
                ENV_FUNCTION_NAME: self.function_name,
                ENV_FUNCTION_VERSION: self.function_version,
                ENV_FUNCTION_MEMORY: str(self.memory_mb),
                ENV_REGION: self.region,
                ENV_DEFAULT_REGION: self.region,
                ENV_LOG_FORMAT: self.log_format,
                ENV_INIT_TYPE: self.initialization_type,
            }
        )
        level = self.effective_log_level
        if level is not None:
            env[ENV_LOG_LEVEL] = level
        if self.managed_instances:
            env[ENV_MAX_CONCURRENCY] = str(self.max_concurrency)
        env.update(self.env)
        return env

    def function_environment(self, runtime_api: str, log_stream: str) -> dict[str, str]:
        """The runtime's variables: the shared ones plus handler, task root and log names, and
        the code and layer ``python/`` directories on ``PYTHONPATH`` (Lambda's import path)."""
        env = self.lambda_environment(runtime_api)
        code_dir = self.function.resolved_code_dir()
        env[ENV_HANDLER] = self.function.handler
        env[ENV_TASK_ROOT] = str(code_dir)
        env[ENV_RUNTIME_DIR] = str(code_dir)
        env[ENV_LOG_GROUP] = self.log_group
        env[ENV_LOG_STREAM] = log_stream
        paths = [str(code_dir)]
        if self.layer_dir is not None and (Path(self.layer_dir) / "python").is_dir():
            paths.append(str(Path(self.layer_dir).resolve() / "python"))
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        return env

    def extension_environment(self, runtime_api: str) -> dict[str, str]:
        """An extension's variables: the shared ones only (no handler, task root or log names)."""
        return self.lambda_environment(runtime_api)
