"""A Werkzeug receiver: ``Request``/``Response`` wrappers on Werkzeug's threaded server.

Prints ``LISTENING <port>`` once ready (``make_server`` on port 0).
"""

from __future__ import annotations

from record import record
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


@Request.application
def app(request: Request) -> Response:
    if request.method == "POST":
        record(request.headers.items(), request.get_data())
        return Response('{"ok": true}', content_type="application/json")
    return Response("ready")


if __name__ == "__main__":
    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(f"LISTENING {server.server_port}", flush=True)
    server.serve_forever()
