"""``Endpoint`` values for tests that build a transport directly, parsed as the settings do."""

from __future__ import annotations

from lambda_logs_http.settings.endpoint import parse_endpoint
from lambda_logs_http.settings.model import Endpoint


def endpoint(
    url: str, *, timeout_seconds: float = 30.0, tls_verify: bool = True, ca_bundle: str = ""
) -> Endpoint:
    return parse_endpoint(
        url, timeout_seconds=timeout_seconds, tls_verify=tls_verify, ca_bundle=ca_bundle
    )
