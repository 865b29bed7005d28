"""A fake clock and a scripted transport: for unit tests of the delivery policy only.

Anything that crosses a process boundary is tested against real servers elsewhere; here the
point is to run the policy (backoff, Retry-After, 413, spill, drop accounting) deterministically,
with time passing only when the test or a send says so.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from lambda_logs_http.http.result import CONNECTION, SendResult, answered
from lambda_logs_http.http.transport import Transport


class FakeClock:
    """``clock()`` returns ``now``; ``sleep`` and ``advance`` move it forward."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)


class ScriptedTransport(Transport):
    """Answers each send with the next scripted answer (then 200s), and records every request.

    An answer is a status (``503``), a dict ``{"status", "body", "retry_after"}``, or
    ``"connection"`` for a connection failure. Each send takes ``send_seconds`` of fake time.
    """

    def __init__(self, clock: FakeClock, answers: list[Any] | None = None,
                 send_seconds: float = 0.001) -> None:
        self.clock = clock
        self.answers: deque[Any] = deque(answers or [])
        self.send_seconds = send_seconds
        self.requests: list[dict[str, Any]] = []
        self.closed = False
        self.query = ""

    def add_query(self, query: str) -> None:
        self.query = query

    def script(self, *answers: Any) -> None:
        self.answers.extend(answers)

    def send(self, body: bytes, headers: dict[str, str], timeout: float,
             answer_limit: int = 0) -> SendResult:
        self.clock.advance(self.send_seconds)
        self.requests.append({"body": body, "headers": dict(headers), "timeout": timeout,
                              "at": self.clock.now, "answer_limit": answer_limit,
                              "query": self.query})
        answer = self.answers.popleft() if self.answers else 200
        if answer == "connection":
            self.requests[-1]["status"] = 0
            return SendResult(False, 0, True, "connection failed: refused", kind=CONNECTION)
        if isinstance(answer, int):
            answer = {"status": answer}
        self.requests[-1]["status"] = answer["status"]
        return answered(answer["status"], answer.get("body", b""), answer.get("retry_after"))

    def close(self) -> None:
        self.closed = True

    def delivered(self) -> list[dict[str, Any]]:
        """Every entry of the requests that were answered 2xx, in order (seed format)."""
        return [entry for request in self.requests if 200 <= request["status"] < 300
                for entry in json.loads(request["body"])["logs"]]
