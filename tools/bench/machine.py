"""What the numbers were measured on: CPU, cores, memory, kernel, interpreters, tool versions.

Printed above the tables and saved in the JSON, because a benchmark figure without its machine
(and without the exact code it ran: commit, dirty or not, layer sha256) cannot be compared with
the next run.
"""

from __future__ import annotations

import glob
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _run(command: list[str], cwd: Path | None = None) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=20,
                                cwd=str(cwd) if cwd else None, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (result.stdout + result.stderr).strip()


def python_version(python: str) -> str:
    """``3.12.1`` for an interpreter path ("" if it does not run)."""
    return _run([python, "-I", "-S", "-c", "import sys; print(sys.version.split()[0])"])


def pyenv_versions() -> list[str]:
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found = [Path(p).parts[-3] for p in glob.glob(os.path.join(root, "versions", "3.*", "bin",
                                                                 "python3"))]
    return sorted(found, key=lambda v: tuple(int(x) for x in re.findall(r"\d+", v)))


def default_python() -> str:
    """The interpreter the extension runs on: like Lambda's ``/var/lang/bin/python3``, a real
    path (pyenv's shim adds ~50 ms a start). 3.12 if pyenv has it, else /var/lang, else this one.
    """
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    for minor in ("3.12", "3.13", "3.11", "3.10", "3.9"):
        for candidate in sorted(glob.glob(os.path.join(root, "versions", f"{minor}*", "bin",
                                                       "python3")), reverse=True):
            if os.access(candidate, os.X_OK):
                return os.path.realpath(candidate)
    if os.access("/var/lang/bin/python3", os.X_OK):
        return os.path.realpath("/var/lang/bin/python3")
    return os.path.realpath(sys.executable)


def busy_percent(seconds: float = 0.5) -> float | None:
    """How busy all CPUs were (%) over ``seconds``, from /proc/stat: other work on the machine
    (a test suite, another benchmark) skews every figure, so it is measured and shown."""

    def sample() -> tuple[int, int] | None:
        fields = _read("/proc/stat").split("\n", 1)[0].split()[1:]
        if not fields:
            return None
        values = [int(v) for v in fields]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values), idle

    first = sample()
    time.sleep(seconds)
    second = sample()
    if first is None or second is None or second[0] == first[0]:
        return None
    total, idle = second[0] - first[0], second[1] - first[1]
    return 100.0 * (total - idle) / total


def load_average() -> str:
    return " ".join(_read("/proc/loadavg").split()[:3])


def describe(python: str, layer: Path | None, busy_before: float | None = None) -> dict[str, Any]:
    """The machine and code under test; ``busy_before`` is ``busy_percent()`` taken before
    the bench did anything itself (the layer build would count otherwise)."""
    cpuinfo = _read("/proc/cpuinfo")
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    mhz = re.search(r"^cpu MHz\s*:\s*(.+)$", cpuinfo, re.M)
    meminfo = re.search(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"), re.M)
    hypervisor = re.search(r"Hypervisor vendor:\s*(.+)", _run(["lscpu"]))
    try:
        affinity = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = []
    status = _run(["git", "status", "--porcelain", "--", "lambda_logs_http", "bin", "build.sh"],
                  REPO)
    nginx = _run(["nginx", "-v"]) if shutil.which("nginx") else ""
    info: dict[str, Any] = {
        "cpu_model": model.group(1).strip() if model else platform.processor() or "unknown",
        "cpu_mhz": float(mhz.group(1)) if mhz else None,
        "cores": os.cpu_count(),
        "affinity": affinity,
        "hypervisor": hypervisor.group(1).strip() if hypervisor else "",
        "memory_gib": round(int(meminfo.group(1)) / 1024 / 1024, 1) if meminfo else None,
        "kernel": platform.release(),
        "extension_python": python,
        "extension_python_version": python_version(python),
        "bench_python": sys.executable,
        "bench_python_version": platform.python_version(),
        "pyenv_versions": pyenv_versions(),
        "git_commit": _run(["git", "rev-parse", "--short", "HEAD"], REPO),
        "extension_sources_dirty": bool(status),
        "nginx": nginx.replace("nginx version: ", ""),
        "openssl": _run(["openssl", "version"]),
        "busy_percent_before": busy_before if busy_before is not None else busy_percent(),
        "load_average_before": load_average(),
    }
    if layer is not None:
        init = _read(str(layer / "lambda-logs-http" / "lambda_logs_http" / "__init__.py"))
        version = re.search(r"__version__\s*=\s*['\"]([^'\"]+)", init)
        info["extension_version"] = version.group(1) if version else "unknown"
        tag = "".join(info["extension_python_version"].split(".")[:2])
        info["layer_has_bytecode_for_python"] = bool(glob.glob(str(
            layer / "lambda-logs-http" / "lambda_logs_http" / "__pycache__"
            / f"*.cpython-{tag}.pyc")))
    return info


def lines(info: dict[str, Any]) -> list[str]:
    """The machine description as printed above the tables."""
    cores = f"{info['cores']} cores"
    if info.get("hypervisor"):
        cores += f", {info['hypervisor']} guest"
    text = [
        f"machine   {info['cpu_model']} @ {info['cpu_mhz'] or '?'} MHz, {cores}, "
        f"{info['memory_gib']} GiB, Linux {info['kernel']}",
        f"extension Python {info['extension_python_version']} ({info['extension_python']})",
        f"bench     Python {info['bench_python_version']} ({info['bench_python']}); "
        f"pyenv has {', '.join(info['pyenv_versions']) or 'none'}",
        f"code      lambda-logs-http {info.get('extension_version', '?')} at "
        f"{info['git_commit'] or '?'}"
        + (" + uncommitted changes" if info["extension_sources_dirty"] else "")
        + f"; {info['nginx'] or 'no nginx'}; {info['openssl'] or 'no openssl'}",
    ]
    busy = info.get("busy_percent_before")
    text.append(f"load      {busy:.0f}% of the CPUs busy just before the run "
                f"(load average {info['load_average_before']})" if busy is not None
                else f"load      load average {info['load_average_before']}")
    if busy is not None and busy > 10:
        text.append("WARNING   the machine is busy with other work: figures will be noisy "
                    "(run again when it is idle)")
    if info.get("layer_has_bytecode_for_python") is False:
        text.append("WARNING   the layer has no bytecode for this Python: init is inflated by "
                    "compiling at every start")
    return text
