"""A delivery worker wired the way ``app.build`` wires it, for tests below the sandbox."""

from __future__ import annotations

from lambda_logs_http import app
from lambda_logs_http.delivery.worker import DeliveryWorker
from lambda_logs_http.invocations import InvocationProgress
from lambda_logs_http.records.encoders import encoder_class
from lambda_logs_http.records.transform import EntryContext, Transformer
from lambda_logs_http.settings.model import Settings
from lambda_logs_http.stats import Stats

CONTEXT = EntryContext("fn", "1", 128, "us-east-1", "x86_64")


def started_worker(
    settings: Settings,
    progress: InvocationProgress | None = None,
    stats: Stats | None = None,
) -> DeliveryWorker:
    """A started worker with the real transport for ``settings`` (and its ``HTTP_FORMAT``);
    the caller stops it."""
    worker = DeliveryWorker(
        settings.batching,
        settings.delivery,
        settings.endpoint.timeout_seconds,
        lambda: Transformer(
            CONTEXT, encoder=encoder_class(settings.batching.output_format)(CONTEXT)
        ),
        lambda: app.transport(settings),
        progress or InvocationProgress(),
        stats or Stats(),
    )
    worker.start()
    return worker
