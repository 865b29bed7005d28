"""The real servers of the interoperability suite: receivers, fronts and forward proxies.

Every one is a process of its own, started in a session of its own and stopped by PID (its
process group: SIGTERM, then SIGKILL) in bounded time, with its output in a log file beside it.
Ports come from port 0 wherever the server reports the port it bound (the apps print
``LISTENING <port>``; gunicorn, uvicorn and hypercorn log it). Not by handing them a socket bound
here: uvicorn takes a ``--fd`` socket for a Unix one and leaves Nagle on, which no TCP
deployment of it does. nginx, Caddy and tinyproxy get a probed free port and a retry when it
was taken meanwhile.

The receiver apps (``apps/``) are written each framework's ordinary way and answer 200 with a
small JSON body; each appends what it received to ``INTEROP_RECORD`` as JSON lines, the shape
``tests/faults/harness.Tally`` counts.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.support.faults import find_mitmdump
from tests.support.nginx import Nginx
from tests.support.process import accepts, free_port, stop_group, tail, wait_until

APPS = Path(__file__).with_name("apps")
PROXY_ADDON = Path(__file__).with_name("proxy_addon.py")

START_TIMEOUT = 30.0
"""Seconds a server gets to listen (a Python framework imports in ~0.3-1.5 s on a busy 2-core
machine; mitmdump in ~1-2 s)."""

PORT_ATTEMPTS = 3
"""Fresh ports tried by servers that cannot bind port 0 themselves."""


class ServerError(RuntimeError):
    """A server did not start; the message carries the end of its log."""


# --- what is installed -------------------------------------------------------------------------


def missing_module(*modules: str) -> str | None:
    """The first of ``modules`` not importable by this Python, None when all are."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            return module
    return None


def missing_program(*programs: str) -> str | None:
    for program in programs:
        if shutil.which(program) is None:
            return program
    return None


# --- one process -------------------------------------------------------------------------------


class Process:
    """A server process owned by a test; ``stop()`` is safe to call twice."""

    def __init__(self, argv: Sequence[str], directory: Path, name: str, *,
                 env: dict[str, str] | None = None, pass_fds: Sequence[int] = (),
                 cwd: Path = APPS) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log = directory / f"{name}.log"
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, pass_fds=tuple(pass_fds), cwd=cwd,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            )

    @property
    def pid(self) -> int:
        return self._process.pid

    def running(self) -> bool:
        return self._process.poll() is None

    def wait_for(self, pattern: str, timeout: float = START_TIMEOUT) -> re.Match[str]:
        """The first match of ``pattern`` in the log, waiting for it; ServerError if the process
        exits or the time runs out first."""
        regex = re.compile(pattern)
        found: list[re.Match[str]] = []

        def seen() -> bool:
            match = regex.search(tail(self.log, 1 << 16))
            if match:
                found.append(match)
            return bool(match) or not self.running()

        wait_until(seen, timeout, interval=0.02)
        if not found:
            self.stop()
            raise ServerError(f"{self.name} did not start: {tail(self.log)}")
        return found[0]

    def stop(self) -> None:
        stop_group(self._process)


# --- receivers ---------------------------------------------------------------------------------


class Receiver:
    """An HTTP endpoint under test that records what it gets: its URL, its CA (TLS), its record
    file, and every process behind it (stopped together, front first)."""

    def __init__(self, url: str, record: Path, processes: list[Any],
                 ca_file: Path | None = None) -> None:
        self.url = url
        self.record = record
        self.processes = processes
        self.ca_file = ca_file

    @property
    def port(self) -> int:
        return int(self.url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


def _record_file(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    record = directory / f"{name}.received.jsonl"
    record.touch()
    return record


LISTENING = r"LISTENING (\d+)"
"""What the apps of ``apps/`` print once ready."""


def app_receiver(name: str, argv: Sequence[str], directory: Path, *, tls_ca: Path | None = None,
                 path: str = "/ingest", listening: str = LISTENING) -> Receiver:
    """A server started on port 0 that says which port it got in its output: ``listening``
    matches it (group 1). The apps print ``LISTENING <port>``; gunicorn, uvicorn and hypercorn
    log the address they bound."""
    record = _record_file(directory, name)
    process = Process(argv, directory, name, env={"INTEROP_RECORD": str(record)})
    port = int(process.wait_for(listening)[1])
    scheme = "https" if tls_ca else "http"
    return Receiver(f"{scheme}://127.0.0.1:{port}{path}", record, [process], tls_ca)


def python_app(script: str, *args: str) -> list[str]:
    return [sys.executable, str(APPS / script), *args]


def capture_receiver(directory: Path) -> Any:
    """The project's own capture receiver (one write per answer, Nagle off): the receiver behind
    the fronts, whose own shape then drops out of their figures."""
    from tools.lambda_sandbox.receiver import Receiver as Capture

    directory.mkdir(parents=True, exist_ok=True)
    return Capture(directory)


class _Front:
    """A process in front of a capture receiver, stopped before it."""

    def __init__(self, front: Any, behind: Any) -> None:
        self._front, self._behind = front, behind

    def stop(self) -> None:
        self._front.stop()
        self._behind.stop()


def nginx_front(directory: Path, tls: Any, basic_auth: tuple[str, str] | None) -> Receiver:
    """Real nginx (``tests/support/nginx``: TLS, basic auth, keep-alive upstream) as a reverse
    proxy in front of the capture receiver."""
    capture = capture_receiver(directory / "capture")
    try:
        nginx = Nginx(capture.port, directory, tls=tls, basic_auth=basic_auth)
    except BaseException:
        capture.stop()
        raise
    return Receiver(nginx.url, capture.record, [_Front(nginx, capture)], nginx.ca_file)


# --- nginx answering itself --------------------------------------------------------------------

_NGINX_SINK = """\
daemon off;
master_process on;
worker_processes 1;
{user}
pid {dir}/nginx.pid;
error_log {dir}/error.log info;

events {{
    worker_connections 128;
}}

http {{
    access_log off;
    client_body_temp_path {dir}/tmp/client_body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    # One JSON line per request: what tests/faults/harness.Tally counts.
    log_format received escape=json
        '{{"headers":{{"idempotency-key":"$http_idempotency_key"}},"body":"$request_body"}}';

    server {{
        listen 127.0.0.1:{port};
        location = /ingest {{
            # $request_body is kept only for a body read into one memory buffer.
            client_max_body_size 16m;
            client_body_buffer_size 16m;
            client_body_in_single_buffer on;
            access_log {record} received;
            proxy_pass http://127.0.0.1:{sink_port}/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
        location / {{
            return 200 "ready";
        }}
    }}

    server {{
        listen 127.0.0.1:{sink_port};
        location / {{
            default_type application/json;
            return 200 '{{"ok": true}}';
        }}
    }}
}}
"""


class NginxSink(Nginx):
    """nginx as the receiver itself: it reads each body (passing it to a ``return 200`` of its
    own, the way nginx reads a body at all) and logs it as a JSON line."""

    def __init__(self, directory: Path) -> None:
        self.record = _record_file(directory, "nginx")
        super().__init__(0, directory, tls=False, basic_auth=None)

    def _config(self, port: int) -> str:
        user = "user root root;" if os.geteuid() == 0 else ""
        return _NGINX_SINK.format(dir=self.directory, port=port, sink_port=free_port(),
                                  record=self.record, user=user)


def nginx_sink(directory: Path) -> Receiver:
    sink = NginxSink(directory)
    return Receiver(sink.url, sink.record, [sink])


# --- Caddy -------------------------------------------------------------------------------------

_CADDYFILE = """\
{{
    admin off
    auto_https disable_redirects
    skip_install_trust
    storage file_system {data}
    http_port {http_port}
    https_port {port}
}}

https://127.0.0.1:{port} {{
    tls internal
    reverse_proxy 127.0.0.1:{upstream}
}}
"""


class Caddy:
    """Caddy with its own CA (``tls internal``), no admin endpoint, reverse-proxying to
    ``upstream``. ``ca_file`` is the root it made (trust it to verify the endpoint)."""

    def __init__(self, upstream: int, directory: Path) -> None:
        self.directory = directory / f"caddy-{upstream}"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ca_file = self.directory / "data" / "pki" / "authorities" / "local" / "root.crt"
        self._process: Process | None = None
        for _ in range(PORT_ATTEMPTS):
            self.port = free_port()
            config = self.directory / "Caddyfile"
            config.write_text(_CADDYFILE.format(data=self.directory / "data", port=self.port,
                                                http_port=free_port(), upstream=upstream))
            home = str(self.directory / "home")
            self._process = Process(
                ["caddy", "run", "--config", str(config), "--adapter", "caddyfile"],
                self.directory, "caddy", cwd=self.directory,
                env={"HOME": home, "XDG_CONFIG_HOME": home, "XDG_DATA_HOME": home})
            process = self._process
            if wait_until(lambda process=process: (accepts(self.port) and self.ca_file.exists())
                          or not process.running(), START_TIMEOUT) and process.running():
                return
            self.stop()
            if "address already in use" not in tail(process.log):
                break
        raise ServerError(f"caddy did not start: {tail(self.directory / 'caddy.log')}")

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/ingest"

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()


def caddy_front(directory: Path) -> Receiver:
    capture = capture_receiver(directory / "capture")
    try:
        caddy = Caddy(capture.port, directory)
    except BaseException:
        capture.stop()
        raise
    return Receiver(caddy.url, capture.record, [_Front(caddy, capture)], caddy.ca_file)


# --- forward proxies ---------------------------------------------------------------------------


class Tinyproxy:
    """tinyproxy (``-d``: in the foreground) on 127.0.0.1, optionally requiring basic auth.

    ``requests()`` lists what it was asked, from its log: ``("POST", "http://…")`` for an
    absolute-form request, ``("CONNECT", "host:port")`` for a tunnel.
    """

    _REQUEST = re.compile(r"Request \(file descriptor \d+\): (\S+) (\S+) HTTP/")

    def __init__(self, directory: Path, credentials: tuple[str, str] | None = None) -> None:
        self.directory = directory / "tinyproxy"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.credentials = credentials
        self.log = self.directory / "tinyproxy.log"
        self._process: Process | None = None
        for _ in range(PORT_ATTEMPTS):
            self.port = free_port()
            config = self.directory / "tinyproxy.conf"
            lines = [f"Port {self.port}", "Listen 127.0.0.1", "Timeout 60",
                     f'LogFile "{self.log}"', "LogLevel Info", "MaxClients 32",
                     "Allow 127.0.0.1", f'PidFile "{self.directory / "tinyproxy.pid"}"']
            if credentials:
                lines.append(f"BasicAuth {credentials[0]} {credentials[1]}")
            config.write_text("\n".join(lines) + "\n")
            self._process = Process(["tinyproxy", "-d", "-c", str(config)], self.directory,
                                    "tinyproxy-stdout", cwd=self.directory)
            process = self._process
            if wait_until(lambda process=process: accepts(self.port) or not process.running(),
                          START_TIMEOUT) and process.running():
                return
            self.stop()
            if "Address already in use" not in tail(self.log):
                break
        raise ServerError(f"tinyproxy did not start: {tail(self.log)}")

    def url(self, with_credentials: bool = True) -> str:
        auth = ""
        if with_credentials and self.credentials:
            auth = f"{self.credentials[0]}:{self.credentials[1]}@"
        return f"http://{auth}127.0.0.1:{self.port}"

    def requests(self) -> list[tuple[str, str]]:
        text = tail(self.log, 1 << 24)
        return [(m[1], m[2]) for m in self._REQUEST.finditer(text)]

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()


class MitmProxy:
    """mitmdump in regular (forward proxy) mode with ``proxy_addon.py``: routes ``routes``
    (``{"name:port": ("127.0.0.1", port)}``) and records what it was asked."""

    def __init__(self, directory: Path, routes: dict[str, tuple[str, int]]) -> None:
        executable = find_mitmdump()
        if executable is None:
            raise ServerError("mitmdump not found (pip install -r requirements-dev.txt)")
        self.directory = directory / "mitmproxy"
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "routes.json").write_text(json.dumps(routes))
        self._process = Process(
            [executable, "--mode", "regular", "--listen-host", "127.0.0.1", "--listen-port", "0",
             "-s", str(PROXY_ADDON), "--set", f"interop_dir={self.directory}",
             "--set", f"confdir={self.directory / 'conf'}", "--set", "connection_strategy=lazy",
             "--set", "flow_detail=0", "--set", "termlog_verbosity=warn"],
            self.directory, "mitmdump", cwd=self.directory)
        ready = self.directory / "ready.json"
        process = self._process
        if not wait_until(lambda: ready.exists() or not process.running(), START_TIMEOUT,
                          interval=0.05) or not ready.exists():
            self.stop()
            raise ServerError(f"mitmdump did not start: {tail(process.log)}")
        self.port = int(json.loads(ready.read_text())["port"])

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self) -> list[tuple[str, str]]:
        path = self.directory / "events.jsonl"
        if not path.exists():
            return []
        seen = []
        for line in path.read_text(encoding="utf-8").splitlines():
            event = json.loads(line)
            if event["event"] == "connect":
                seen.append(("CONNECT", f"{event['host']}:{event['port']}"))
            else:
                seen.append((event["method"], event["url"]))
        return seen

    def stop(self) -> None:
        self._process.stop()
