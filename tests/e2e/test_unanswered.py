"""A receiver that never answers, a connect that never completes, a TLS handshake that never
finishes: the built layer in the sandbox, with default settings, frozen between invocations.

What must hold, whatever the network does: each invocation is held no longer than the flush
budget; Lambda never has to drop a push (the listener answers every one at once, since a send in
flight holds up nothing); and at SHUTDOWN nothing is lost — what could not be delivered is on
disk, and a later extension process in the environment sends it once the receiver answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.e2e.test_extension import APP
from tests.support.blackholes import FullBacklog, SilentServer
from tools.lambda_sandbox import FunctionSpec, Sandbox
from tools.lambda_sandbox.receiver import Receiver

BUDGET_MS = 500  # the default HTTP_FLUSH_BUDGET_MS
HELD_BOUND_MS = BUDGET_MS + 150
INVOCATIONS, LINES = 3, 20


@pytest.fixture
def start(real_layer: Path, tmp_path: Path) -> Iterator[Callable[..., Sandbox]]:
    """A started sandbox running the built layer with ``env``; all shut down at the end."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(APP)
    made: list[Sandbox] = []

    def make(env: dict[str, str], **options: Any) -> Sandbox:
        settings = {"HTTP_LISTENER_PORT": "0", "HTTP_SPILL_DIR": str(tmp_path / "spill"), **env}
        sandbox = Sandbox(real_layer, FunctionSpec(handler="app.handler", code_dir=code),
                          settings, function_name="unanswered-fn", **options)
        made.append(sandbox)
        init = sandbox.start()
        assert init.ok, (init, sandbox.extension_output)
        return sandbox

    yield make
    for sandbox in made:
        sandbox.shutdown()


def summary(sandbox: Sandbox) -> dict[str, str]:
    (line,) = [line for line in sandbox.extension_output if "shutdown summary:" in line]
    fields = line.split("shutdown summary:", 1)[1].split()
    return dict(field.split("=", 1) for field in fields if "=" in field)


def exercise(start: Callable[..., Sandbox], env: dict[str, str]) -> Sandbox:
    """Invocations against an endpoint that never answers, then SHUTDOWN."""
    sandbox = start(env)
    for n in range(INVOCATIONS):
        result = sandbox.invoke({"n": n, "lines": LINES})
        assert result.status == "success"
        held = result.post_runtime_extensions_ms
        assert held is not None and held <= HELD_BOUND_MS, (n, held)
    sandbox.shutdown()
    output = "\n".join(sandbox.extension_output)
    for stats in sandbox.delivery_stats().values():
        assert stats.dropped_records == 0, output  # Lambda never had to drop
        # Every push answered at once: at most one failed attempt, the one after exit.
        assert stats.failed_attempts <= 1, output
    figures = summary(sandbox)
    assert figures["dropped"] == "0", output
    assert int(figures["on_disk"]) > INVOCATIONS * LINES, output  # all kept for later
    assert "records are lost" not in output and "did not stop in time" not in output
    return sandbox


def delivered_later(start: Callable[..., Sandbox], receiver: Receiver) -> None:
    """A new extension process in the same environment (same /tmp) sends what was kept."""
    sandbox = start({"HTTP_ENDPOINT": receiver.url})
    sandbox.invoke({"n": 99, "lines": 1})
    sandbox.shutdown()
    got = {str(e["message"]) for e in receiver.entries()}
    missing = [f"line-{n}-{i}" for n in range(INVOCATIONS) for i in range(LINES)
               if f"line-{n}-{i}" not in got]
    assert missing == []


def test_a_receiver_that_never_answers(
    start: Callable[..., Sandbox], receiver: Receiver
) -> None:
    with SilentServer() as silent:
        exercise(start, {"HTTP_ENDPOINT": silent.url})
        assert silent.connections >= 1
    delivered_later(start, receiver)


def test_a_connect_that_never_completes(
    start: Callable[..., Sandbox], receiver: Receiver
) -> None:
    with FullBacklog() as unreachable:
        exercise(start, {"HTTP_ENDPOINT": unreachable.url})
    delivered_later(start, receiver)


def test_a_tls_handshake_that_never_completes(
    start: Callable[..., Sandbox], receiver: Receiver
) -> None:
    with SilentServer() as silent:
        exercise(start, {"HTTP_ENDPOINT": silent.https_url})
        assert silent.connections >= 1
    delivered_later(start, receiver)
