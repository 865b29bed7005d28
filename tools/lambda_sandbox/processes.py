"""Child processes the way Lambda runs them: own process group, output captured, freezable.

Each :class:`ManagedProcess` is started in a new session (so its whole process group can be
frozen with SIGSTOP, thawed with SIGCONT and killed together), has one :class:`OutputPump`
thread that reads its stdout, stderr and (for managed runtimes) the framed telemetry log pipe,
and one watcher thread that reaps it and reports the exit after the last output was read.
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .config import ENV_TELEMETRY_LOG_FD
from .cpu_share import CpuCgroup

log = logging.getLogger("lambda_sandbox.processes")

# The framing awslambdaric (FramedTelemetryLogSink) writes to _LAMBDA_TELEMETRY_LOG_FD:
# 4-byte frame type, 4-byte length, 8-byte timestamp (µs), then the message; big-endian.
FRAME_HEADER_BYTES = 16
MAX_FRAME_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Chunk:
    """One unit of output: a line from stdout/stderr (with its ``\\n`` if it had one) or one
    telemetry-fd frame (``frame_type`` set, ``time`` from the frame)."""

    stream: str
    text: str
    time: float
    frame_type: int | None = None


OutputSink = Callable[[Chunk], None]


class OutputPump:
    """Reads a process's pipes on one thread and hands complete lines/frames to ``sink``.

    ``drain()`` lets another thread wait until everything already written to the pipes has been
    handed over (used to emit ``platform.runtimeDone`` only after the invocation's output).
    The thread stops by itself when every pipe reached EOF; ``stop()`` forces it (e.g. a
    grandchild still holds a pipe open).
    """

    def __init__(self, name: str, sink: OutputSink) -> None:
        self._name = name
        self._sink = sink
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._buffers: dict[int, bytearray] = {}
        self._streams: dict[int, str] = {}
        self._cond = threading.Condition()
        self._drain_requested = 0
        self._drain_served = 0
        self._stop = False
        self._wake_closed = False
        self._thread: threading.Thread | None = None

    def add(self, fd: int, stream: str) -> None:
        """Watch ``fd`` (already open, read end); ``stream`` is stdout, stderr or telemetry-fd."""
        os.set_blocking(fd, False)
        self._streams[fd] = stream
        self._buffers[fd] = bytearray()
        self._selector.register(fd, selectors.EVENT_READ, stream)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("OutputPump already started")
        self._thread = threading.Thread(target=self._run, name=f"sandbox-pump-{self._name}",
                                        daemon=True)
        self._thread.start()

    def _wake(self) -> None:
        # Under the lock: once the thread closed the wake pipe its fd number may be reused.
        with self._cond:
            if self._wake_closed:
                return
            try:
                os.write(self._wake_w, b"x")
            except OSError:
                pass

    def drain(self, timeout: float) -> bool:
        """Wait until all data already in the pipes was handed to the sink; False on timeout."""
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                return True
            self._drain_requested += 1
            target = self._drain_requested
        self._wake()
        with self._cond:
            return self._cond.wait_for(
                lambda: self._drain_served >= target or not self._alive(), timeout)

    def _alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            if self._thread is None and not self._wake_closed:
                # Never started (the process could not be spawned): release the fds here.
                for fd in list(self._streams):
                    os.close(fd)
                self._streams.clear()
                self._selector.close()
                os.close(self._wake_r)
                os.close(self._wake_w)
                self._wake_closed = True
                return
        self._wake()

    def join(self, timeout: float) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    if self._stop or not self._streams:
                        break
                for key, _ in self._selector.select(timeout=0.5):
                    self._read(key.fd)
                with self._cond:
                    pending = self._drain_requested > self._drain_served
                if pending and not self._readable_data():
                    with self._cond:
                        self._drain_served = self._drain_requested
                        self._cond.notify_all()
        except Exception:  # the pump must never take the sandbox down with it
            log.exception("output pump %s failed", self._name)
        finally:
            for fd in list(self._streams):
                self._close_fd(fd)
            self._selector.close()
            with self._cond:
                self._wake_closed = True
                os.close(self._wake_r)
                os.close(self._wake_w)
                self._drain_served = self._drain_requested
                self._cond.notify_all()

    def _readable_data(self) -> bool:
        return any(key.fd != self._wake_r for key, _ in self._selector.select(timeout=0))

    def _read(self, fd: int) -> None:
        if fd == self._wake_r:
            try:
                os.read(fd, 4096)
            except BlockingIOError:
                pass
            return
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close_fd(fd)
            return
        buffer = self._buffers[fd]
        buffer.extend(data)
        if self._streams[fd] == "telemetry-fd":
            self._emit_frames(buffer)
        else:
            self._emit_lines(fd, buffer)

    def _emit_lines(self, fd: int, buffer: bytearray) -> None:
        now = time.time()
        while True:
            newline = buffer.find(b"\n")
            if newline < 0:
                return
            line = bytes(buffer[: newline + 1])
            del buffer[: newline + 1]
            self._sink(Chunk(self._streams[fd], line.decode("utf-8", "replace"), now))

    def _emit_frames(self, buffer: bytearray) -> None:
        while len(buffer) >= FRAME_HEADER_BYTES:
            frame_type = int.from_bytes(buffer[0:4], "big")
            length = int.from_bytes(buffer[4:8], "big")
            if length > MAX_FRAME_BYTES:
                log.warning("%s: telemetry frame of %d bytes is not a frame; dropping the rest",
                            self._name, length)
                buffer.clear()
                return
            if len(buffer) < FRAME_HEADER_BYTES + length:
                return
            micros = int.from_bytes(buffer[8:16], "big")
            message = bytes(buffer[FRAME_HEADER_BYTES: FRAME_HEADER_BYTES + length])
            del buffer[: FRAME_HEADER_BYTES + length]
            self._sink(Chunk("telemetry-fd", message.decode("utf-8", "replace"),
                             micros / 1_000_000, frame_type))

    def _close_fd(self, fd: int) -> None:
        stream = self._streams.pop(fd, None)
        if stream is None:
            return
        rest = self._buffers.pop(fd, bytearray())
        if rest and stream != "telemetry-fd":
            # A last line without newline: hand it over as it is.
            self._sink(Chunk(stream, bytes(rest).decode("utf-8", "replace"), time.time()))
        try:
            self._selector.unregister(fd)
        except (KeyError, ValueError):
            pass
        os.close(fd)


class ManagedProcess:
    """One extension or runtime process.

    ``on_output`` receives every :class:`Chunk`; ``on_exit`` is called once with the exit status
    after the output pump finished (so a crash is reported after the crash's last words).
    ``cgroup``: start the process inside it (Lambda's CPU share), through its ``/bin/sh``
    trampoline; the command is looked up first so that a missing or non-executable one still
    raises ``OSError`` from :meth:`start` (a file without ``#!`` that is not a binary would be
    run by that shell, where Lambda reports an exec format error).
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path,
        on_output: OutputSink,
        on_exit: Callable[[ManagedProcess, int], None],
        telemetry_fd: bool = False,
        cgroup: CpuCgroup | None = None,
    ) -> None:
        self.name = name
        self._argv = list(argv)
        self._env = dict(env)
        self._cwd = cwd
        self._on_exit = on_exit
        self._telemetry_fd = telemetry_fd
        self._cgroup = cgroup
        self._pump = OutputPump(name, on_output)
        self._popen: subprocess.Popen[bytes] | None = None
        self._watcher: threading.Thread | None = None
        self.exited = threading.Event()
        self.returncode: int | None = None
        self.started_at: float | None = None
        self.killed = False
        self._frozen = False
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    @property
    def frozen(self) -> bool:
        return self._frozen

    def start(self) -> None:
        """Start the process; raises ``OSError`` if it cannot be executed."""
        if self._popen is not None:
            raise RuntimeError(f"{self.name} already started")
        pass_fds: tuple[int, ...] = ()
        fd_read = fd_write = -1
        env = dict(self._env)
        argv = self._argv
        if self._cgroup is not None:
            try:
                _check_executable(argv[0], env, self._cwd)
            except OSError:
                self._pump.stop()
                raise
            argv = self._cgroup.wrap(argv)
        if self._telemetry_fd:
            fd_read, fd_write = os.pipe()
            pass_fds = (fd_write,)
            env[ENV_TELEMETRY_LOG_FD] = str(fd_write)
        try:
            self._popen = subprocess.Popen(
                argv,
                cwd=str(self._cwd),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=pass_fds,
                start_new_session=True,  # own process group: freeze/kill it as a whole
            )
        except OSError:
            if fd_read >= 0:
                os.close(fd_read)
                os.close(fd_write)
            self._pump.stop()
            raise
        self.started_at = time.monotonic()
        if fd_write >= 0:
            os.close(fd_write)
            self._pump.add(fd_read, "telemetry-fd")
        assert self._popen.stdout is not None and self._popen.stderr is not None
        # The pump owns the raw fds from now on; detach them from the Popen file objects.
        self._pump.add(os.dup(self._popen.stdout.fileno()), "stdout")
        self._pump.add(os.dup(self._popen.stderr.fileno()), "stderr")
        self._popen.stdout.close()
        self._popen.stderr.close()
        self._pump.start()
        self._watcher = threading.Thread(target=self._watch, name=f"sandbox-watch-{self.name}",
                                         daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        assert self._popen is not None
        code = self._popen.wait()
        # Let the pump hand over what the process wrote last; a grandchild may keep the pipes
        # open, so this is bounded.
        self._pump.join(0.5)
        self.returncode = code
        self.exited.set()
        try:
            self._on_exit(self, code)
        except Exception:
            log.exception("on_exit callback for %s failed", self.name)

    def _signal_group(self, sig: int) -> bool:
        if self._popen is None:
            return False
        try:
            os.killpg(self._popen.pid, sig)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def freeze(self) -> None:
        """SIGSTOP the process group: every thread stops mid-flight, as in a frozen Lambda."""
        with self._lock:
            if not self._frozen and not self.exited.is_set():
                self._frozen = self._signal_group(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT the process group."""
        with self._lock:
            if self._frozen:
                self._signal_group(signal.SIGCONT)
                self._frozen = False

    def terminate(self) -> None:
        """SIGTERM the group (thawed first: a stopped process would not act on it)."""
        self.thaw()
        self._signal_group(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL the group; records that a kill was needed if the process was still alive."""
        if not self.exited.is_set():
            self.killed = True
        self._signal_group(signal.SIGKILL)
        with self._lock:
            self._frozen = False

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the exit (and its last output); True if exited."""
        return self.exited.wait(max(0.0, timeout))

    def drain(self, timeout: float = 1.0) -> bool:
        """Wait until what the process already wrote has reached the sink."""
        return self._pump.drain(timeout)

    def peak_rss_mb(self) -> int:
        """The process's peak resident set (VmHWM), in MB rounded up; 0 if unknown."""
        if self._popen is None or self.exited.is_set():
            return 0
        try:
            text = Path(f"/proc/{self._popen.pid}/status").read_text()
        except OSError:
            return 0
        for line in text.splitlines():
            if line.startswith("VmHWM:"):
                kb = int(line.split()[1])
                return -(-kb // 1024)
        return 0

    def close(self, timeout: float = 1.0) -> None:
        """Kill if still running and join the helper threads (bounded)."""
        deadline = time.monotonic() + timeout
        if self._popen is not None and not self.exited.is_set():
            self.kill()
        if self._watcher is not None:
            self._watcher.join(max(0.0, deadline - time.monotonic()))
        self._pump.stop()
        self._pump.join(max(0.0, deadline - time.monotonic()))


def _check_executable(command: str, env: Mapping[str, str], cwd: Path) -> None:
    """Raise what ``execve`` would for ``command`` not found or not executable (the trampoline
    would otherwise turn that into the shell's exit status 126/127)."""
    if "/" in command:
        path = command if os.path.isabs(command) else os.path.join(str(cwd), command)
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), command)
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), command)
        return
    if shutil.which(command, path=env.get("PATH", os.defpath)) is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), command)
