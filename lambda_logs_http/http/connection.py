"""Opening a connection to the receiver — resolve, connect, tunnel, TLS — bounded and abortable.

Every step has the same deadline (the caller's) and watches the same abort signal, so a
receiver that never answers, a connect that never completes (a VPC without a route), a TLS
handshake that never finishes or a proxy that never replies costs at most the time the caller
can afford, and shutdown can end it at once:

* the name is resolved on a short-lived thread (``getaddrinfo`` cannot be interrupted), waited
  for with the deadline; literal addresses skip it, and answers are kept for a minute;
* the connect and the TLS handshake run on a non-blocking socket, waiting in ``poll`` on the
  socket and the abort signal together;
* through a proxy, ``CONNECT`` opens a tunnel for ``https://`` endpoints; TLS then runs end to
  end, verified against the endpoint's own name (and SNI set to it).

Once open, the connection is a blocking socket with a timeout (``Reader`` bounds the whole
answer); ``Abort.fire`` shuts it down to wake a blocked send or receive. The receive side
re-arms ``TCP_QUICKACK`` after each read, and the transport after each request it writes: a
receiver that writes its answer's head and body separately with Nagle on (CPython's
``http.server``, among others) would otherwise wait ~40 ms on our delayed ACK per answer.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import threading
import time

from .response import NoResponse, Reader, read_body, read_head

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..settings.model import Endpoint, Proxy

# How long a resolved address is reused: reconnections are rare (keep-alive), but an endpoint
# behind a load balancer may move.
DNS_TTL_SECONDS = 60.0
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux; elsewhere delayed ACKs stay
_MAX_PROXY_ERROR_BODY = 512


class Aborted(OSError):
    """The caller gave up (``Abort.fire``): not a failure of the receiver."""


class ProxyRefused(OSError):
    """The proxy answered ``CONNECT`` with something other than 2xx."""

    def __init__(self, status: int, detail: bytes) -> None:
        super().__init__(f"the proxy answered CONNECT with {status}")
        self.status = status
        self.detail = detail


class Abort:
    """A signal another thread can fire to end the current network step at once."""

    def __init__(self) -> None:
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self.fired = False
        self._socket: socket.socket | None = None  # the open connection, to shut down
        self._lock = threading.Lock()

    def fileno(self) -> int:
        return self._reader.fileno()

    def fire(self) -> None:
        with self._lock:
            self.fired = True
            try:
                self._writer.send(b"x")
            except OSError:
                pass  # already fired (the buffer holds a byte) or closed
            sock = self._socket
        if sock is not None:
            try:
                # shutdown(), unlike close(), wakes a thread blocked in recv() or send(). The
                # plain socket's: SSLSocket.shutdown() first drops the TLS layer, and a send()
                # racing with it could then write in clear text.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass

    def reset(self) -> None:
        """Ready for the next send (called by the thread that sends)."""
        with self._lock:
            self.fired = False
            try:
                while self._reader.recv(64):
                    pass
            except (BlockingIOError, InterruptedError):
                pass

    def watch(self, sock: socket.socket | None) -> None:
        """``fire`` shuts ``sock`` down from now on (None: nothing to shut down)."""
        with self._lock:
            self._socket = sock
            fired = self.fired
        if fired and sock is not None:
            self.fire()

    def check(self) -> None:
        if self.fired:
            raise Aborted("send aborted")

    def close(self) -> None:
        self._reader.close()
        self._writer.close()


class Connection:
    """One open connection and the reader that owns its unread bytes."""

    __slots__ = ("sock", "reader", "proxied")

    def __init__(self, sock: socket.socket, proxied: bool) -> None:
        self.sock = sock
        self.reader = Reader(_QuickAckReads(sock))
        self.proxied = proxied  # requests go in absolute form to an http:// proxy

    def quickack(self) -> None:
        """ACK at once whatever arrives next (the kernel falls back to delayed ACKs)."""
        if _QUICKACK is not None:
            try:
                self.sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:
                pass

    def wait_readable(self, timeout: float) -> bool:
        """Whether something arrives within ``timeout`` seconds (or is already buffered)."""
        if self.reader.buffered:
            return True
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        return bool(poller.poll(max(0, int(timeout * 1000))))

    def has_unread_bytes(self) -> bool:
        """Readable while idle: closed by the peer, or something unasked (an idle 408)."""
        poller = select.poll()  # not select.select(): no limit on descriptor numbers
        poller.register(self.sock, select.POLLIN)
        try:
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True  # closed under us: not reusable either

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class _QuickAckReads:
    """The socket as ``Reader`` sees it, re-arming ``TCP_QUICKACK`` after every read."""

    __slots__ = ("_sock",)

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def recv(self, size: int) -> bytes:
        data = self._sock.recv(size)
        if _QUICKACK is not None and data:
            try:
                self._sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:
                pass
        return data

    def settimeout(self, value: float | None) -> None:
        self._sock.settimeout(value)


class Connector:
    """Opens connections to one endpoint, directly or through its proxy."""

    def __init__(self, endpoint: Endpoint, tls_context: object | None) -> None:
        self._endpoint = endpoint
        self._proxy: Proxy | None = endpoint.proxy
        self._tls_context = tls_context  # an ssl.SSLContext for https://, else None
        self._resolved: dict[tuple[str, int], tuple[float, list[tuple]]] = {}

    def open(self, deadline: float, abort: Abort) -> Connection:
        endpoint, proxy = self._endpoint, self._proxy
        host, port = (proxy.host, proxy.port) if proxy else (endpoint.host, endpoint.port)
        sock = self._connect(host, port, deadline, abort)
        try:
            if proxy is not None and endpoint.https:
                self._tunnel(sock, deadline, abort)
            if endpoint.https:
                sock = self._tls(sock, deadline, abort)
            sock.setblocking(True)
            abort.watch(sock)
            abort.check()
        except BaseException:
            abort.watch(None)
            sock.close()
            raise
        return Connection(sock, proxied=proxy is not None and not endpoint.https)

    # -- the steps ----------------------------------------------------------------------------

    def _connect(self, host: str, port: int, deadline: float, abort: Abort) -> socket.socket:
        error: OSError | None = None
        for family, kind, proto, _, address in self._resolve(host, port, deadline, abort):
            sock = socket.socket(family, kind, proto)
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                code = sock.connect_ex(address)
                if code not in (0, errno.EINPROGRESS, errno.EAGAIN):
                    raise OSError(code, os.strerror(code))
                if code:
                    _wait(sock, select.POLLOUT, deadline, abort, "connecting")
                    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if code:
                        raise OSError(code, os.strerror(code))
                return sock
            except (Aborted, TimeoutError):
                sock.close()
                raise
            except OSError as exc:
                sock.close()
                error = exc
        raise error or OSError(f"no address for {host}")

    def _resolve(self, host: str, port: int, deadline: float, abort: Abort) -> list[tuple]:
        for family in (socket.AF_INET, socket.AF_INET6):
            try:
                socket.inet_pton(family, host)
            except OSError:
                continue
            return socket.getaddrinfo(_ascii(host), port, family, socket.SOCK_STREAM)  # no lookup
        cached = self._resolved.get((host, port))
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        answers = _lookup(host, port, deadline, abort)
        self._resolved[(host, port)] = (time.monotonic() + DNS_TTL_SECONDS, answers)
        return answers

    def _tunnel(self, sock: socket.socket, deadline: float, abort: Abort) -> None:
        """``CONNECT host:port`` through the proxy; returns once the tunnel is open."""
        proxy = self._proxy
        assert proxy is not None
        target = (
            self._endpoint.host_header
            if ":" in self._endpoint.host_header
            else (f"{self._endpoint.host_header}:{self._endpoint.port}")
        )
        lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
        if proxy.authorization:
            lines.append(f"Proxy-Authorization: {proxy.authorization}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        sock.setblocking(True)
        abort.watch(sock)
        try:
            remaining = _remaining(deadline, "connecting to the proxy")
            sock.settimeout(remaining)
            sock.sendall(request)
            reader = Reader(sock)
            reader.deadline = deadline
            try:
                status, headers = read_head(reader)
            except NoResponse:
                raise ConnectionError("the proxy closed the connection") from None
            if not 200 <= status < 300:
                detail, _ = read_body(reader, status, headers, _MAX_PROXY_ERROR_BODY)
                raise ProxyRefused(status, detail)
        finally:
            abort.watch(None)
        abort.check()
        sock.setblocking(False)

    def _tls(self, sock: socket.socket, deadline: float, abort: Abort) -> socket.socket:
        import ssl

        assert self._tls_context is not None
        tls = self._tls_context.wrap_socket(  # type: ignore[attr-defined]
            sock, server_hostname=self._endpoint.host, do_handshake_on_connect=False
        )
        while True:
            try:
                tls.do_handshake()
                return tls
            except ssl.SSLWantReadError:
                _wait(tls, select.POLLIN, deadline, abort, "the TLS handshake")
            except ssl.SSLWantWriteError:
                _wait(tls, select.POLLOUT, deadline, abort, "the TLS handshake")


def _remaining(deadline: float, step: str) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError(f"timed out {step}")
    return remaining


def _wait(sock: socket.socket, events: int, deadline: float, abort: Abort, step: str) -> None:
    """Until ``sock`` is ready for ``events``, the deadline (TimeoutError) or the abort."""
    poller = select.poll()
    poller.register(sock, events)
    poller.register(abort, select.POLLIN)
    while True:
        abort.check()
        remaining = _remaining(deadline, step)
        ready = poller.poll(max(1, int(remaining * 1000) + 1))
        abort.check()
        if any(fd == sock.fileno() for fd, _ in ready):
            return


def _ascii(host: str) -> bytes | str:
    """The name as bytes when it is ASCII: a ``str`` goes through the ``idna`` codec, whose
    import (with ``stringprep``) costs ~2 ms of CPU with the first send; the same bytes."""
    return host.encode("ascii") if host.isascii() else host


def _lookup(host: str, port: int, deadline: float, abort: Abort) -> list[tuple]:
    """``getaddrinfo`` on a thread of its own, waited for until the deadline or the abort.

    A lookup that outlives its caller is left to finish alone (it is a daemon thread holding
    nothing but its answer): the resolver's own timeouts end it.
    """
    done_reader, done_writer = socket.socketpair()
    outcome: list[object] = []

    def resolve() -> None:
        try:
            outcome.append(socket.getaddrinfo(_ascii(host), port, 0, socket.SOCK_STREAM))
        except OSError as exc:
            outcome.append(exc)
        finally:
            try:
                done_writer.send(b"x")
            except OSError:
                pass  # the caller gave up and closed it
            done_writer.close()

    thread = threading.Thread(target=resolve, name="lambda-logs-http-resolve", daemon=True)
    try:
        thread.start()
        _wait(done_reader, select.POLLIN, deadline, abort, f"resolving {host}")
    finally:
        done_reader.close()
    result = outcome[0]
    if isinstance(result, OSError):
        raise result
    return result  # type: ignore[return-value]
