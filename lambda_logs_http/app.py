"""The composition root: read the settings, register, build the parts, run.

Wiring lives here and nowhere else: which transformer and transport the worker gets, which
callbacks connect the listener to the worker. The order is the cold start's: Lambda starts the
function's runtime only once every extension has registered, so before the register call this
module does nothing but read the environment, and imports only what that needs; what is slow
(settings whose values come from AWS, ``HTTP_HEADERS``' JSON: ``settings.secrets``) runs right
after it, and the parts (threads, the listener, the lifecycle) are imported and built after that.
"""

from __future__ import annotations

import os
import sys

from . import log
from .lambda_api.client import LocalHttpError
from .lambda_api.events import INVOKE, SHUTDOWN
from .lambda_api.extensions import ExtensionsApiError, ExtensionsClient, Registration
from .settings import names
from .settings.load import is_managed_instances, load, names_secret_sources, strict_requested
from .settings.parse import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from .aws.credentials import CredentialsProvider
    from .delivery.worker import DeliveryWorker
    from .http.transport import Transport
    from .invocations import InvocationProgress
    from .lifecycle import Extension
    from .records.transform import Transformer
    from .settings.model import Settings

DEFAULT_NAME = "lambda-logs-http"


def run(environ: Mapping[str, str] | None = None, name: str | None = None) -> int:
    """Run the extension until SHUTDOWN; return the process exit code."""
    env = os.environ if environ is None else environ
    extension_name = name or os.path.basename(sys.argv[0] or "") or DEFAULT_NAME
    if extension_name in ("-c", "__main__.py", ""):
        extension_name = DEFAULT_NAME
    runtime_api = env.get(names.AWS_LAMBDA_RUNTIME_API, "")
    if not runtime_api:
        log.error(
            f"{names.AWS_LAMBDA_RUNTIME_API} is not set: this program runs inside AWS Lambda "
            "(or a Lambda emulator) as an extension"
        )
        return 1

    # 1. Read the settings, unless some come from AWS: then all are read after register.
    settings: Settings | None = None
    error: ConfigError | None = None
    from_aws = names_secret_sources(env)
    if not from_aws:
        try:
            settings = load(env)
        except ConfigError as exc:
            error = exc

    # 2. Register: unconfigured, or on Managed Instances (INVOKE is refused there), only for
    #    SHUTDOWN, so the function is never held by an extension that cannot help it.
    client = ExtensionsClient(runtime_api, extension_name)
    managed = is_managed_instances(env)
    events = (SHUTDOWN,) if managed or error is not None else (INVOKE, SHUTDOWN)
    try:
        registration = client.register(events)
    except (ExtensionsApiError, LocalHttpError) as exc:
        log.error(f"could not register with the Extensions API: {exc}")
        return 1

    # 3. While the function's runtime starts: the values from AWS, HTTP_HEADERS, credentials.
    credentials = None
    what = ""
    if error is None and (from_aws or _completes_after_register(env, settings)):
        from .settings.secrets import SecretUnavailable, complete

        try:
            settings, credentials = complete(
                env, settings, function_name=registration.function_name
            )
        except SecretUnavailable as exc:
            error, what = exc, f"could not read {exc.setting} from AWS ({exc.code})"
        except ConfigError as exc:
            error = exc
    if settings is None or error is not None:
        from .lifecycle import run_unconfigured

        assert error is not None
        return run_unconfigured(client, error, strict=strict_requested(env), what=what)
    log.set_level(log.LEVELS[settings.log_level])

    # 4. Build the parts, and 5. run them.
    return build(settings, client, registration, credentials).run()


def _completes_after_register(env: Mapping[str, str], settings: Settings | None) -> bool:
    """Whether ``settings.secrets.complete`` has work: ``HTTP_HEADERS`` or AWS credentials."""
    from .http.auth import AWS_SIGV4

    return settings is not None and (
        bool(env.get(names.HTTP_HEADERS, "").strip()) or settings.auth.kind == AWS_SIGV4
    )


def build(
    settings: Settings,
    client: ExtensionsClient,
    registration: Registration,
    credentials: CredentialsProvider | None = None,
) -> Extension:
    """The extension's parts, wired: the listener now, and the worker with the bookkeeping it
    shares with the main thread once init has ended (``start_delivery``, called by
    ``Extension.open_gate``): until then only the listener runs, and neither ``threading`` nor
    the delivery modules are imported. ``credentials``: the function's AWS credentials, for
    ``aws_sigv4``."""
    from .lifecycle import Extension
    from .listener.server import TelemetryListener
    from .stats import Stats

    stats = Stats()
    listener = TelemetryListener(
        settings.telemetry.listener_port,
        None,  # see start_delivery
        None,
        stats,
        # Lambda pushes at most maxItems events; twice that leaves room for any rounding.
        max_events=2 * settings.telemetry.max_items,
    )

    def start_delivery() -> tuple[DeliveryWorker, InvocationProgress]:
        from .delivery.worker import DeliveryWorker
        from .invocations import InvocationProgress

        progress = InvocationProgress()
        worker = DeliveryWorker(
            settings.batching,
            settings.delivery,
            settings.endpoint.timeout_seconds,
            lambda: transformer(settings, registration, progress),
            lambda: transport(settings, credentials),
            progress,
            stats,
        )
        listener.deliver_to(
            lambda events, body_bytes: worker.submit(events, body_bytes, wake=False),
            progress,
            wake_sink=worker.wake,
        )
        return worker, progress

    return Extension(settings, client, listener, start_delivery, stats)


def transformer(
    settings: Settings,
    registration: Registration,
    invocations: InvocationProgress | None = None,
) -> Transformer:
    """Built on the worker thread (``json``, ``re``): the entries' fixed context, and what the
    main thread passes on of each INVOKE (``invocations``). ``HTTP_EXTRA_FIELDS`` is parsed
    here: a ``ConfigError`` naming it stops delivery, the function runs on."""
    from . import __version__
    from .records import options
    from .records.encoders import encoder_class
    from .records.enrich import extra_fields
    from .records.transform import ENTRY_KEYS, EntryContext, Transformer, architecture
    from .settings.names import PROVISIONED_CONCURRENCY

    lambda_env = settings.lambda_env
    records = settings.records
    function_name = lambda_env.function_name or registration.function_name
    context = EntryContext(
        function_name,
        lambda_env.function_version,
        lambda_env.function_memory_size,
        lambda_env.region,
        architecture(),
        account_id=registration.account_id,
        extension_version=__version__,
        service_name=records.service_name or function_name,
        instance=lambda_env.log_stream_name,
        extra_fields=extra_fields(records.extra_fields, ENTRY_KEYS),
    )
    # Where init runs ahead of any request, no invocation waits for it: none is a cold start.
    cold_starts = not lambda_env.managed_instances and (
        lambda_env.initialization_type != PROVISIONED_CONCURRENCY
    )
    return Transformer(
        context,
        attribute_requests=not lambda_env.managed_instances,
        encoder=encoder_class(settings.batching.output_format)(context),
        screen=options.build(settings.records),  # ConfigError: reported by the worker
        invocations=invocations,
        cold_starts=cold_starts,
    )


def transport(settings: Settings, credentials: CredentialsProvider | None = None) -> Transport:
    """Built on the worker thread (``socket``, ``ssl`` for https): the way to the receiver."""
    from .http import auth
    from .http.transport import HttpTransport, TestModeTransport
    from .settings import hints

    endpoint = settings.endpoint
    strategy = auth.build(
        settings.auth.kind,
        username=settings.auth.username,
        credentials=settings.auth.credentials,
        header_name=settings.auth.header_name,
        aws_service=settings.auth.aws_service,
        aws_region=settings.auth.aws_region,
        aws_credentials=credentials.get if credentials is not None else None,
    )
    if settings.auth.headers:
        strategy = auth.WithHeaders(strategy, settings.auth.headers)
    mode = "TEST MODE, nothing is sent" if settings.delivery.test_mode else "forwarding"
    proxy = endpoint.proxy
    via = f" through the proxy {proxy.display} ({proxy.variable})" if proxy else ""
    log.info(f"ready: {mode} to {endpoint.display}{via}")
    if settings.delivery.test_mode:
        return TestModeTransport(endpoint, strategy)
    if not endpoint.tls_verify and endpoint.https:
        log.warning(hints.tls_unverified_warning())
    return HttpTransport(endpoint, strategy)
