"""Owning a server process: free ports, waiting until it listens, stopping it and its children.

Servers are started in a new session (``start_new_session=True``) so that the process group id is
the PID we got from ``Popen``: stopping signals that group, which also reaches children such as
nginx's workers, which would otherwise outlive a master killed with SIGKILL.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

STOP_TIMEOUT = 5.0
"""Seconds a server gets to exit after SIGTERM before its whole group is sent SIGKILL."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago.

    For servers that cannot report the port they bound to 0 (nginx). Another process may take it
    before the server binds it; callers retry on "address in use".
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def accepts(port: int, timeout: float = 0.5) -> bool:
    """Whether a TCP connection to 127.0.0.1:port is accepted now."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``condition`` until it is true or ``timeout`` seconds have passed; return the last value."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(interval, left))


def tail(path: Path, limit: int = 2000) -> str:
    """The end of a log file, for error messages ("" when there is none)."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-limit:]
    except OSError:
        return ""


def children(pid: int) -> list[int]:
    """PIDs whose parent is ``pid`` (Linux /proc), e.g. nginx's workers."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command (which may contain spaces) start after the last ")".
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def stop_group(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM the process, wait up to ``timeout``, then SIGKILL its whole process group.

    Safe to call twice. The group is killed even after a clean exit, for children left behind.
    ``process`` must have been started with ``start_new_session=True``.
    """
    pgid = process.pid
    if process.poll() is None:
        try:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group is empty: everything has exited
    if process.poll() is None:
        process.wait(timeout)
