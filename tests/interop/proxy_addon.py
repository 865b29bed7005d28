"""mitmdump addon for the interoperability suite's forward-proxy rows (runs inside mitmdump).

``mitmdump --mode regular -s proxy_addon.py --set interop_dir=DIR``:

* records every request it proxies to ``DIR/events.jsonl``: ``{"event": "connect", "host",
  "port"}`` for a ``CONNECT`` tunnel, ``{"event": "request", "method", "url"}`` for an
  absolute-form request;
* routes the hosts named in ``DIR/routes.json`` (``{"name:port": ["127.0.0.1", port]}``) to a
  local address, so an endpoint named ``*.invalid`` — which never resolves (RFC 6761) — is
  reachable through the proxy and only through it, as from a Lambda function in a VPC without
  NAT;
* passes TLS inside a tunnel through untouched (``ignore_connection``): the client's handshake
  is with the endpoint itself, so it verifies the endpoint's certificate and name;
* writes ``DIR/ready.json`` with the port once listening (it listens on port 0).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Optional

from mitmproxy import ctx, http, tls


class InteropProxy:
    def __init__(self) -> None:
        self.directory: Path | None = None
        self.routes: dict[str, list[Any]] = {}

    def load(self, loader: Any) -> None:
        loader.add_option("interop_dir", Optional[str], None,
                          "Directory of routes.json, events.jsonl and ready.json.")

    def configure(self, updated: set[str]) -> None:
        if "interop_dir" in updated and ctx.options.interop_dir:
            self.directory = Path(ctx.options.interop_dir)
            routes = self.directory / "routes.json"
            if routes.exists():
                self.routes = json.loads(routes.read_text(encoding="utf-8"))

    def running(self) -> None:
        assert self.directory is not None, "interop_dir is required"
        port = int(ctx.master.addons.get("proxyserver").listen_addrs()[0][1])
        ready = self.directory / "ready.json.tmp"
        ready.write_text(json.dumps({"port": port, "pid": os.getpid()}), encoding="utf-8")
        os.replace(ready, self.directory / "ready.json")

    def http_connect(self, flow: http.HTTPFlow) -> None:
        self._event({"event": "connect", "host": flow.request.host, "port": flow.request.port})
        self._route(flow)

    def request(self, flow: http.HTTPFlow) -> None:
        self._event({"event": "request", "method": flow.request.method,
                     "url": flow.request.pretty_url})
        self._route(flow)

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        data.ignore_connection = True

    def _route(self, flow: http.HTTPFlow) -> None:
        target = self.routes.get(f"{flow.request.host}:{flow.request.port}")
        if target is None:
            return
        host_header = flow.request.host_header
        flow.request.host, flow.request.port = target[0], int(target[1])
        flow.request.host_header = host_header  # the endpoint still sees its own name

    def _event(self, event: dict[str, Any]) -> None:
        assert self.directory is not None
        event["time"] = time.time()
        with (self.directory / "events.jsonl").open("a", encoding="utf-8") as out:
            out.write(json.dumps(event) + "\n")


addons = [InteropProxy()]
