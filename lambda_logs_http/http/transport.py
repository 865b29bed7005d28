"""Sending one request body to the receiver, and saying what happened.

The transport knows nothing about queues, batches or retries: it sends bytes and classifies the
outcome (delivered, worth retrying, or not). It keeps one keep-alive connection and drops it on
any error, so the next send reconnects — which is also how a connection killed by a freeze
(the receiver timed it out while we were stopped) is recovered without a special case.

Every send has one deadline (its ``timeout``) for all of it — name lookup, connect, proxy
tunnel, TLS handshake, request, answer — and ``abort()`` ends it from another thread at once
(``connection``). Through an ``http://`` proxy, ``http://`` endpoints get absolute-form
requests and ``https://`` endpoints a ``CONNECT`` tunnel with TLS to the endpoint itself. A
``307``/``308`` to the same scheme and host is followed (at most ``MAX_REDIRECTS`` hops) and
remembered for later sends; any other redirect is a failure that keeps the batch, since a POST
must not turn into a GET nor go to another host.

It speaks HTTP/1.1 itself over ``socket`` (answers are read by ``response``) rather than through
``http.client``, whose ``email`` imports cost 30-40 ms of CPU and 7 MiB in every execution
environment. ``ssl`` is imported only for ``https://`` endpoints. All of it loads on the worker
thread, off the cold-start path.
"""

from __future__ import annotations

import sys
import time

from .. import __version__, log
from .auth import Auth, Request, redact_headers
from .connection import Abort, Aborted, Connection, Connector, ProxyRefused
from .response import MalformedResponse, keeps_alive, read_body, read_head
from .result import (
    ABORTED,
    BAD_HEADER,
    CONNECTION,
    MALFORMED,
    PROXY,
    REDIRECT,
    TIMEOUT,
    TLS_VERIFY,
    SendResult,
)
from .result import answered as _answered

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..settings.model import Endpoint

USER_AGENT = f"lambda-logs-http/{__version__}"
MAX_REDIRECTS = 3
_MAX_ERROR_BODY = 2048
# A success answer longer than this is not read to its end: the connection is closed instead.
_MAX_DRAINED_BODY = 64 * 1024
# Bodies up to this size go out in the same write as the headers: one syscall (and one TLS
# record) instead of two, for the price of copying the body once.
_COALESCE_BYTES = 256 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_FOLLOWED = frozenset({307, 308})  # method and body kept by definition (RFC 9110 15.4)
# How long a request that asks first (Expect: 100-continue) waits before sending its body.
_CONTINUE_WAIT_SECONDS = 1.0


class _Attempt:
    """One request's result, and how it broke if it did: before any byte of an answer
    (``broke_before_answer``), after the whole request was written (``request_written``)."""

    __slots__ = ("result", "location", "broke_before_answer", "request_written")

    def __init__(
        self,
        result: SendResult,
        location: str | None = None,
        broke_before_answer: bool = False,
        request_written: bool = False,
    ) -> None:
        self.result = result
        self.location = location
        self.broke_before_answer = broke_before_answer
        self.request_written = request_written


class Transport:
    """Interface: ``send(body, headers, timeout) -> SendResult``; ``close()``; ``abort()``.

    ``answer_limit`` (given only when it is not 0): read up to that many bytes of a 2xx
    answer's body into ``SendResult.answer`` (a ``_bulk`` answer says which documents failed).
    """

    def send(
        self, body: bytes, headers: dict[str, str], timeout: float, answer_limit: int = 0
    ) -> SendResult:
        raise NotImplementedError

    def add_query(self, query: str) -> None:
        """Add ``query`` (``name=value``) to the URL every request targets: what an output
        format asks of its receiver (Elasticsearch's ``filter_path``). A name the URL already
        sets is left as the user set it."""

    def close(self) -> None:
        """Release connections; safe to call twice."""

    def abort(self) -> None:
        """Make a send blocked in another thread fail now; safe when nothing is in flight."""


class HttpTransport(Transport):
    """POSTs to one endpoint over HTTP or HTTPS, reusing the connection between sends."""

    def __init__(self, endpoint: Endpoint, auth: Auth) -> None:
        self.endpoint = endpoint
        self._auth = auth
        self._target = endpoint.target  # a followed 307/308 replaces it
        self._connection: Connection | None = None
        self._abort = Abort()
        self._connector = Connector(endpoint, self._tls_context() if endpoint.https else None)

    def add_query(self, query: str) -> None:
        self._target = with_query(self._target, query)

    def send(
        self, body: bytes, headers: dict[str, str], timeout: float, answer_limit: int = 0
    ) -> SendResult:
        self._abort.reset()
        deadline = time.monotonic() + timeout
        target = self._target
        for _hop in range(MAX_REDIRECTS + 1):
            result, location = self._send_reconnecting(
                body, headers, target, deadline, answer_limit
            )
            if result.status not in _REDIRECTS or result.ok:
                return result
            followed = self._followable(result.status, location)
            if followed is None:
                return self._refused_redirect(result.status, location)
            target = followed
            if target != self._target:
                self._target = target
                log.info(
                    f"the receiver redirects ({result.status}) to {self._display(target)}: "
                    "following it for this and later batches"
                )
        return self._refused_redirect(result.status, location, too_many=True)

    def close(self) -> None:
        connection, self._connection = self._connection, None
        self._abort.watch(None)
        if connection is not None:
            connection.close()

    def abort(self) -> None:
        self._abort.fire()

    # -- one request ----------------------------------------------------------------------

    def _send_reconnecting(
        self,
        body: bytes,
        headers: dict[str, str],
        target: str,
        deadline: float,
        answer_limit: int = 0,
    ) -> tuple[SendResult, str | None]:
        reused = self._connection is not None
        attempt = self._send_once(body, headers, target, deadline, answer_limit=answer_limit)
        if attempt.broke_before_answer and reused and not self._abort.fired:
            # The receiver closed the idle keep-alive connection (typically while the environment
            # was frozen): that is no failure of the receiver, so reconnect once right away.
            attempt = self._send_once(body, headers, target, deadline, answer_limit=answer_limit)
        if attempt.broke_before_answer and attempt.request_written and not self._abort.fired:
            # A fresh connection reset after the whole request was written and before any
            # answer: typically a server (or proxy) that answered early — 413, 401, 407 — and
            # closed without reading our body, the reset destroying its answer. Ask first this
            # time (Expect: 100-continue), so the answer comes before the body.
            attempt = self._send_once(
                body, headers, target, deadline, ask_first=True, answer_limit=answer_limit
            )
        return attempt.result, attempt.location

    def _send_once(
        self,
        body: bytes,
        headers: dict[str, str],
        target: str,
        deadline: float,
        ask_first: bool = False,
        answer_limit: int = 0,
    ) -> _Attempt:
        """One request on the current (or a new) connection."""
        connection = None
        received_before = 0
        written = False
        try:
            connection = self._connect(deadline)
            head = self._request_head(connection, target, headers, body, ask_first)
            if isinstance(head, SendResult):
                return _Attempt(head)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no time left to send")
            connection.sock.settimeout(remaining)
            connection.reader.deadline = deadline
            received_before = connection.reader.received
            early = self._ask_first(connection, head, deadline) if ask_first else None
            if early is not None:
                status, response_headers = early  # answered before the body: it stays unsent
            elif ask_first:
                received_before = connection.reader.received  # past the 100 Continue
                connection.sock.sendall(body)
                written = True
                status, response_headers = read_head(connection.reader)
            else:
                if len(body) <= _COALESCE_BYTES:
                    connection.sock.sendall(head + body)  # one segment for a small batch
                else:
                    connection.sock.sendall(head)
                    connection.sock.sendall(body)
                written = True
                connection.quickack()  # the answer's first segment is ACKed at once
                status, response_headers = read_head(connection.reader)
            limit = _MAX_ERROR_BODY if status >= 300 else max(_MAX_DRAINED_BODY, answer_limit)
            try:
                detail, whole = read_body(connection.reader, status, response_headers, limit)
            except OSError:
                if status < 300:
                    raise
                # An error answer cut short by a reset (the server closed with our body still
                # unread): the status is what counts, with whatever of the text arrived.
                detail, whole = connection.reader.read(connection.reader.buffered), False
            unasked = connection.reader.buffered  # bytes beyond the answer: nothing we asked for
            if status >= 300 or not whole or not keeps_alive(response_headers) or ask_first:
                # Drain nothing more: an error body may be huge, and reconnecting is cheap.
                self.close()
            elif unasked:
                # The receiver sent more than one answer (an extra, unasked response): whatever
                # follows would be taken for the answer to our next request. Start afresh.
                self.close()
        except MalformedResponse as exc:
            self.close()
            return _Attempt(SendResult(False, 0, True, f"bad HTTP response: {exc}", kind=MALFORMED))
        except OSError as exc:
            self.close()
            if self._abort.fired or isinstance(exc, Aborted):
                aborted = "send aborted (shutdown deadline)"
                return _Attempt(SendResult(False, 0, True, aborted, kind=ABORTED))
            # Whatever broke before the first byte of an answer (a reset, an EOF, TLS's own
            # EOF errors) on a kept-alive connection means the receiver had already closed it.
            broke = (
                connection is not None
                and connection.reader.received == received_before
                and not _is_timeout(exc)
                and not isinstance(exc, ProxyRefused)
            )
            result = self._connection_error(exc)
            if broke and connection is not None:
                closed = f"connection closed by the receiver: {exc}"
                result = SendResult(False, 0, True, closed, kind=CONNECTION)
            return _Attempt(result, broke_before_answer=broke, request_written=written)
        if status == 407:
            return _Attempt(self._proxy_refused(407, detail))
        result = _answered(status, detail, response_headers.get("retry-after"))
        if result.ok and not answer_limit:
            result.answer = b""  # read to keep the connection, not asked for
        proxy = self.endpoint.proxy
        if status in (401, 403) and proxy is not None and connection.proxied:
            # Some proxies (tinyproxy) refuse bad credentials with 401 rather than 407.
            result.error += f" (through the proxy {proxy.display} from {proxy.variable})"
        return _Attempt(result, response_headers.get("location"))

    def _ask_first(
        self, connection: Connection, head: bytes, deadline: float
    ) -> tuple[int, dict[str, str]] | None:
        """Send the head and wait briefly for ``100 Continue`` or an early final answer: that
        answer, or None when the body should follow (RFC 9110 10.1.1: after a 100, or without
        any answer within a second)."""
        connection.sock.sendall(head)
        connection.quickack()
        if connection.wait_readable(min(_CONTINUE_WAIT_SECONDS, deadline - time.monotonic())):
            status, response_headers = read_head(connection.reader, until_continue=True)
            if status != 100:
                return status, response_headers
        return None

    def _request_head(
        self,
        connection: Connection,
        target: str,
        headers: dict[str, str],
        body: bytes,
        ask_first: bool = False,
    ) -> bytes | SendResult:
        endpoint = self.endpoint
        request_headers = {
            "Host": endpoint.host_header,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            **headers,
        }
        url = f"{endpoint.scheme}://{endpoint.host_header}{target}"
        self._auth.apply(request_headers, Request("POST", url, body))
        if connection.proxied:
            # An http:// endpoint through the proxy: the request names the whole URL.
            target = f"http://{endpoint.host_header}{target}"
            proxy = endpoint.proxy
            if proxy is not None and proxy.authorization:
                request_headers["Proxy-Authorization"] = proxy.authorization
        if ask_first:
            request_headers["Expect"] = "100-continue"
        lines = [f"POST {target} HTTP/1.1"]
        for name, value in request_headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
                # A header can't smuggle another one in: refuse rather than send it mangled.
                error = f"header {name!r} holds a line break"
                return SendResult(False, error=error, needs_fix=True, kind=BAD_HEADER)
            lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(body)}\r\n\r\n")
        try:
            return "\r\n".join(lines).encode("latin-1")
        except UnicodeEncodeError:
            # Which header is not said: it may be a credential.
            error = "a header value is not Latin-1 text"
            return SendResult(False, error=error, needs_fix=True, kind=BAD_HEADER)

    def _connect(self, deadline: float) -> Connection:
        connection = self._connection
        if connection is not None:
            if not connection.has_unread_bytes():
                return connection
            # Readable while idle: the receiver closed it, or sent something unasked (an idle
            # 408, say) that would be taken for the answer to this request. Start afresh.
            self.close()
        self._connection = self._connector.open(deadline, self._abort)
        return self._connection

    def _tls_context(self) -> object:
        import ssl

        endpoint = self.endpoint
        context = ssl.create_default_context(cafile=endpoint.ca_bundle or None)
        if not endpoint.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    # -- outcomes -------------------------------------------------------------------------

    def _connection_error(self, exc: OSError) -> SendResult:
        if isinstance(exc, ProxyRefused):
            return self._proxy_refused(exc.status, exc.detail)
        ssl = sys.modules.get("ssl")
        if ssl is not None and isinstance(exc, ssl.SSLCertVerificationError):
            # Fail closed: never fall back to an unverified connection.
            reason = getattr(exc, "verify_message", "") or exc
            return SendResult(
                False,
                0,
                True,
                f"TLS certificate verification failed for {self.endpoint.host}: {reason}",
                needs_fix=True,
                kind=TLS_VERIFY,
            )
        if _is_timeout(exc):
            step = str(exc) if str(exc).startswith("timed out") else "timed out"
            return SendResult(False, 0, True, f"{step} waiting for the receiver", kind=TIMEOUT)
        via = f" (via the proxy {self.endpoint.proxy.display})" if self.endpoint.proxy else ""
        failed = f"connection failed{via}: {type(exc).__name__}: {exc}"
        return SendResult(False, 0, True, failed, kind=CONNECTION)

    def _proxy_refused(self, status: int, detail: bytes) -> SendResult:
        """A 407, or a refused CONNECT: only the proxy settings can fix it; records are kept."""
        proxy = self.endpoint.proxy
        name = proxy.variable if proxy else "the proxy"
        shown = proxy.display if proxy else ""
        what = "refused its credentials" if status == 407 else "refused the tunnel"
        text = log.excerpt(detail.decode("utf-8", "replace").strip().replace("\n", " "), 200)
        error = f"the proxy {shown} ({name}) {what}: HTTP {status}" + (f": {text}" if text else "")
        return SendResult(False, status, True, error, needs_fix=True, kind=PROXY)

    def _followable(self, status: int, location: str | None) -> str | None:
        """The request target to follow to, or None when this redirect must not be followed."""
        if status not in _FOLLOWED or not location:
            return None
        from urllib.parse import urljoin, urlsplit  # only once a receiver redirects

        endpoint = self.endpoint
        base = f"{endpoint.scheme}://{endpoint.host_header}{self._target}"
        parts = urlsplit(urljoin(base, location.strip()))
        default = 443 if parts.scheme == "https" else 80
        try:
            port = parts.port or default
        except ValueError:
            return None
        if parts.scheme != endpoint.scheme or (parts.hostname or "") != endpoint.host:
            return None
        if port != endpoint.port:
            return None
        from ..settings.endpoint import percent_encode

        target = percent_encode(parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return target if target.isascii() and " " not in target else None

    def _refused_redirect(
        self, status: int, location: str | None, too_many: bool = False
    ) -> SendResult:
        shown = _redact(location or "(none)")
        why = (
            f"more than {MAX_REDIRECTS} redirects"
            if too_many
            else "a redirect a POST must not follow (another host or scheme, or a 301/302/303 "
            "that would turn it into a GET)"
        )
        error = f"HTTP {status}: {why}; Location: {shown}"
        return SendResult(False, status, True, error, needs_fix=True, kind=REDIRECT)

    def _display(self, target: str) -> str:
        from ..settings.endpoint import redact_query

        return f"{self.endpoint.scheme}://{self.endpoint.host_header}{redact_query(target)}"


def _redact(url: str) -> str:
    """``url`` fit for a log line: query values (often keys) replaced by ``***``."""
    from ..settings.endpoint import redact_query

    head, sep, query = url.partition("?")
    return head + redact_query("?" + query) if sep else url


def _is_timeout(exc: OSError) -> bool:
    return isinstance(exc, TimeoutError) or type(exc).__name__ == "timeout"


class TestModeTransport(Transport):
    """``HTTP_TEST_MODE``: print what would be sent (credentials redacted), send nothing."""

    __test__ = False  # not a pytest test class

    def __init__(self, endpoint: Endpoint, auth: Auth) -> None:
        self.endpoint = endpoint
        self._auth = auth

    def send(
        self, body: bytes, headers: dict[str, str], timeout: float, answer_limit: int = 0
    ) -> SendResult:
        shown = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers}
        self._auth.apply(shown, Request("POST", self.endpoint.display, body))
        shown = redact_headers(shown, self._auth)
        log.emit(
            log.INFO,
            f"TEST MODE would POST {self.endpoint.display} headers={shown} "
            f"body={body.decode('ascii', 'replace')}",
        )
        return SendResult(True, 200)


def with_query(target: str, query: str) -> str:
    """``target`` (a path and maybe a query) with ``query`` added, unless it sets that name."""
    if not query:
        return target
    name = query.split("=", 1)[0] + "="
    path, _, existing = target.partition("?")
    if any(part.startswith(name) for part in existing.split("&")):
        return target
    return f"{path}?{existing}&{query}" if existing else f"{path}?{query}"
