"""Cold start as a function feels it: init duration with Lambda's CPU share, three ways.

Lambda gives a function CPU in proportion to its memory (one vCPU at 1,769 MB, 7 % of one at
128 MB) and the runtime and the extensions share it; the runtime starts only after every
extension registered. So what an extension costs a small function is not its own start time
on an idle core (section 1) but how much later the *function* is ready. This section measures
exactly that in ``lambda_sandbox`` with ``limit_cpu=True``: the runtime and the extensions in
one cgroup with Lambda's CFS quota for the memory size (``lambda_sandbox.cpu_share``).

Per run, one fresh sandbox: the bundled sample function on AWS's runtime client (awslambdaric),
``start()`` (init, then frozen as in Lambda), one ``invoke()``, shutdown. Variants:

* ``none``: no extension — the function's own init;
* ``minimal``: the floor, the least a Python extension does before Lambda may start the
  runtime: register, subscribe, ``/event/next`` (``init_bench.MINIMAL_EXTENSION``, started by
  a ``sh`` launcher like the layer's; it uses the ``socket`` module and does not listen);
* ``minimal_raw``: the same on the built-in ``_socket`` and ``posix`` modules only, nothing
  imported from files: what any Python extension costs at the very least. ``socket`` alone
  (with ``enum``, ``selectors``...) is a few ms of CPU, i.e. tens of ms at 128 MB, and the layer
  does not import it before registering, so the two floors bracket the comparison;
* ``layer``: lambda-logs-http from the built layer, forwarding to a real receiver;
* ``standalone``: the same extension from the standalone layer (build-standalone.sh), on the
  layer's own CPython 3.13 with its trimmed standard library, as on a Node.js, Java or custom
  runtime (the function itself stays on awslambdaric). Skipped without that layer: it needs the
  cached interpreter (``make build_standalone_x86``) or ``--standalone-layer``.

Figures per run: Lambda's init duration (initStart → runtime and every extension called
``next``), the first invocation's response time, the extension's RSS (``VmRSS``) and CPU time
(all threads, ``/proc/PID/task/*/schedstat``) right after init, while frozen. Memory sizes and
variants are interleaved in every round (variant order rotates), so drift on a shared machine
hits all rows alike; medians and ranges over the rounds.

"added" = median(variant) - median(none) at the same memory size; targets: at 128 MB the
layer adds at most 1.3x what the floor (``minimal``) adds, at 1,769 MB at most 5 ms more than
it; the ratio to ``minimal_raw`` is reported beside.
"""

from __future__ import annotations

import importlib.util
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.lambda_sandbox import FunctionSpec, Sandbox
from tools.lambda_sandbox.cpu_share import CpuCgroup, CpuShareUnavailable, quota_us
from tools.lambda_sandbox.receiver import Receiver

from . import procs
from .figures import summary
from .init_bench import MINIMAL_EXTENSION

NONE = "none"
MINIMAL = "minimal"
MINIMAL_RAW = "minimal_raw"
LAYER = "layer"
STANDALONE = "standalone"
VARIANTS = (NONE, MINIMAL, MINIMAL_RAW, LAYER, STANDALONE)
EXTENSIONS = (MINIMAL, MINIMAL_RAW, LAYER, STANDALONE)
STANDALONE_PYTHON = Path("lambda-logs-http/runtime/bin/python3")  # inside the standalone layer
FLOORS = (MINIMAL, MINIMAL_RAW)
UNCONSTRAINED = "unconstrained"
MEMORY_SIZES: tuple[int | None, ...] = (None, 128, 512, 1769)
MINIMAL_NAME = "bench-minimal"
MINIMAL_RAW_NAME = "bench-minimal-raw"
LAYER_NAME = "lambda-logs-http"
UNCONSTRAINED_MEMORY_MB = 128  # the memory size variable when the CPU is not limited
TARGET_RATIO_AT = 128  # MB: layer-added ≤ 1.3 x minimal-added
TARGET_RATIO = 1.3
TARGET_DELTA_AT = 1769  # MB: layer-added - minimal-added ≤ 5 ms
TARGET_DELTA_MS = 5.0
EVENT = {"lines": 1}

# The floor on built-in modules only (no file is imported: no os, no socket).
RAW_MINIMAL_EXTENSION = r'''
import posix, _socket
api = posix.environ[b"AWS_LAMBDA_RUNTIME_API"].decode()
host, port = api.rsplit(":", 1)
listener_port = int(posix.environ.get(b"BENCH_MINIMAL_LISTENER_PORT", b"4243"))


def call(method, path, headers, body=b""):
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    sock.connect((host, int(port)))
    head = "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Length: %d\r\n" % (
        method, path, api, len(body))
    head += "".join("%s: %s\r\n" % item for item in headers.items()) + "\r\n"
    sock.sendall(head.encode("latin-1") + body)
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
    sock.close()
    return b"".join(chunks)


answer = call("POST", "/2020-01-01/extension/register",
              {"Lambda-Extension-Name": "bench-minimal-raw", "Content-Type": "application/json"},
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
     % listener_port)
while b"SHUTDOWN" not in call("GET", "/2020-01-01/extension/event/next",
                             {"Lambda-Extension-Identifier": ext_id}):
    pass
'''


def memory_label(memory_mb: int | None) -> str:
    return UNCONSTRAINED if memory_mb is None else str(memory_mb)


def row_id(memory_mb: int | None, variant: str) -> str:
    return f"cold.{memory_label(memory_mb)}.{variant}"


def expected_rows(memory_sizes: tuple[int | None, ...] = MEMORY_SIZES) -> list[str]:
    return [row_id(m, v) for m in memory_sizes for v in VARIANTS]


@dataclass
class Samples:
    """One (memory size, variant)'s runs."""

    init_ms: list[float] = field(default_factory=list)
    registered_ms: list[float] = field(default_factory=list)
    ready_ms: list[float] = field(default_factory=list)
    first_invoke_ms: list[float] = field(default_factory=list)
    rss_kib: list[float] = field(default_factory=list)
    ext_cpu_ms: list[float] = field(default_factory=list)
    throttled_periods: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _minimal_layer(root: Path, python: str, name: str, source: str) -> Path:
    """A layer whose one extension is a floor, started through ``sh`` as the layer's is."""
    (root / "extensions").mkdir(parents=True)
    script = root / "minimal_extension.py"
    script.write_text(source)
    launcher = root / "extensions" / name
    launcher.write_text(f'#!/bin/sh\nexec "{python}" -I -S -B -u "{script}"\n')
    launcher.chmod(launcher.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return root


def cpu_share_available() -> str | None:
    """None if this machine can limit the CPU, else why not (for the skipped rows)."""
    try:
        CpuCgroup.create(128, prefix="bench-probe").remove()
    except CpuShareUnavailable as exc:
        return str(exc)
    return None


def _run_once(variant: str, memory_mb: int | None, layers: dict[str, Path | None],
              env: dict[str, str], samples: Samples) -> None:
    sandbox = Sandbox(layers[variant], FunctionSpec(), env, timeout_s=30.0,
                      memory_mb=memory_mb or UNCONSTRAINED_MEMORY_MB,
                      limit_cpu=memory_mb is not None, function_name="bench-cold",
                      init_timeout_s=30.0)
    try:
        init = sandbox.start()
        if not init.ok:
            samples.failures.append(f"init failed: {init.error}; "
                                    + " | ".join(sandbox.extension_output[-3:]))
            return
        name = {MINIMAL: MINIMAL_NAME, MINIMAL_RAW: MINIMAL_RAW_NAME,
                LAYER: LAYER_NAME, STANDALONE: LAYER_NAME}.get(variant)
        pid = sandbox.pids().get(name) if name else None
        rss = cpu = None
        if pid is not None:  # frozen now: nothing moves until the invoke
            rss = procs.memory_kib(pid).get("VmRSS")
            cpu = procs.cpu_seconds(pid)
        elif name is not None:
            samples.failures.append(f"{name} not running after init")
            return
        result = sandbox.invoke(EVENT)
        if result.status != "success" or result.response_ms is None:
            samples.failures.append(f"first invocation {result.status}: {result.error}")
            return
        samples.init_ms.append(init.duration_ms)
        samples.registered_ms.append(init.extensions_registered_ms or 0.0)
        samples.ready_ms.append(init.extensions_ready_ms or 0.0)
        samples.first_invoke_ms.append(result.response_ms)
        if rss is not None:
            samples.rss_kib.append(float(rss))
        if cpu is not None:
            samples.ext_cpu_ms.append(cpu * 1000)
        throttled = sandbox.cpu_stat().get("nr_throttled")
        if throttled is not None:
            samples.throttled_periods.append(float(throttled))
    finally:
        sandbox.shutdown()


def run(layer: Path, python: str, rounds: int, warmup: int = 1,
        memory_sizes: tuple[int | None, ...] = MEMORY_SIZES,
        standalone: Path | None = None) -> dict[str, dict[str, Any]]:
    """``rounds`` interleaved rounds (after ``warmup`` unrecorded ones) of every row;
    ``standalone``: the unpacked standalone layer, or None to skip its rows."""
    if importlib.util.find_spec("awslambdaric") is None:
        return {key: {"status": "skipped", "note": "awslambdaric is not installed in the bench's "
                      "Python (pip install -r requirements-dev.txt)"}
                for key in expected_rows(memory_sizes)}
    unavailable = cpu_share_available()
    measured = tuple(m for m in memory_sizes if m is None or unavailable is None)
    variants = tuple(v for v in VARIANTS if v != STANDALONE or standalone is not None)
    samples = {(m, v): Samples() for m in measured for v in variants}
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp_name:
        tmp = Path(tmp_name)
        layers: dict[str, Path | None] = {
            NONE: None,
            MINIMAL: _minimal_layer(tmp / "minimal-layer", python, MINIMAL_NAME,
                                    MINIMAL_EXTENSION),
            MINIMAL_RAW: _minimal_layer(tmp / "minimal-raw-layer", python, MINIMAL_RAW_NAME,
                                        RAW_MINIMAL_EXTENSION),
            LAYER: layer,
            STANDALONE: standalone}
        with Receiver(tmp) as receiver:
            for index in range(warmup + rounds):
                shift = index % len(variants)
                order = variants[shift:] + variants[:shift]
                for memory_mb in measured:
                    for variant in order:
                        record = index >= warmup
                        into = samples[(memory_mb, variant)] if record else Samples()
                        env = {
                            "HTTP_ENDPOINT": receiver.url,
                            "HTTP_LISTENER_PORT": str(procs.free_port()),
                            "HTTP_SPILL_DIR": str(tmp / f"spill-{index}-{variant}"),
                            "LAMBDA_LOGS_HTTP_PYTHON": python,
                            "BENCH_MINIMAL_LISTENER_PORT": str(procs.free_port()),
                        } if variant != NONE else {}
                        if variant == STANDALONE and standalone is not None:
                            # The launcher's own choice where the function has no Python.
                            env["LAMBDA_LOGS_HTTP_PYTHON"] = str(standalone / STANDALONE_PYTHON)
                        try:
                            _run_once(variant, memory_mb, layers, env, into)
                        except Exception as exc:  # one broken run must not end the section
                            into.failures.append(f"{type(exc).__name__}: {exc}")
    rows = dict(_summarise(m, v, s) for (m, v), s in samples.items())
    for memory_mb in memory_sizes:
        if standalone is None:
            rows[row_id(memory_mb, STANDALONE)] = {
                "status": "skipped", "memory_mb": memory_mb, "variant": STANDALONE,
                "note": "no standalone layer (make build_standalone_x86, or --standalone-layer)"}
        if memory_mb in measured:
            continue
        for variant in VARIANTS:
            rows[row_id(memory_mb, variant)] = {
                "status": "skipped", "memory_mb": memory_mb, "variant": variant,
                "note": f"CPU share not available: {unavailable}"}
    _add_derived(rows, measured)
    return rows


def _summarise(memory_mb: int | None, variant: str,
               samples: Samples) -> tuple[str, dict[str, Any]]:
    row: dict[str, Any] = {
        "memory_mb": memory_mb,
        "variant": variant,
        "quota_us": quota_us(memory_mb) if memory_mb is not None else None,
        "init_ms": summary(samples.init_ms),
        "extensions_registered_ms": summary(samples.registered_ms),
        "extensions_ready_ms": summary(samples.ready_ms),
        "first_invoke_ms": summary(samples.first_invoke_ms),
        "rss_after_init_kib": summary(samples.rss_kib),
        "ext_cpu_at_init_end_ms": summary(samples.ext_cpu_ms),
        "throttled_periods": summary(samples.throttled_periods),
        "failures": samples.failures[:5],
    }
    row["status"] = "ok" if samples.init_ms and not samples.failures else "error"
    if samples.failures:
        row["note"] = f"{len(samples.failures)} failed run(s): {samples.failures[0][:200]}"
    return row_id(memory_mb, variant), row


def _add_derived(rows: dict[str, Any], measured: tuple[int | None, ...]) -> None:
    """``added_ms`` per variant, and on the layer row the ratios to each floor and the
    difference to ``minimal`` (the targets' inputs)."""
    for memory_mb in measured:
        base = rows[row_id(memory_mb, NONE)]["init_ms"]["median"]
        added: dict[str, float | None] = {}
        for variant in (*FLOORS, LAYER, STANDALONE):
            row = rows[row_id(memory_mb, variant)]
            if "init_ms" not in row:  # skipped
                continue
            median = row["init_ms"]["median"]
            added[variant] = (median - base) if median is not None and base is not None else None
            row["added_ms"] = added[variant]
        layer_row = rows[row_id(memory_mb, LAYER)]
        for floor in FLOORS:
            if added[LAYER] is not None and added[floor] and added[floor] > 0:
                layer_row[f"added_ratio_{floor}"] = added[LAYER] / added[floor]
        layer_row["added_ratio"] = layer_row.get(f"added_ratio_{MINIMAL}")
        if added[LAYER] is not None and added[MINIMAL] is not None:
            layer_row["added_over_minimal_ms"] = added[LAYER] - added[MINIMAL]
