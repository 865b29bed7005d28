"""The standalone layer under AWS's Runtime Interface Emulator with a Node.js function: no Python
on /var/lang, none on the PATH the emulator hands out, a bootstrap that is `node` (a custom
runtime in a few lines, Debian's nodejs). The extension must run on the layer's own interpreter
and, in managed-instances mode (the emulator's real Telemetry API), deliver the function's lines.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.packaging.standalone_helpers import (
    CACHE,
    ON_LAMBDA,
    Standalone,
    build_standalone,
    host_arch,
)
from tests.rie.harness import RECEIVER_URL, rie_available, run_rie_scenario

NODE = shutil.which("node") or shutil.which("nodejs")
# A Node.js custom runtime: the Runtime API loop, three lines per invocation, and the executable
# of the extension's process as the function sees it (/proc/<pid>/exe).
RUNTIME_JS = r"""
const http = require("http");
const fs = require("fs");
const [host, port] = process.env.AWS_LAMBDA_RUNTIME_API.split(":");
function call(method, path, body) {
  return new Promise((resolve, reject) => {
    const r = http.request({ host, port, method, path }, (res) => {
      let data = "";
      res.on("data", (c) => (data += c));
      res.on("end", () => resolve({ headers: res.headers, body: data }));
    });
    r.on("error", reject);
    if (body) r.write(body);
    r.end();
  });
}
function extensionExecutables() {
  const found = [];
  for (const pid of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
      if (cmd.includes("lambda-logs-http")) found.push(fs.readlinkSync(`/proc/${pid}/exe`));
    } catch (e) {}
  }
  return found.join(",") || "none";
}
(async () => {
  for (;;) {
    const next = await call("GET", "/2018-06-01/runtime/invocation/next");
    const id = next.headers["lambda-runtime-aws-request-id"];
    const event = JSON.parse(next.body);
    for (let i = 0; i < 3; i++) console.log(`node-line-${event.n}-${i}`);
    console.log(`extension-exe ${extensionExecutables()}`);
    await call("POST", `/2018-06-01/runtime/invocation/${id}/response`, JSON.stringify({ n: event.n }));
  }
})();
"""
BOOTSTRAP = f"#!/bin/sh\nexec {NODE} /var/task/runtime.js\n"
# What Lambda's Node.js runtimes set, minus /var/lang/bin's contents: no Python anywhere on it.
ENV = {"PATH": "/var/lang/bin:/opt/bin"}


@pytest.fixture(scope="module")
def standalone_layer(tmp_path_factory: pytest.TempPathFactory) -> Standalone:
    ok, why = rie_available()
    if not ok:
        pytest.skip(f"RIE unavailable: {why}")
    if not NODE:
        pytest.skip("node missing (Debian: apt-get install nodejs)")
    arch = host_arch()
    if not arch:
        pytest.skip("no standalone build for this machine's architecture")
    return build_standalone(arch, tmp_path_factory.mktemp("standalone-rie"))


@pytest.fixture
def empty_lang() -> Iterator[Path]:
    """Mounted on /var/lang: a runtime without Python. Not under /tmp or /var (the harness
    covers those with tmpfs mounts)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="empty-lang.", dir=CACHE))
    (directory / "bin").mkdir()
    os.chmod(directory, 0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def entries_of(result) -> list[dict]:  # type: ignore[no-untyped-def]
    found = []
    for request in result.receiver_requests:
        if request.path.startswith("/ingest"):
            found.extend(json.loads(request.body)["logs"])
    return found


def exe_lines(result) -> list[str]:  # type: ignore[no-untyped-def]
    return [line for line in result.program_lines() if "extension-exe " in line]


def test_node_function_default_mode(standalone_layer: Standalone, empty_lang: Path) -> None:
    result = run_rie_scenario(
        standalone_layer.layer,
        BOOTSTRAP,
        task_files={"runtime.js": RUNTIME_JS},
        env={**ENV, "HTTP_ENDPOINT": f"{RECEIVER_URL}/ingest"},
        invocations=[{"n": n} for n in range(3)],
        python_prefix=empty_lang,
        timeout_s=60,
    )
    assert [json.loads(r.body) for r in result.responses] == [{"n": n} for n in range(3)], (
        result.describe()
    )
    exes = exe_lines(result)
    assert exes and all(line.endswith(f"extension-exe {ON_LAMBDA}") for line in exes), (
        result.describe()
    )
    output = "\n".join(result.program_lines())
    assert output.count("does not support the Telemetry API") == 1, result.describe()
    assert "Traceback" not in output
    assert not result.killed and result.rie_exit_code == 0, result.describe()
    assert "shutdown summary" in output
    assert result.leftover_processes == []


def test_node_function_managed_instances_delivers_its_lines(
    standalone_layer: Standalone, empty_lang: Path
) -> None:
    invocations = [{"n": n} for n in range(4)]
    result = run_rie_scenario(
        standalone_layer.layer,
        BOOTSTRAP,
        task_files={"runtime.js": RUNTIME_JS},
        env={
            **ENV,
            "HTTP_ENDPOINT": f"{RECEIVER_URL}/ingest",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "lambda-managed-instances",
            "HTTP_BATCH_MAX_AGE_MS": "200",
        },
        invocations=invocations,
        managed_instances=True,
        python_prefix=empty_lang,
        settle_s=5.0,
        settle_until_requests=1,
        unavailable_retry_s=15.0,
        timeout_s=90,
    )
    assert all(r.status == 200 for r in result.responses), result.describe()
    messages = [str(e["message"]) for e in entries_of(result)]
    expected = {f"node-line-{i['n']}-{k}" for i in invocations for k in range(3)}
    assert expected <= set(messages), result.describe()
    assert f"extension-exe {ON_LAMBDA}" in messages, result.describe()
    output = "\n".join(result.program_lines())
    assert "Traceback" not in output
    assert not result.killed and result.rie_exit_code == 0, result.describe()
