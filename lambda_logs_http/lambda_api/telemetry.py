"""Subscription to the Lambda Telemetry API.

Subscribing is allowed only during init. The destination must name ``sandbox.localdomain`` (the
only host Lambda will push to) even when our listener had to bind 127.0.0.1 locally.
"""

from __future__ import annotations

from . import client

API_PATH = "/2022-07-01/telemetry"
SCHEMA_VERSION = "2022-12-13"
# Lambda Managed Instances accept only this one; it is backward compatible with 2022-12-13.
MANAGED_INSTANCES_SCHEMA_VERSION = "2025-01-29"
DESTINATION_HOST = "sandbox.localdomain"

SUBSCRIBED = "subscribed"
NOT_SUPPORTED = "not-supported"
FAILED = "failed"


class Subscription:
    """The outcome: ``state`` is SUBSCRIBED, NOT_SUPPORTED (e.g. the plain emulator) or FAILED."""

    __slots__ = ("state", "detail")

    def __init__(self, state: str, detail: str = "") -> None:
        self.state = state
        self.detail = detail


def subscription_body(
    *,
    types: tuple[str, ...],
    max_items: int,
    max_bytes: int,
    timeout_ms: int,
    port: int,
    schema_version: str = SCHEMA_VERSION,
) -> bytes:
    """The PUT body; buffering values must already be within Lambda's limits (see config).

    Written out rather than ``json.dumps``-ed: every value is an int or a known word, and
    ``json`` is not imported before the first ``/event/next`` (cold start).
    """
    listed = ",".join(f'"{t}"' for t in types)
    return (
        f'{{"schemaVersion":"{schema_version}","types":[{listed}],'
        f'"buffering":{{"maxItems":{int(max_items)},"maxBytes":{int(max_bytes)},'
        f'"timeoutMs":{int(timeout_ms)}}},'
        f'"destination":{{"protocol":"HTTP","URI":"http://{DESTINATION_HOST}:{int(port)}/"}}}}'
    ).encode()


def subscribe(runtime_api: str, extension_id: str, body: bytes) -> Subscription:
    """PUT the subscription; never raises, so a telemetry problem can't crash the function."""
    try:
        response = client.request(
            runtime_api,
            "PUT",
            API_PATH,
            headers={
                "Lambda-Extension-Identifier": extension_id,
                "Content-Type": "application/json",
            },
            body=body,
            timeout=5.0,
        )
    except client.LocalHttpError as exc:
        return Subscription(FAILED, str(exc))
    if response.status == 200:
        return Subscription(SUBSCRIBED)
    detail = f"{response.status} {response.text()[:300]}"
    if response.status == 202 or b"NotSupported" in response.body:
        return Subscription(NOT_SUPPORTED, detail)
    return Subscription(FAILED, detail)
