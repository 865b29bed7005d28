"""One HTTP request to any URL, for the extension's AWS calls (``aws.errors.Request``).

``HttpRequester(environ)`` is the callable ``request(method, url, headers, body, timeout) ->
(status, headers, body)`` that ``aws.services.AwsClient`` and ``aws.credentials`` send through.
It is made of the transport's own pieces, so an AWS call goes out exactly as a batch does:

* ``connection.Connector`` opens the connection: the name resolved, the connect, a proxy's
  ``CONNECT`` tunnel and the TLS handshake each bounded by the call's one deadline;
* the proxy is chosen per URL from the same ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` as the
  receiver's (``settings.proxy.proxy_for``): a function in a VPC whose only way out is a proxy
  reaches Secrets Manager through it, and ``NO_PROXY`` exempts a VPC endpoint's name;
* TLS is always verified (there is no switch to turn it off), against the system's CAs or the
  PEM file in ``AWS_CA_BUNDLE`` (the AWS SDKs' variable, for TLS-inspecting proxies);
* ``response`` reads the answer, whose size is bounded (``MAX_BODY_BYTES``).

The headers go out as given, in that order (they are signed): only ``Host`` (when absent),
``User-Agent`` (when absent) and ``Content-Length`` are added. One connection per origin stays
open between calls, since a cold start reads its secrets in a row; a kept-alive connection that
turns out closed before any byte of an answer is replaced once at once. Every failure to get an
answer is an ``OSError`` (``TimeoutError`` for the deadline; a malformed or oversized answer is a
``ConnectionError``), as the ``Request`` contract says. ``abort()`` ends a call from another
thread; ``close()`` drops the connections.

``direct=True`` ignores the proxy variables: the container credentials endpoint
(``AWS_CONTAINER_CREDENTIALS_FULL_URI``) is on the machine itself or link-local, where a proxy
cannot reach, and the AWS SDKs fetch it directly too.

Imported after the extension registers, on the main thread (``socket``, ``ssl`` for https).
"""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

from .. import __version__
from ..settings.endpoint import DEFAULT_PORTS, endpoint_for
from ..settings.model import Endpoint
from ..settings.names import AWS_CA_BUNDLE
from ..settings.proxy import proxy_for
from .connection import Abort, Connection, Connector
from .response import MalformedResponse, keeps_alive, read_body, read_head

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

USER_AGENT = f"lambda-logs-http/{__version__}"
MAX_BODY_BYTES = 1 << 20  # a secret is at most 64 KiB, a parameter 8 KiB: 1 MiB is ample


class HttpRequester:
    """``request(method, url, headers, body, timeout)`` over the extension's own HTTP stack.

    ``environ`` is read here, once: the proxy variables (unless ``direct``) and
    ``AWS_CA_BUNDLE``. Safe to call from several threads (calls take turns).
    """

    def __init__(self, environ: Mapping[str, str], *, direct: bool = False) -> None:
        from ..settings.proxy import HTTP_PROXY, HTTPS_PROXY, NO_PROXY

        names = (HTTP_PROXY, HTTPS_PROXY, NO_PROXY)
        # Only the proxy variables are kept, in both spellings, for proxy_for to choose from.
        self._proxy_env: dict[str, str] = (
            {}
            if direct
            else {n: environ[n] for n in (*names, *(n.lower() for n in names)) if n in environ}
        )
        self._ca_bundle = environ.get(AWS_CA_BUNDLE, "").strip()
        self._tls_context: object | None = None
        self._connectors: dict[tuple[str, str, int], Connector] = {}
        self._connections: dict[tuple[str, str, int], Connection] = {}
        self._lock = threading.Lock()
        self._abort = Abort()

    def __call__(
        self, method: str, url: str, headers: dict[str, str], body: bytes, timeout: float
    ) -> tuple[int, dict[str, str], bytes]:
        deadline = time.monotonic() + timeout
        endpoint = self._endpoint(url, timeout)
        key = (endpoint.scheme, endpoint.host, endpoint.port)
        with self._lock:
            self._abort.reset()
            reused = key in self._connections
            try:
                return self._once(key, endpoint, method, headers, body, deadline)
            except _BrokeBeforeAnswer as broke:
                if not reused or self._abort.fired:
                    raise broke.error from None
            # The kept-alive connection had been closed by the server: once more, on a new one.
            try:
                return self._once(key, endpoint, method, headers, body, deadline)
            except _BrokeBeforeAnswer as broke:
                raise broke.error from None

    def abort(self) -> None:
        """End a call in progress on another thread now (it raises ``connection.Aborted``)."""
        self._abort.fire()

    def close(self) -> None:
        """Close the kept-alive connections; the requester stays usable."""
        with self._lock:
            connections, self._connections = self._connections, {}
            self._abort.watch(None)
        for connection in connections.values():
            connection.close()

    # -- one request --------------------------------------------------------------------------

    def _once(
        self,
        key: tuple[str, str, int],
        endpoint: Endpoint,
        method: str,
        headers: dict[str, str],
        body: bytes,
        deadline: float,
    ) -> tuple[int, dict[str, str], bytes]:
        connection = self._connections.pop(key, None)
        if connection is not None and connection.has_unread_bytes():
            connection.close()  # closed by the server while idle (or something unasked)
            connection = None
        if connection is None:
            connector = self._connectors.get(key)
            if connector is None:
                tls = self._context() if endpoint.https else None
                connector = self._connectors[key] = Connector(endpoint, tls)
            connection = connector.open(deadline, self._abort)
        else:
            self._abort.watch(connection.sock)
        received_before = connection.reader.received
        try:
            head = _request_head(endpoint, connection.proxied, method, headers, body)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("timed out before sending")
            connection.sock.settimeout(remaining)
            connection.reader.deadline = deadline
            connection.sock.sendall(head + body)
            connection.quickack()
            status, response_headers = read_head(connection.reader)
            answer, whole = read_body(connection.reader, status, response_headers, MAX_BODY_BYTES)
            if not whole and len(answer) >= MAX_BODY_BYTES:
                raise ConnectionError(f"the answer is larger than {MAX_BODY_BYTES} bytes")
        except MalformedResponse as exc:
            self._discard(connection)
            raise ConnectionError(f"bad HTTP response: {exc}") from None
        except OSError as exc:
            self._discard(connection)
            if type(exc).__name__ == "timeout" and not isinstance(exc, TimeoutError):
                raise TimeoutError(str(exc)) from None  # socket.timeout before Python 3.10
            if connection.reader.received == received_before and not isinstance(exc, TimeoutError):
                raise _BrokeBeforeAnswer(exc) from None
            raise
        except BaseException:
            self._discard(connection)
            raise
        if whole and keeps_alive(response_headers):
            self._abort.watch(None)
            self._connections[key] = connection
        else:
            self._discard(connection)
        return status, response_headers, answer

    def _discard(self, connection: Connection) -> None:
        self._abort.watch(None)
        connection.close()

    def _endpoint(self, url: str, timeout: float) -> Endpoint:
        """The URL as the ``Connector`` wants it: host, port, TLS, and its proxy."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            raise ValueError(f"not an http:// or https:// URL: {scheme}://")
        host = parts.hostname or ""
        try:
            port = parts.port or DEFAULT_PORTS[scheme]
        except ValueError:
            raise ValueError(f"bad port in the URL for {host}") from None
        if not host:
            raise ValueError("no host in the URL")
        authority = parts.netloc.rpartition("@")[2]
        return endpoint_for(
            scheme,
            host,
            port,
            (parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
            timeout_seconds=timeout,
            tls_verify=True,
            ca_bundle=self._ca_bundle,
            proxy=proxy_for(self._proxy_env, scheme, authority) if self._proxy_env else None,
            url=url,
        )

    def _context(self) -> object:
        if self._tls_context is None:
            import ssl

            self._tls_context = ssl.create_default_context(cafile=self._ca_bundle or None)
        return self._tls_context


class _BrokeBeforeAnswer(Exception):
    """The connection failed before any byte of an answer (worth one more try if reused)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def _request_head(
    endpoint: Endpoint, proxied: bool, method: str, headers: dict[str, str], body: bytes
) -> bytes:
    given = {name.lower() for name in headers}
    lines = [f"{method} {_target(endpoint, proxied)} HTTP/1.1"]
    if "host" not in given:
        lines.append(f"Host: {endpoint.host_header}")
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            raise ValueError(f"header {name!r} holds a line break or a colon")
        if name.lower() != "content-length":
            lines.append(f"{name}: {value}")
    if "user-agent" not in given:
        lines.append(f"User-Agent: {USER_AGENT}")
    proxy = endpoint.proxy
    if proxied and proxy is not None and proxy.authorization:
        lines.append(f"Proxy-Authorization: {proxy.authorization}")
    if body or method not in ("GET", "HEAD"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _target(endpoint: Endpoint, proxied: bool) -> str:
    """Origin form, or the absolute form an ``http://`` URL takes through a proxy."""
    if proxied:
        return f"http://{endpoint.host_header}{endpoint.target}"
    return endpoint.target
