"""A TCP server on 127.0.0.1 that hands each connection, one at a time, to ``serve``: the part
every scripted test server shares (bind, accept on a thread of its own, count, stop)."""

from __future__ import annotations

import socket
import threading


class AcceptLoopServer:
    """Subclasses implement ``serve(conn)``; an ``OSError`` from it ends only that connection
    (clients under test often close first). ``stop()`` joins the thread."""

    def __init__(self, connection_timeout: float) -> None:
        self.connections = 0
        self._connection_timeout = connection_timeout
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self._listener.settimeout(0.1)
        self.port = int(self._listener.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop)
        self._thread.start()

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(3)
        self._listener.close()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            self.connections += 1
            with conn:
                conn.settimeout(self._connection_timeout)
                try:
                    self.serve(conn)
                except OSError:
                    pass
