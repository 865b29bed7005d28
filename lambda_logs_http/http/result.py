"""What one send came to: ``SendResult``, and the kinds of failure it can report.

Imports only ``log`` (for its scrubbing), so the settings' hints and the delivery policy can
name the kinds without loading ``socket`` or ``ssl``.
"""

from __future__ import annotations

from .. import log

# The receiver answered (``status`` says how); or no usable answer came, and why.
ANSWERED = "answered"
TIMEOUT = "timeout"
CONNECTION = "connection"  # refused, reset, unreachable, name resolution
TLS_VERIFY = "tls_verify"  # the receiver's certificate is not trusted
MALFORMED = "malformed"  # the answer is not HTTP we can read
ABORTED = "aborted"  # abort() from another thread (shutdown)
BAD_HEADER = "bad_header"  # a request header we refuse to send (line break, not Latin-1)
PROXY = "proxy"  # the proxy refused (407, or a CONNECT answered with an error)
REDIRECT = "redirect"  # a redirect that must not be followed (the records are kept)

# And every 5xx.
RETRYABLE_STATUSES = frozenset({408, 425, 429})


class SendResult:
    """The outcome of one send.

    ``status`` is the HTTP status (0 when no answer came) and ``kind`` the kind of failure
    (``ANSWERED`` when the receiver answered); together they identify a failure, so repeats of
    the same one are recognised whatever text an answer carries (a request id, a time).
    ``retryable`` says whether the same body may succeed later; ``error`` explains a failure in
    words fit for a log line; ``needs_fix`` marks failures only a configuration change can end.
    """

    __slots__ = ("ok", "status", "kind", "retryable", "error", "retry_after", "needs_fix")

    def __init__(
        self,
        ok: bool,
        status: int = 0,
        retryable: bool = False,
        error: str = "",
        retry_after: str | None = None,
        needs_fix: bool = False,
        kind: str = ANSWERED,
    ) -> None:
        self.ok = ok
        self.status = status
        self.kind = kind
        self.retryable = retryable
        self.error = error
        self.retry_after = retry_after
        self.needs_fix = needs_fix

    @property
    def failure_key(self) -> tuple[int, str]:
        """What makes two failures "the same" for logging: the status and the kind."""
        return self.status, self.kind

    def __repr__(self) -> str:
        return (
            f"SendResult(ok={self.ok}, status={self.status}, kind={self.kind!r}, "
            f"retryable={self.retryable}, error={self.error!r})"
        )


def answered(status: int, detail: bytes, retry_after: str | None) -> SendResult:
    """The result for an answer with ``status``, its body's first bytes in ``detail``."""
    if 200 <= status < 300:
        return SendResult(True, status)
    # Scrubbed before it is cut: a receiver's error body may echo our request, credentials and
    # all, and a cut through a secret would leave its beginning for the scrub to miss.
    text = log.excerpt(detail.decode("utf-8", "replace").strip().replace("\n", " "), 300)
    retryable = status in RETRYABLE_STATUSES or status >= 500
    error = f"HTTP {status}" + (f": {text}" if text else "")
    return SendResult(False, status, retryable, error, retry_after)
