"""Lambda's CPU share for a memory size, enforced on the sandbox's processes with a cgroup.

Lambda gives a function CPU in proportion to its memory: 1,769 MB is one vCPU, 128 MB about
7 % of one. The runtime and the extensions share that CPU, so on a small function whatever an
extension does during init is taken from the runtime's own init. A sandbox on an unconstrained
development machine hides that cost; this module reproduces it with CFS bandwidth control:

* one cgroup per :class:`~tools.lambda_sandbox.Sandbox`, holding the runtime and every
  extension (and anything they start), with a quota of ``100 ms * MB / 1769`` per 100 ms
  period (7,236 µs at 128 MB);
* cgroup v2's ``cpu.max`` where the v2 tree has the cpu controller for this process's cgroup,
  else v1's ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``;
* each process is moved in by a ``/bin/sh`` trampoline that writes its own PID to
  ``cgroup.procs`` and then ``exec``\\ s the real command, so the interpreter's start is
  counted (moving it after ``Popen`` returns would let it run its first milliseconds free);
* :meth:`CpuCgroup.remove` kills whatever is still inside (a daemonised grandchild that
  escaped its process group) and removes the directory; the sandbox calls it at shutdown,
  on failed construction, and at interpreter exit if nobody shut it down.

Creating cgroups needs root (or a delegated v2 subtree). Where no cgroup can be created,
:meth:`CpuCgroup.create` raises :class:`CpuShareUnavailable` saying what it tried.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("lambda_sandbox.cpu_share")

MB_PER_VCPU = 1769  # Lambda: "at 1,769 MB, a function has the equivalent of one vCPU"
PERIOD_US = 100_000  # the CFS period Lambda's share is expressed in (the kernel's default)
MIN_QUOTA_US = 1_000  # the kernel refuses smaller quotas
SH = "/bin/sh"
# argv[0] of the trampoline's script is the cgroup.procs path; "$@" the real command.
TRAMPOLINE = 'echo $$ > "$0" && exec "$@"'

_names = itertools.count(1)


def quota_us(memory_mb: int, period_us: int = PERIOD_US) -> int:
    """The CFS quota (µs per ``period_us``) that is Lambda's CPU share for ``memory_mb``."""
    return max(MIN_QUOTA_US, round(period_us * memory_mb / MB_PER_VCPU))


class CpuShareUnavailable(RuntimeError):
    """No cgroup with a CPU quota could be created on this machine (the message says why)."""


@dataclass(frozen=True)
class CpuLimit:
    """The CPU share a sandbox's processes run with."""

    memory_mb: int
    quota_us: int
    period_us: int
    version: str  # "v2" (cpu.max) or "v1" (cpu.cfs_quota_us)
    path: Path  # the cgroup's directory

    @property
    def vcpus(self) -> float:
        return self.quota_us / self.period_us

    def describe(self) -> str:
        files = "cpu.max" if self.version == "v2" else "cpu.cfs_quota_us/cpu.cfs_period_us"
        return (f"{self.memory_mb} MB = {self.vcpus:.3f} vCPU: cgroup {self.version} {files} "
                f"{self.quota_us} µs / {self.period_us} µs ({self.path})")


@dataclass(frozen=True)
class Candidate:
    """A place where a cgroup with a CPU quota might be created."""

    version: str
    parent: Path


def candidates(mounts: str, self_cgroup: str) -> tuple[list[Candidate], list[str]]:
    """Where to create the sandbox's cgroup, best first, from ``/proc/self/mounts`` and
    ``/proc/self/cgroup``; plus why other hierarchies do not qualify (for the error message).

    v2 first, in this process's own cgroup, else beside it (a v2 cgroup that holds processes
    cannot hand controllers to children, so a non-root own cgroup rarely works); then v1's
    cpu hierarchy, in this process's cpu cgroup. Only the files' text is read here: whether
    the controller is really there is checked by :meth:`CpuCgroup.create`.
    """
    own_v2: str | None = None
    own_v1: str | None = None
    for line in self_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy_id, controllers, path = parts
        if hierarchy_id == "0" and controllers == "":
            own_v2 = path
        elif "cpu" in controllers.split(","):
            own_v1 = path
    found: list[Candidate] = []
    rejected: list[str] = []
    v1_found = v2_found = False
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        mountpoint, fstype, options = _unescape(fields[1]), fields[2], fields[3].split(",")
        if fstype == "cgroup2":
            v2_found = True
            if own_v2 is None:
                rejected.append(f"v2 at {mountpoint}: this process has no v2 cgroup")
                continue
            own = Path(mountpoint) / own_v2.lstrip("/")
            found.append(Candidate("v2", own))
            if own != Path(mountpoint):
                found.append(Candidate("v2", own.parent))
        elif fstype == "cgroup" and "cpu" in options:
            v1_found = True
            found.append(Candidate("v1", Path(mountpoint) / (own_v1 or "/").lstrip("/")))
    if not v2_found:
        rejected.append("no cgroup v2 hierarchy is mounted")
    if not v1_found:
        rejected.append("no cgroup v1 hierarchy with the cpu controller is mounted")
    found.sort(key=lambda c: c.version != "v2")  # stable: v2 candidates first, in order
    return found, rejected


def _unescape(field: str) -> str:
    """Mount points in /proc/mounts escape space, tab, newline and backslash as octal."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


class CpuCgroup:
    """One cgroup with Lambda's CPU quota for a memory size; create with :meth:`create`."""

    def __init__(self, limit: CpuLimit) -> None:
        self.limit = limit
        self.path = limit.path
        self.procs_file = limit.path / "cgroup.procs"
        self.removed = False

    @classmethod
    def create(cls, memory_mb: int, *, mounts: str | None = None,
               self_cgroup: str | None = None, prefix: str = "lambda-sandbox") -> CpuCgroup:
        """Create a cgroup with the CPU share of ``memory_mb`` (see the module docstring).

        ``mounts`` and ``self_cgroup`` replace the text of ``/proc/self/mounts`` and
        ``/proc/self/cgroup`` (tests). Raises :class:`CpuShareUnavailable`."""
        if mounts is None:
            mounts = _read(Path("/proc/self/mounts"))
        if self_cgroup is None:
            self_cgroup = _read(Path("/proc/self/cgroup"))
        found, reasons = candidates(mounts, self_cgroup)
        quota = quota_us(memory_mb)
        name = f"{prefix}-{os.getpid()}-{next(_names)}"
        for candidate in found:
            try:
                limit = _create_in(candidate, name, memory_mb, quota)
            except OSError as exc:
                reasons.append(f"{candidate.version} in {candidate.parent}: {exc}")
                continue
            log.debug("cgroup %s", limit.describe())
            return cls(limit)
        raise CpuShareUnavailable(
            f"cannot give the processes Lambda's CPU share for {memory_mb} MB "
            f"(CFS quota {quota} µs per {PERIOD_US} µs): no cgroup with a cpu controller could "
            f"be created ({'; '.join(reasons) or 'no cgroup hierarchy found'}). This needs root "
            "with cgroup v2's cpu controller available to this process's cgroup, or cgroup v1's "
            "cpu controller (e.g. /sys/fs/cgroup/cpu). Without it, run with the CPU unlimited.")

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` behind the trampoline that moves the process in before it ``exec``\\ s."""
        return [SH, "-c", TRAMPOLINE, str(self.procs_file), *argv]

    def pids(self) -> list[int]:
        """The processes in the cgroup now (empty once removed)."""
        return [int(x) for x in _read(self.procs_file).split()]

    def stat(self) -> dict[str, int]:
        """``cpu.stat``: ``nr_periods``, ``nr_throttled``, ``throttled_time`` (v1, ns) or
        ``throttled_usec`` and ``usage_usec`` (v2)...; empty once removed."""
        values: dict[str, int] = {}
        for line in _read(self.path / "cpu.stat").splitlines():
            key, _, value = line.partition(" ")
            if value.strip().isdigit():
                values[key] = int(value)
        return values

    def remove(self, timeout: float = 2.0) -> bool:
        """SIGKILL anything still inside, then remove the cgroup; True once it is gone.

        Whatever is still in the cgroup was started by the sandbox (its processes' children
        inherit the cgroup), so killing it is ending the environment, as Lambda does."""
        if self.removed:
            return True
        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids()
            if not pids:
                try:
                    self.path.rmdir()
                    self.removed = True
                    return True
                except FileNotFoundError:
                    self.removed = True
                    return True
                except OSError as exc:
                    if time.monotonic() >= deadline:
                        log.warning("could not remove cgroup %s: %s", self.path, exc)
                        return False
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            if time.monotonic() >= deadline:
                log.warning("cgroup %s still holds %s after %.1f s; not removed", self.path,
                            pids, timeout)
                return False
            time.sleep(0.01)


def _create_in(candidate: Candidate, name: str, memory_mb: int, quota: int) -> CpuLimit:
    parent = candidate.parent
    if candidate.version == "v2":
        if "cpu" not in _read(parent / "cgroup.controllers").split():
            raise OSError(f"the cpu controller is not available there "
                          f"(cgroup.controllers: {_read(parent / 'cgroup.controllers').strip()!r})")
        if "cpu" not in _read(parent / "cgroup.subtree_control").split():
            # Fails with EBUSY when that cgroup holds processes (unless it is the root).
            (parent / "cgroup.subtree_control").write_text("+cpu")
    elif not (parent / "cpu.cfs_quota_us").exists():
        raise OSError(f"no cpu.cfs_quota_us in {parent}")
    path = parent / name
    path.mkdir()
    try:
        if candidate.version == "v2":
            (path / "cpu.max").write_text(f"{quota} {PERIOD_US}")
            written = _read(path / "cpu.max").split()
            if written[:2] != [str(quota), str(PERIOD_US)]:
                raise OSError(f"cpu.max reads {written!r} after writing {quota} {PERIOD_US}")
        else:
            (path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (path / "cpu.cfs_quota_us").write_text(str(quota))
            written = _read(path / "cpu.cfs_quota_us").strip()
            if written != str(quota):
                raise OSError(f"cpu.cfs_quota_us reads {written!r} after writing {quota}")
    except OSError:
        path.rmdir()
        raise
    return CpuLimit(memory_mb, quota, PERIOD_US, candidate.version, path)
