"""Receivers that never answer, of the three kinds a VPC or a broken receiver produces.

* ``SilentServer``: accepts the connection, reads what comes, never answers (a hung receiver);
  with ``tls=True`` the same is a TLS server that never completes its handshake, since it never
  says a word back to the ClientHello.
* ``FullBacklog``: a listening socket whose accept queue is full and never drained: a new
  connection's SYN gets no answer, so the connect never completes (what a VPC without a route
  to the endpoint looks like from inside).

All are in-process sockets on 127.0.0.1, owned by the test, closed in ``stop``.
"""

from __future__ import annotations

import select
import socket
import threading


class SilentServer:
    """Accepts and reads, never answers; ``connections`` counts what it accepted."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = int(self._listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}/ingest"
        self.https_url = f"https://127.0.0.1:{self.port}/ingest"
        self.connections = 0
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="silent-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        poller = select.poll()
        poller.register(self._listener, select.POLLIN)
        sockets = {self._listener.fileno(): self._listener}
        while not self._stop.is_set():
            for fd, _ in poller.poll(100):
                sock = sockets.get(fd)
                if sock is self._listener:
                    conn, _ = self._listener.accept()
                    self.connections += 1
                    self._held.append(conn)
                    sockets[conn.fileno()] = conn
                    poller.register(conn, select.POLLIN)
                elif sock is not None:
                    try:
                        data = sock.recv(65536)  # read, so the client's writes never block
                    except OSError:
                        data = b""
                    if not data:
                        poller.unregister(fd)
                        sockets.pop(fd, None)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for conn in self._held:
            conn.close()
        self._listener.close()

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class FullBacklog:
    """A port where a connect never completes: the accept queue is full and never drained."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        self.port = int(self._listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}/ingest"
        self._fillers: list[socket.socket] = []
        # Fill the queue until a connect no longer completes at once.
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", self.port))
            self._fillers.append(filler)
            if not select.select([], [filler], [], 0.2)[1]:
                break  # this one hangs: the queue is full
        else:
            raise RuntimeError("could not fill the listen backlog")

    def stop(self) -> None:
        for filler in self._fillers:
            filler.close()
        self._listener.close()

    def __enter__(self) -> FullBacklog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
