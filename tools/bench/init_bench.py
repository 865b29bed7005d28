"""Init overhead: process start → register, and → first ``/event/next``, beside two floors.

How it is timed, and why this way: the bench's own fake Extensions API (``fake_lambda``) stamps
each call when its request has been parsed, and "process start" is a ``time.monotonic()``
reading taken just before ``Popen``. Both clocks are the same CLOCK_MONOTONIC, read in one
process, so the difference is exact to a few tens of microseconds (a handler thread's
wake-up). The sandbox's ``InitResult`` would measure the same interval but from ``initStart``,
with the sandbox's own bookkeeping (runtime start, telemetry replay) running on the same two
cores at the same moment; here nothing else runs.

Rows (each started the same way, runs interleaved so drift hits all alike):

* ``python3 -I -S -c pass``: start → exit, the cost of any Python process at all (it includes
  interpreter teardown, a few ms, so this floor is slightly generous);
* a minimal stdlib extension (written below): raw sockets, register, subscribe, ``/event/next``
  — the least a Python extension can do;
* lambda-logs-http from the built layer, through its ``sh`` launcher, as Lambda starts it.

"CPU until idle" adds what each process burns before going quiet (the extension keeps
importing on background threads after ``/event/next``): on a 128 MB function (a fraction of a
vCPU) that CPU is taken from the runtime's own init.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import procs
from .fake_lambda import FakeLambdaApi
from .figures import summary
from .raw_http import CALL_SNIPPET

PASS_FLOOR = "pass_floor"
MINIMAL_FLOOR = "minimal_ext_floor"
EXTENSION = "extension"
TARGET_MS_OVER_FLOOR = 30.0

# The floor extension: the least a Python extension can do before Lambda may start the runtime.
# Raw sockets, like the extension's own localhttp (http.client would cost its import time). It
# subscribes but does not listen: BENCH_MINIMAL_LISTENER_PORT names a free port for the URI, so
# that a sandbox's pushes cannot reach somebody else's listener on 4243.
MINIMAL_EXTENSION = r'''
import os, socket
api = os.environ["AWS_LAMBDA_RUNTIME_API"]
host, port = api.rsplit(":", 1)

''' + CALL_SNIPPET + r'''

answer = call("POST", "/2020-01-01/extension/register",
              {"Lambda-Extension-Name": "bench-minimal", "Content-Type": "application/json"},
              b'{"events":["INVOKE","SHUTDOWN"]}')
head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1")
ext_id = ""
for line in head.split("\r\n")[1:]:
    name, _, value = line.partition(":")
    if name.strip().lower() == "lambda-extension-identifier":
        ext_id = value.strip()
call("PUT", "/2022-07-01/telemetry",
     {"Lambda-Extension-Identifier": ext_id, "Content-Type": "application/json"},
     b'{"schemaVersion":"2022-12-13","types":["platform","function","extension"],'
     b'"buffering":{"maxItems":1000,"maxBytes":262144,"timeoutMs":25},'
     b'"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:%d/"}}'
     % int(os.environ.get("BENCH_MINIMAL_LISTENER_PORT", "4243")))
while b"SHUTDOWN" not in call("GET", "/2020-01-01/extension/event/next",
                             {"Lambda-Extension-Identifier": ext_id}):
    pass
'''


@dataclass
class InitSamples:
    """Per-variant samples, in milliseconds (CPU in ms of CPU time)."""

    register: list[float] = field(default_factory=list)
    ready: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _run_pass(python: str) -> tuple[float, float]:
    """One ``python3 -I -S -c pass``: (start → exit ms, CPU ms from the child's rusage)."""
    started = time.monotonic()
    process = subprocess.Popen([python, "-I", "-S", "-c", "pass"], stdin=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    ended = time.monotonic()
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: tell Popen
    return (ended - started) * 1000, (usage.ru_utime + usage.ru_stime) * 1000


def _run_extension(command: list[str], env: dict[str, str], fake: FakeLambdaApi,
                   out: Path, samples: InitSamples) -> None:
    """Start one extension against ``fake``; record register/ready/CPU; shut it down."""
    started = time.monotonic()
    with out.open("wb") as stdout:
        process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=stdout,
                                   stderr=subprocess.STDOUT)
    try:
        ready = fake.wait_next(1, timeout=10.0)
        if ready is None or fake.registered_at is None:
            samples.failures.append(
                f"no /event/next within 10 s (exit {process.poll()}): "
                + out.read_text(errors="replace")[-300:])
            return
        cpu = procs.settled_cpu_seconds(process.pid)
        samples.register.append((fake.registered_at - started) * 1000)
        samples.ready.append((ready - started) * 1000)
        if cpu is not None:
            samples.cpu.append(cpu * 1000)
        fake.shutdown_event()
    finally:
        procs.stop(process, timeout=5.0)


def run(python: str, layer: Path, runs: int, warmup: int = 2) -> dict[str, Any]:
    """``runs`` interleaved runs of each variant (after ``warmup`` unrecorded ones)."""
    results = {PASS_FLOOR: InitSamples(), MINIMAL_FLOOR: InitSamples(), EXTENSION: InitSamples()}
    with tempfile.TemporaryDirectory(prefix="bench-init-") as tmp_name:
        tmp = Path(tmp_name)
        script = tmp / "minimal_extension.py"
        script.write_text(MINIMAL_EXTENSION)
        for index in range(warmup + runs):
            record = index >= warmup
            wall, cpu = _run_pass(python)
            if record:
                results[PASS_FLOOR].ready.append(wall)
                results[PASS_FLOOR].cpu.append(cpu)
            for name in (MINIMAL_FLOOR, EXTENSION):
                samples = results[name] if record else InitSamples()
                with FakeLambdaApi() as fake:
                    extra = {
                        "HTTP_ENDPOINT": "http://127.0.0.1:9/ingest",  # never reached: no logs
                        "HTTP_LISTENER_PORT": str(procs.free_port()),
                        "HTTP_SPILL_DIR": str(tmp / f"spill-{index}"),
                    }
                    env = procs.base_env(fake.runtime_api, python, extra)
                    if name == MINIMAL_FLOOR:
                        command = [python, "-I", "-S", "-B", "-u", str(script)]
                    else:
                        command = [str(layer / procs.LAUNCHER)]
                    _run_extension(command, env, fake, tmp / f"{name}.out", samples)
                    if name == EXTENSION and fake.subscription is None and record:
                        samples.failures.append("the extension did not subscribe")
    return {name: _summarise(samples) for name, samples in results.items()}


def _summarise(samples: InitSamples) -> dict[str, Any]:
    return {
        "register_ms": summary(samples.register),
        "ready_ms": summary(samples.ready),
        "cpu_ms": summary(samples.cpu),
        "failures": samples.failures[:5],
    }
