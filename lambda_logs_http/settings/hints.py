"""What to change when a send fails in a way only the configuration can fix.

The delivery code knows that a receiver answered 401 or that a certificate did not verify; which
variable a user must change is the settings' knowledge, so the words that name variables are
here, next to the names.
"""

from __future__ import annotations

from ..http.result import BAD_HEADER, PROXY, REDIRECT, TLS_VERIFY
from .names import (
    HTTP_AUTH_TYPE,
    HTTP_CA_BUNDLE,
    HTTP_ENDPOINT,
    HTTP_MAX_BATCH_BYTES,
    HTTP_TLS_VERIFY,
)
from .proxy import HTTP_PROXY, HTTPS_PROXY, NO_PROXY

BATCH_LIMIT = f"set {HTTP_MAX_BATCH_BYTES} below its limit"


def for_failure(status: int, kind: str) -> str:
    """The fix for a failed send, as a clause to append to the log line ("" when none)."""
    if kind == TLS_VERIFY:
        return (
            f": set {HTTP_CA_BUNDLE} to the receiver's CA file "
            f"({HTTP_TLS_VERIFY}=false only for testing)"
        )
    if kind == REDIRECT:
        return f": set {HTTP_ENDPOINT} to the URL the receiver names (its Location)"
    if kind == PROXY:
        return (
            f": check the proxy's URL and credentials ({HTTPS_PROXY}/{HTTP_PROXY}, "
            f"or exempt the host in {NO_PROXY})"
        )
    if kind == BAD_HEADER:
        return ": check the auth settings for line breaks or non-Latin-1 text"
    if status in (401, 403):
        return f": check {HTTP_AUTH_TYPE} and the credentials"
    if status == 404:
        return f": check the path in {HTTP_ENDPOINT}"
    return ""


def tls_unverified_warning() -> str:
    return f"{HTTP_TLS_VERIFY}=false: the receiver's certificate is NOT checked"
