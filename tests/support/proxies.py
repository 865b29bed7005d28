"""Real forward proxies for the transport's proxy tests: tinyproxy (Debian) and mitmproxy.

Both take absolute-form requests for ``http://`` URLs and ``CONNECT`` tunnels for ``https://``
ones; each can require ``Proxy-Authorization`` credentials and keeps a log of what it did, so a
test can tell that a request really went through the proxy. Each runs on 127.0.0.1, owned by
the test that started it, stopped by PID (process group) in bounded time.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.support.faults import find_mitmdump
from tests.support.process import accepts, free_port, stop_group, tail, wait_until

START_TIMEOUT = 20.0


def tinyproxy_available() -> bool:
    return shutil.which("tinyproxy") is not None


class Tinyproxy:
    """``tinyproxy -d`` with a config of its own; ``credentials`` = (user, password) or None."""

    def __init__(self, tmp_dir: Path, credentials: tuple[str, str] | None = None) -> None:
        self.port = free_port()
        self.log = tmp_dir / f"tinyproxy-{self.port}.log"
        config = tmp_dir / f"tinyproxy-{self.port}.conf"
        lines = [f"Port {self.port}", "Listen 127.0.0.1", "Timeout 30", "MaxClients 50",
                 "Allow 127.0.0.1", "LogLevel Connect", "DisableViaHeader Yes",
                 f'LogFile "{self.log}"']
        if credentials:
            lines.append(f"BasicAuth {credentials[0]} {credentials[1]}")
        config.write_text("\n".join(lines) + "\n")
        self.url = f"http://127.0.0.1:{self.port}"
        self._process = subprocess.Popen(
            ["tinyproxy", "-d", "-c", str(config)], stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT, start_new_session=True)
        if not wait_until(lambda: accepts(self.port), START_TIMEOUT):
            self.stop()
            raise RuntimeError(f"tinyproxy did not start: {tail(self.log)}")

    def connections(self) -> list[str]:
        """The log lines that record a request or a tunnel it was asked for (with the URL)."""
        text = tail(self.log, 1_000_000)
        return [line for line in text.splitlines() if ": Request (file descriptor" in line]

    def stop(self) -> None:
        stop_group(self._process)

    def __enter__(self) -> Tinyproxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class MitmForwardProxy:
    """``mitmdump --mode regular``: TLS passed through untouched (``--ignore-hosts``), so an
    ``https://`` endpoint is verified end to end; ``credentials`` as for ``Tinyproxy``."""

    def __init__(self, tmp_dir: Path, credentials: tuple[str, str] | None = None) -> None:
        executable = find_mitmdump()
        if executable is None:
            raise RuntimeError("mitmdump is not installed")
        self.port = free_port()
        self.log = tmp_dir / f"mitm-forward-{self.port}.log"
        command = [executable, "--mode", "regular", "--listen-host", "127.0.0.1",
                   "--listen-port", str(self.port), "--ignore-hosts", ".*",
                   "--set", "termlog_verbosity=info", "--set", f"confdir={tmp_dir / 'mitm'}"]
        if credentials:
            command += ["--set", f"proxyauth={credentials[0]}:{credentials[1]}"]
        self.url = f"http://127.0.0.1:{self.port}"
        self._log_file = self.log.open("wb")
        self._process = subprocess.Popen(command, stdout=self._log_file, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        if not wait_until(lambda: accepts(self.port), START_TIMEOUT):
            self.stop()
            raise RuntimeError(f"mitmdump did not start: {tail(self.log)}")

    def output(self) -> str:
        return tail(self.log, 1_000_000)

    def stop(self) -> None:
        stop_group(self._process)
        self._log_file.close()

    def __enter__(self) -> MitmForwardProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
