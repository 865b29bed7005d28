"""Sending one request body to the receiver, and saying what happened.

The transport knows nothing about queues, batches or retries: it sends bytes and classifies the
outcome (delivered, worth retrying, or not). It keeps one keep-alive connection and drops it on
any error, so the next send reconnects — which is also how a connection killed by a freeze
(the receiver timed it out while we were stopped) is recovered without a special case.

It speaks HTTP/1.1 itself over ``socket`` (responses are read by ``response``) rather than
through ``http.client``, whose ``email`` imports cost 30-40 ms of CPU and 7 MiB in every
execution environment. ``ssl`` is imported only for ``https://`` endpoints. All of it loads on
the worker thread, off the cold-start path.
"""

from __future__ import annotations

import socket
import sys
import time

from .. import __version__, log
from .auth import Auth, redact_headers
from .response import MalformedResponse, Reader, keeps_alive, read_body, read_head
from .result import ABORTED, BAD_HEADER, CONNECTION, MALFORMED, TIMEOUT, TLS_VERIFY, SendResult
from .result import answered as _answered

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..settings.model import Endpoint

USER_AGENT = f"lambda-logs-http/{__version__}"
_MAX_ERROR_BODY = 2048
# A success answer longer than this is not read to its end: the connection is closed instead.
_MAX_DRAINED_BODY = 64 * 1024
# Bodies up to this size go out in the same write as the headers: one syscall (and one TLS
# record) instead of two, for the price of copying the body once.
_COALESCE_BYTES = 256 * 1024


class Transport:
    """Interface: ``send(body, headers, timeout) -> SendResult``; ``close()``; ``abort()``."""

    def send(self, body: bytes, headers: dict[str, str], timeout: float) -> SendResult:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections; safe to call twice."""

    def abort(self) -> None:
        """Make a send blocked in another thread fail now; safe when nothing is in flight."""


class _Connection:
    """One open connection to the receiver and the reader that owns its unread bytes."""

    __slots__ = ("sock", "reader")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = Reader(sock)


class HttpTransport(Transport):
    """POSTs to one endpoint over HTTP or HTTPS, reusing the connection between sends."""

    def __init__(self, endpoint: Endpoint, auth: Auth) -> None:
        self.endpoint = endpoint
        self._https = endpoint.https
        self._host = endpoint.host
        self._port = endpoint.port
        self._path = endpoint.target
        self._host_header = endpoint.host_header
        self._auth = auth
        self._tls_verify = endpoint.tls_verify
        self._ca_bundle = endpoint.ca_bundle
        self._connection: _Connection | None = None
        self._ssl_context: object = None
        self._aborted = False  # set by abort(): the send in flight must not reconnect

    def send(self, body: bytes, headers: dict[str, str], timeout: float) -> SendResult:
        self._aborted = False
        reused = self._connection is not None
        result, stale = self._send_once(body, headers, timeout)
        if stale and reused and not self._aborted:
            # The receiver closed the idle keep-alive connection (typically while the environment
            # was frozen): that is no failure of the receiver, so reconnect once right away.
            result, _ = self._send_once(body, headers, timeout)
        return result

    def _request_head(self, headers: dict[str, str], length: int) -> bytes | SendResult:
        request_headers = {
            "Host": self._host_header,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            **headers,
        }
        self._auth.apply(request_headers)
        lines = [f"POST {self._path} HTTP/1.1"]
        for name, value in request_headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
                # A header can't smuggle another one in: refuse rather than send it mangled.
                return SendResult(
                    False,
                    error=f"header {name!r} holds a line break",
                    needs_fix=True,
                    kind=BAD_HEADER,
                )
            lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {length}\r\n\r\n")
        try:
            return "\r\n".join(lines).encode("latin-1")
        except UnicodeEncodeError:
            # Which header is not said: it may be a credential.
            return SendResult(
                False, error="a header value is not Latin-1 text", needs_fix=True, kind=BAD_HEADER
            )

    def _send_once(
        self, body: bytes, headers: dict[str, str], timeout: float
    ) -> tuple[SendResult, bool]:
        """One attempt; the flag says the connection was found closed before any answer."""
        head = self._request_head(headers, len(body))
        if isinstance(head, SendResult):
            return head, False
        connection = None
        received_before = 0
        try:
            connection = self._connect(timeout)
            connection.reader.deadline = time.monotonic() + timeout
            received_before = connection.reader.received
            if len(body) <= _COALESCE_BYTES:
                connection.sock.sendall(head + body)  # one segment for a small batch
            else:
                connection.sock.sendall(head)
                connection.sock.sendall(body)
            status, response_headers = read_head(connection.reader)
            limit = _MAX_ERROR_BODY if status >= 300 else _MAX_DRAINED_BODY
            detail, whole = read_body(connection.reader, status, response_headers, limit)
            if status >= 300 or not whole or not keeps_alive(response_headers):
                # Drain nothing more: an error body may be huge, and reconnecting is cheap.
                self.close()
        except MalformedResponse as exc:
            self.close()
            return SendResult(False, 0, True, f"bad HTTP response: {exc}", kind=MALFORMED), False
        except OSError as exc:
            self.close()
            if self._aborted:
                aborted = SendResult(
                    False, 0, True, "send aborted (shutdown deadline)", kind=ABORTED
                )
                return aborted, False
            # Whatever broke before the first byte of an answer (a reset, an EOF, TLS's own
            # EOF errors) means a kept-alive connection the receiver had already closed.
            stale = (
                connection is not None
                and connection.reader.received == received_before
                and not _is_timeout(exc)
            )
            if stale:
                closed = f"connection closed by the receiver: {exc}"
                return SendResult(False, 0, True, closed, kind=CONNECTION), True
            return self._connection_error(exc), False
        return _answered(status, detail, response_headers.get("retry-after")), False

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.sock.close()
            except OSError:
                pass

    def abort(self) -> None:
        self._aborted = True
        connection = self._connection
        if connection is not None:
            try:
                # shutdown(), unlike close(), wakes a thread blocked in recv() or send(). The
                # plain socket's: SSLSocket.shutdown() first drops the TLS layer, and a send()
                # racing with it could then write in clear text.
                socket.socket.shutdown(connection.sock, socket.SHUT_RDWR)
            except OSError:
                pass

    def _connect(self, timeout: float) -> _Connection:
        connection = self._connection
        if connection is not None:
            if not _has_unread_bytes(connection.sock):
                connection.sock.settimeout(timeout)
                return connection
            # Readable while idle: the receiver closed it, or sent something unasked (an idle
            # 408, say) that would be taken for the answer to this request. Start afresh.
            self.close()
        sock = socket.create_connection((self._host, self._port), timeout=timeout)
        if self._aborted:  # abort() came while we were connecting: there was nothing to shut
            sock.close()
            raise OSError("send aborted")
        try:
            # A body too large for one segment is written after the headers: no Nagle stall.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._https:
                sock = self._tls_context().wrap_socket(  # type: ignore[attr-defined]
                    sock, server_hostname=self._host
                )
        except BaseException:
            sock.close()
            raise
        self._connection = _Connection(sock)
        return self._connection

    def _tls_context(self) -> object:
        if self._ssl_context is None:
            import ssl

            context = ssl.create_default_context(cafile=self._ca_bundle or None)
            if not self._tls_verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._ssl_context = context
        return self._ssl_context

    def _connection_error(self, exc: OSError) -> SendResult:
        ssl = sys.modules.get("ssl")
        if ssl is not None and isinstance(exc, ssl.SSLCertVerificationError):
            # Fail closed: never fall back to an unverified connection.
            reason = getattr(exc, "verify_message", "") or exc
            return SendResult(
                False,
                0,
                True,
                f"TLS certificate verification failed for {self._host}: {reason}",
                needs_fix=True,
                kind=TLS_VERIFY,
            )
        if _is_timeout(exc):
            return SendResult(False, 0, True, "timed out waiting for the receiver", kind=TIMEOUT)
        failed = f"connection failed: {type(exc).__name__}: {exc}"
        return SendResult(False, 0, True, failed, kind=CONNECTION)


def _has_unread_bytes(sock: socket.socket) -> bool:
    import select  # a small C module, already loaded by the listener

    poller = select.poll()  # not select.select(): no limit on descriptor numbers
    poller.register(sock, select.POLLIN)
    try:
        return bool(poller.poll(0))
    except OSError:
        return True  # closed under us: not reusable either


def _is_timeout(exc: OSError) -> bool:
    return isinstance(exc, TimeoutError) or type(exc).__name__ == "timeout"


class TestModeTransport(Transport):
    """``HTTP_TEST_MODE``: print what would be sent (credentials redacted), send nothing."""

    __test__ = False  # not a pytest test class

    def __init__(self, endpoint: Endpoint, auth: Auth) -> None:
        self.endpoint = endpoint
        self._auth = auth

    def send(self, body: bytes, headers: dict[str, str], timeout: float) -> SendResult:
        shown = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers}
        self._auth.apply(shown)
        shown = redact_headers(shown, self._auth)
        log.emit(
            log.INFO,
            f"TEST MODE would POST {self.endpoint.display} headers={shown} "
            f"body={body.decode('ascii', 'replace')}",
        )
        return SendResult(True, 200)
