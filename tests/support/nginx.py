"""A real nginx in front of the capture receiver: TLS termination, basic auth, a body size limit.

This is what a production log endpoint often looks like, so the extension is tested against the
real thing: nginx's TLS stack, its 401 for missing or wrong credentials, and its 413 for bodies
over ``client_max_body_size`` (checked from Content-Length before auth, so an oversized request
gets 413 even without credentials). nginx buffers each request body (its default) and sends it
upstream with a Content-Length, so the receiver always gets a plain body, even for a chunked
request; Content-Encoding and every other request header pass through unchanged.

nginx runs in the foreground (``daemon off``) with every path, the temp directories and the pid
and error log files included, under the instance's directory, so nothing needs root-owned paths.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
from pathlib import Path

from tests.support.process import accepts, free_port, stop_group, tail, wait_until
from tests.support.tls import TlsMaterial, make_tls_material

START_TIMEOUT = 10.0
"""Seconds nginx gets to accept connections (it usually takes ~20 ms)."""

PORT_ATTEMPTS = 3
"""Fresh ports tried when the one picked was taken in the meantime ("Address already in use")."""

_CONFIG = """\
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
    access_log {dir}/access.log;
    client_body_temp_path {dir}/tmp/client_body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;

    upstream receiver {{
        server 127.0.0.1:{upstream_port};
        keepalive 8;
    }}

    server {{
        listen 127.0.0.1:{port}{ssl};
        server_name localhost;
        {tls}
        client_max_body_size {client_max_body_size};

        location / {{
            {auth}
            proxy_pass http://receiver;
            # HTTP/1.1 without "Connection: close" keeps upstream connections alive.
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_buffering off;
            proxy_read_timeout {proxy_read_timeout_ms}ms;
        }}
    }}
}}
"""


def nginx_available() -> bool:
    """Whether ``nginx`` and ``htpasswd`` are on PATH (Debian: nginx-light, apache2-utils)."""
    return shutil.which("nginx") is not None and shutil.which("htpasswd") is not None


def require_nginx() -> None:
    """Skip the calling test, saying what to install, when nginx or htpasswd is missing."""
    import pytest

    if not nginx_available():
        pytest.skip("nginx or htpasswd is not installed "
                    "(Debian: apt-get install nginx-light apache2-utils)")


class Nginx:
    """An nginx process owned by a test, reverse-proxying to ``127.0.0.1:upstream_port``.

    ``tls``: ``True`` generates certificates in ``tmp_dir``; a ``TlsMaterial`` reuses them (the
    session fixture's); ``False`` serves plain HTTP. ``basic_auth``: ``(user, password)`` to
    require, ``None`` for none. ``client_max_body_size``: nginx syntax ("1m", "512k"; "0" means
    unlimited). ``proxy_read_timeout``: seconds nginx waits for the receiver before a 504.
    """

    def __init__(
        self,
        upstream_port: int,
        tmp_dir: Path,
        tls: bool | TlsMaterial = True,
        basic_auth: tuple[str, str] | None = ("user", "pass"),
        client_max_body_size: str = "1m",
        proxy_read_timeout: float = 30.0,
    ) -> None:
        self.directory = tmp_dir / f"nginx-{upstream_port}-{id(self):x}"
        (self.directory / "tmp").mkdir(parents=True)
        if tls is True:
            tls = make_tls_material(self.directory / "tls")
        self.tls: TlsMaterial | None = tls or None
        self.basic_auth = basic_auth
        self.upstream_port = upstream_port
        self.error_log = self.directory / "error.log"
        if basic_auth is not None:
            self._write_htpasswd(*basic_auth)
        self._process: subprocess.Popen[bytes] | None = None
        self._settings = {
            "client_max_body_size": client_max_body_size,
            "proxy_read_timeout_ms": int(proxy_read_timeout * 1000),
        }
        started = time.monotonic()
        self.port = self._start()
        self.started_in = time.monotonic() - started
        """Seconds from launch to accepting connections (config written, ports retried)."""

    @property
    def pid(self) -> int:
        """PID of the nginx master (its workers are its children)."""
        assert self._process is not None
        return self._process.pid

    @property
    def url(self) -> str:
        """Ingest URL: ``https://127.0.0.1:PORT/ingest`` (``http://`` without TLS)."""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/ingest"

    @property
    def ca_file(self) -> Path | None:
        """The CA a client must trust, ``None`` without TLS."""
        return self.tls.ca_file if self.tls else None

    @property
    def authorization(self) -> str | None:
        """The ``Authorization`` header value for the configured credentials."""
        if self.basic_auth is None:
            return None
        token = base64.b64encode(":".join(self.basic_auth).encode()).decode()
        return f"Basic {token}"

    def stop(self) -> None:
        """Stop master and workers (SIGTERM, then SIGKILL to the group). Safe to call twice."""
        if self._process is not None:
            stop_group(self._process)

    def __enter__(self) -> Nginx:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start(self) -> int:
        for _ in range(PORT_ATTEMPTS):
            port = free_port()
            if self._launch(port):
                return port
            self.stop()
            if "Address already in use" not in tail(self.error_log):
                break
        raise RuntimeError(f"nginx did not start: {tail(self.error_log)}")

    def _launch(self, port: int) -> bool:
        """Start nginx on ``port``; whether it accepts connections there in time."""
        config = self.directory / "nginx.conf"
        config.write_text(self._config(port), encoding="utf-8")
        with (self.directory / "stderr.log").open("ab") as stderr:
            # -e: the error log before the config is read; the default is /var/log/nginx.
            process = self._process = subprocess.Popen(
                ["nginx", "-c", str(config), "-p", str(self.directory), "-e", str(self.error_log)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        wait_until(lambda: accepts(port) or process.poll() is not None, START_TIMEOUT)
        return process.poll() is None and accepts(port)

    def _config(self, port: int) -> str:
        tls = ""
        if self.tls:
            tls = (f"ssl_certificate {self.tls.cert_file};\n"
                   f"        ssl_certificate_key {self.tls.key_file};")
        auth = ""
        if self.basic_auth is not None:
            auth = (f'auth_basic "ingest";\n'
                    f"            auth_basic_user_file {self.directory}/htpasswd;")
        user = ""
        if os.geteuid() == 0:
            # As root, nginx would run its workers as "nobody", which cannot read the key in a
            # 0700 pytest directory; running them as ourselves needs no privilege change.
            user = "user root root;"
        return _CONFIG.format(
            dir=self.directory, port=port, upstream_port=self.upstream_port,
            ssl=" ssl" if self.tls else "", tls=tls, auth=auth, user=user, **self._settings,
        )

    def _write_htpasswd(self, user: str, password: str) -> None:
        # -i reads the password from stdin, keeping it out of the process list; -m is Apache MD5
        # (apr1), which nginx checks itself, without relying on the libc's crypt() schemes.
        subprocess.run(
            ["htpasswd", "-c", "-i", "-m", str(self.directory / "htpasswd"), user],
            input=password.encode(), check=True, capture_output=True, timeout=10,
        )
