"""What a SnapStart restore does to an execution environment, for the sandbox's snapshot mode.

With SnapStart, Lambda runs init once, snapshots the environment's memory, and later resumes
copies of it — minutes or days later, on another host. Processes continue where they stopped,
but every TCP connection they had open is dead: the peer forgot it long ago (or the packets go
nowhere), so the first write on it fails. Lambda's own local APIs (Runtime, Extensions,
Telemetry) are served again; the function's role credentials come from a local endpoint
(``AWS_CONTAINER_CREDENTIALS_FULL_URI`` with ``AWS_CONTAINER_AUTHORIZATION_TOKEN``) instead of
``AWS_ACCESS_KEY_ID``.

The sandbox makes the connections dead the way the kernel would report it: each established TCP
connection of the environment's processes, except those to the sandbox's own API server, is
destroyed with ``ss -K`` (a ``SOCK_DESTROY`` request: the process's next operation fails with
``ECONNABORTED`` and the peer gets a reset). That needs ``CAP_NET_ADMIN`` and a kernel built
with ``CONFIG_INET_DIAG_DESTROY``; :func:`can_break_connections` says whether this machine has
both.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

_ESTABLISHED = "01"
_LISTEN = "0A"


@dataclass(frozen=True)
class Connection:
    """One established TCP connection of a process: its two ends as (host, port)."""

    pid: int
    local: tuple[str, int]
    remote: tuple[str, int]


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        entries = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for entry in entries:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{entry}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _address(text: str) -> tuple[str, int]:
    """``0100007F:1F90`` (as /proc/net/tcp writes it: host-order 32-bit words) → (host, port)."""
    host_hex, port_hex = text.split(":")
    raw = bytes.fromhex(host_hex)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words)), int(port_hex, 16)


def _tcp_sockets(pids: list[int], state: str) -> list[Connection]:
    owners = {inode: pid for pid in pids for inode in _socket_inodes(pid)}
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != state or fields[9] not in owners:
                continue
            found.append(Connection(owners[fields[9]], _address(fields[1]), _address(fields[2])))
    return found


def established(pids: list[int]) -> list[Connection]:
    """The established TCP connections (IPv4 and IPv6) whose socket one of ``pids`` holds."""
    return _tcp_sockets(pids, _ESTABLISHED)


def listening_ports(pids: list[int]) -> set[int]:
    """The TCP ports ``pids`` listen on."""
    return {c.local[1] for c in _tcp_sockets(pids, _LISTEN)}


def _ss_endpoint(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def destroy(connection: Connection) -> bool:
    """Destroy one connection's socket (``ss -K``); whether it is gone."""
    ss = shutil.which("ss")
    if ss is None:
        return False
    result = subprocess.run(
        [ss, "-K", "-t", "-n", "src", _ss_endpoint(connection.local),
         "dst", _ss_endpoint(connection.remote)],
        capture_output=True, text=True, timeout=5, check=False,
    )
    if result.returncode != 0:
        return False
    return all(c.local != connection.local or c.remote != connection.remote
               for c in established([connection.pid]))


def can_break_connections() -> str | None:
    """None if this machine can destroy sockets (``ss -K``), else why not."""
    if shutil.which("ss") is None:
        return "`ss` is not installed (Debian: apt-get install iproute2)"
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=2) as client:
            accepted, _ = server.accept()
            with accepted:
                probe = Connection(os.getpid(), client.getsockname(), client.getpeername())
                if destroy(probe):
                    return None
    return ("`ss -K` cannot destroy sockets here: it needs CAP_NET_ADMIN (root) and a kernel "
            "built with CONFIG_INET_DIAG_DESTROY")
