"""Lambda's CPU share (``limit_cpu=True`` / ``--memory MB``): quota, placement, clean-up.

The tests that create cgroups skip, naming what is missing, where this machine cannot (not
root, no cpu controller); the parsing and the error message are tested everywhere.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.sandbox.sandbox_helpers import wait_until, write_function
from tools.lambda_sandbox import FunctionSpec
from tools.lambda_sandbox.cpu_share import (
    Candidate,
    CpuCgroup,
    CpuShareUnavailable,
    candidates,
    quota_us,
)

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]

# This machine's layout (cgroup v1 cpu at the root, a v2 tree without the cpu controller) and a
# systemd host on pure cgroup v2.
V1_MOUNTS = """\
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0
cgroup /sys/fs/cgroup/cpuset cgroup rw,relatime,cpuset 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
"""
V1_SELF = "3:cpuset:/\n2:cpuacct:/\n1:cpu:/\n0::/\n"
V2_MOUNTS = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n"
V2_SELF = "0::/user.slice/user-1000.slice/session-2.scope\n"


def _cgroup_or_skip(memory_mb: int) -> CpuCgroup:
    try:
        return CpuCgroup.create(memory_mb, prefix="lambda-sandbox-test")
    except CpuShareUnavailable as exc:
        pytest.skip(f"cannot create a CPU cgroup here (run as root on a machine with the cpu "
                    f"controller): {exc}")


@pytest.fixture
def cgroup_available() -> None:
    _cgroup_or_skip(128).remove()


@pytest.mark.parametrize("memory_mb, quota", [(128, 7236), (512, 28943), (1769, 100_000),
                                               (10240, 578_858)])
def test_quota_is_lambdas_share(memory_mb: int, quota: int) -> None:
    assert quota_us(memory_mb) == quota


def test_candidates_prefer_v2_then_v1() -> None:
    found, rejected = candidates(V1_MOUNTS, V1_SELF)
    assert found == [Candidate("v2", Path("/sys/fs/cgroup/unified")),
                     Candidate("v1", Path("/sys/fs/cgroup/cpu"))]
    assert rejected == []
    found, rejected = candidates(V2_MOUNTS, V2_SELF)
    own = Path("/sys/fs/cgroup/user.slice/user-1000.slice/session-2.scope")
    assert found == [Candidate("v2", own), Candidate("v2", own.parent)]
    assert rejected == ["no cgroup v1 hierarchy with the cpu controller is mounted"]
    # v1 with cpu and cpuacct on one hierarchy, this process in a nested cgroup.
    found, _ = candidates("cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\n",
                          "4:cpu,cpuacct:/docker/abc\n")
    assert found == [Candidate("v1", Path("/sys/fs/cgroup/cpu,cpuacct/docker/abc"))]


def test_no_cgroup_hierarchy_gives_a_clear_message() -> None:
    with pytest.raises(CpuShareUnavailable) as info:
        CpuCgroup.create(128, mounts="proc /proc proc rw 0 0\n", self_cgroup="")
    message = str(info.value)
    assert "Lambda's CPU share for 128 MB" in message and "7236 µs per 100000 µs" in message
    assert "no cgroup v2 hierarchy is mounted" in message
    assert "no cgroup v1 hierarchy with the cpu controller" in message


def test_trampoline_moves_the_process_in_before_exec(cgroup_available: None) -> None:
    cgroup = _cgroup_or_skip(512)
    try:
        # `cat` reads its own cgroup: it is inside from its first instruction.
        out = subprocess.run(cgroup.wrap(["cat", "/proc/self/cgroup"]), capture_output=True,
                             text=True, timeout=10, check=True).stdout
        assert any(line.endswith("/" + cgroup.path.name) for line in out.splitlines()), out
    finally:
        assert cgroup.remove()
    assert not cgroup.path.exists()


def test_a_cpu_bound_process_gets_its_share(cgroup_available: None) -> None:
    cgroup = _cgroup_or_skip(512)
    share = cgroup.limit.vcpus  # 0.289
    try:
        started = time.monotonic()
        process = subprocess.Popen(cgroup.wrap([
            sys.executable, "-S", "-c",
            "import time\nend = time.monotonic() + 1.0\nwhile time.monotonic() < end: pass"]))
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        cpu = usage.ru_utime + usage.ru_stime
        throttled = cgroup.stat()
    finally:
        assert cgroup.remove()
    assert process.returncode == 0
    # Unconstrained it would use ~1 s of CPU. Less than its share only on a busy machine;
    # more than a period's quota above it, never.
    assert cpu <= share * wall * 1.15 + 0.03, (cpu, wall)
    assert cpu >= share * wall * 0.5, (cpu, wall)
    assert throttled["nr_throttled"] >= 5


BURN_APP = """\
import os, time

# Init burns 100 ms of CPU: with 0.289 vCPU that takes 346 ms or more.
while time.process_time() < 0.1:
    pass


def handler(event, context):
    return {"memory": os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"],
            "cgroup": open("/proc/self/cgroup").read()}
"""


def test_sandbox_runs_runtime_and_extensions_in_the_cgroup(tmp_path, layer, sandbox_factory,
                                                            cgroup_available: None) -> None:
    layer.add("ext-a")
    code = write_function(tmp_path / "fn", BURN_APP)
    sb = sandbox_factory(layer.root, FunctionSpec(code_dir=code), memory_mb=512,
                         limit_cpu=True, timeout_s=10.0)
    assert sb.cpu_limit is not None and sb.cpu_limit.quota_us == 28943
    path = sb.cpu_limit.path
    assert path.is_dir()
    init = sb.start()
    assert init.ok, init.error
    # The runtime's init burned 100 ms of CPU at 28.9 % of a CPU.
    assert init.duration_ms >= 0.8 * 100 / sb.cpu_limit.vcpus
    pids = sb.pids()
    in_cgroup = {int(p) for p in (path / "cgroup.procs").read_text().split()}
    assert set(pids.values()) <= in_cgroup
    result = sb.invoke()
    assert result.status == "success", result.error
    assert result.response["memory"] == "512"
    assert path.name in result.response["cgroup"]
    assert sb.cpu_stat()["nr_throttled"] > 0
    sb.shutdown()
    assert not path.exists()


def test_without_limit_cpu_nothing_is_created(sandbox_factory) -> None:
    sb = sandbox_factory(memory_mb=512)
    assert sb.cpu_limit is None and sb.cpu_stat() == {}
    assert sb.invoke().status == "success"


def test_cgroup_removed_after_a_failed_init(layer, sandbox_factory,
                                            cgroup_available: None) -> None:
    layer.add("quitter", exit_before_register=3)
    sb = sandbox_factory(layer.root, memory_mb=1769, limit_cpu=True)
    assert sb.cpu_limit is not None
    path = sb.cpu_limit.path
    init = sb.start()
    assert not init.ok and init.error["errorType"] == "Extension.Crash"
    assert path.is_dir()  # the next invoke re-inits in the same environment
    sb.shutdown()
    assert not path.exists()


# An extension that leaves a daemon behind, outside its process group (which the sandbox
# kills): only the cgroup still knows about it.
DAEMONISING_EXTENSION = """\
import http.client, json, os, subprocess, sys

daemon = subprocess.Popen(["sleep", "60"], start_new_session=True)
with open(sys.argv[1], "w") as f:
    f.write(str(daemon.pid))
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")


def call(method, path, body=None, headers=None):
    conn = http.client.HTTPConnection(host, int(port))
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    return response.getheader("Lambda-Extension-Identifier"), response.read()


ext_id, _ = call("POST", "/2020-01-01/extension/register", json.dumps({"events": ["SHUTDOWN"]}),
                 {"Lambda-Extension-Name": "daemoniser"})
while b"SHUTDOWN" not in call("GET", "/2020-01-01/extension/event/next", None,
                              {"Lambda-Extension-Identifier": ext_id})[1]:
    pass
"""


def test_cgroup_removal_ends_what_escaped_the_process_group(tmp_path, layer, sandbox_factory,
                                                            cgroup_available: None) -> None:
    pid_file = tmp_path / "daemon.pid"
    script = tmp_path / "daemoniser.py"
    script.write_text(DAEMONISING_EXTENSION)
    launcher = layer.root / "extensions" / "daemoniser"
    launcher.write_text(f"#!/bin/sh\nexec {sys.executable} {script} {pid_file}\n")
    launcher.chmod(launcher.stat().st_mode | stat.S_IXUSR)
    sb = sandbox_factory(layer.root, memory_mb=1769, limit_cpu=True)
    assert sb.cpu_limit is not None
    path = sb.cpu_limit.path
    assert sb.start().ok
    daemon = int(wait_until(pid_file.read_text))
    assert daemon in {int(p) for p in (path / "cgroup.procs").read_text().split()}
    sb.shutdown()
    assert not path.exists()
    # Killed (not necessarily reaped yet by its new parent): gone or a zombie.
    assert wait_until(lambda: _gone_or_zombie(daemon), timeout=5.0)


def _gone_or_zombie(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return True
    return fields[0] in ("Z", "X")


def test_cli_memory_reports_the_cold_start(cgroup_available: None) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "tools.lambda_sandbox", "--memory", "512", "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=40)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    out = completed.stdout
    cpu_line = next(line for line in out.splitlines() if line.startswith("CPU   512 MB"))
    assert "28943 µs / 100000 µs" in cpu_line
    assert "COLD START init " in out and "first invocation " in out
    assert "throttled in " in out
    path = Path(cpu_line.rsplit("(", 1)[1].rstrip(")"))
    assert path.name.startswith("lambda-sandbox-") and not path.exists()


def test_cli_without_memory_leaves_the_cpu_alone() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "tools.lambda_sandbox", "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=40)
    assert completed.returncode == 0, completed.stderr
    assert "CPU   unlimited (128 MB memory size)" in completed.stdout
    assert "COLD START init " in completed.stdout


def test_memory_size_variable_matches(tmp_path, sandbox_factory) -> None:
    code = write_function(tmp_path / "fn", BURN_APP.replace("0.1:", "0.0:"))
    sb = sandbox_factory(None, FunctionSpec(code_dir=code), memory_mb=1769)
    result = sb.invoke()
    assert result.status == "success" and result.response["memory"] == "1769"
    assert result.report["metrics"]["memorySizeMB"] == 1769
