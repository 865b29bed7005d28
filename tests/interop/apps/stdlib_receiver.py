"""A webhook receiver the way countless small ones are written: CPython's ``http.server``.

``python stdlib_receiver.py [--http11] [--nodelay] [--tls CERT KEY]`` prints ``LISTENING
<port>`` once ready. The handler is the textbook one: ``send_response``, ``send_header``,
``end_headers``, then ``wfile.write(body)`` — the head and the body leave in two writes, and
with ``--http11`` on a kept-alive connection with Nagle on (``disable_nagle_algorithm`` is
False unless ``--nodelay``). ``--http11`` sets ``protocol_version = "HTTP/1.1"``; without it the
server speaks HTTP/1.0 and closes each connection after its answer.
"""

from __future__ import annotations

import argparse
import ssl
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from record import record


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        record(self.headers.items(), body)
        answer = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def do_GET(self) -> None:  # noqa: N802
        answer = b"ready"
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http11", action="store_true")
    parser.add_argument("--nodelay", action="store_true")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    args = parser.parse_args()
    if args.http11:
        Handler.protocol_version = "HTTP/1.1"
    Handler.disable_nagle_algorithm = args.nodelay
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if args.tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*args.tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"LISTENING {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
