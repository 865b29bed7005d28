"""The built layer against what a function can really log: values nested 5,000 and 100,000
levels deep, Python's default NaN, ``1e999``, a 5,000-digit integer, a lone surrogate in a
record too large for a batch, bytes that are not UTF-8 — in Lambda's Text and JSON log formats,
with the environment frozen between invocations, and a strict JSON receiver (it answers 400 to
``NaN``, ``Infinity`` or invalid UTF-8). Every other line and the invocation's END arrive, and
every body is strict JSON.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest

from tests.e2e.test_extension import all_output, messages, run
from tools.lambda_sandbox import Sandbox
from tools.lambda_sandbox.receiver import Receiver, strictly_json

__all__ = ["run"]  # a fixture, used by name

APP = r'''
import json, logging, sys

logger = logging.getLogger()
logger.setLevel(logging.INFO)
DEEP = '{"a":' * 5000 + '1' + '}' * 5000
HOSTILE = [
    DEEP,
    '{"a":' * 100000 + '1' + '}' * 100000,
    '{"message": "deep inside", "x": ' + DEEP + '}',
    json.dumps({"p99": float("nan")}),
    json.dumps({"level": "warn", "message": "infinite", "v": float("inf")}),
    '{"v": 1e999}',
    '{"n": ' + '9' * 5000 + '}',
    json.dumps({"message": "\udcff" * 20000}),  # a lone surrogate, in a record to truncate
    json.dumps({1.5: "a float key", "k": [float("-inf")]}),
]

def handler(event, context):
    for i, line in enumerate(HOSTILE):
        print(f"ok-{i}")
        print(line)
    sys.stdout.flush()
    sys.stdout.buffer.write(b"\xff\xfe not utf-8\n")
    sys.stdout.flush()
    logger.warning("nan-extra", extra={"p99": float("nan")})
    print("ok-last")
    return {"lines": len(HOSTILE)}
'''
HOSTILE_LINES = 9


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "code"
    directory.mkdir()
    (directory / "app.py").write_text(APP)
    return directory


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    """A strict JSON receiver, as many log backends are."""
    with Receiver(tmp_path, strict=True) as running:
        yield running


@pytest.mark.timeout(60)
@pytest.mark.parametrize("log_format", ["Text", "JSON"])
def test_hostile_lines_cost_nothing_else(
    run: Callable[..., Sandbox], receiver: Receiver, log_format: str
) -> None:
    sandbox = run({"HTTP_MAX_BATCH_BYTES": "65536"}, log_format=log_format)
    results = [sandbox.invoke({}) for _ in range(2)]
    assert [r.status for r in results] == ["success", "success"]
    got = messages(receiver)  # frozen now: this arrived before the invocation was released
    expected = {f"ok-{i}" for i in range(HOSTILE_LINES)} | {"ok-last", "nan-extra"}
    for result in results:
        assert f"END RequestId: {result.request_id}" in got
    assert all(got.count(line) == 2 for line in expected), sorted(set(expected) - set(got))
    shutdown = sandbox.shutdown()
    assert shutdown.exit_codes["lambda-logs-http"] == 0

    assert receiver.refused() == []  # not one body a strict parser refuses
    assert all(strictly_json(r["body"].encode()) for r in receiver.requests())
    function = [e for e in receiver.entries() if e["log_type"] == "function"]
    # every line each invocation printed, the hostile ones included (none dropped)
    assert len(function) == 2 * (2 * HOSTILE_LINES + 3)
    assert any("bytes removed]" in e["message"] for e in function)  # truncated, not lost
    output = all_output(sandbox)
    assert "Traceback" not in output and "unencodable" not in output
    summary = [line for line in output.splitlines() if "shutdown summary:" in line]
    assert len(summary) == 1 and "dropped=0" in summary[0]
