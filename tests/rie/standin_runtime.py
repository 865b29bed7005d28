"""A tiny custom Lambda runtime (the function side of RIE scenarios), standard library only.

Why: a scenario needs a runtime that produces known log lines and answers invokes, without the
moving parts of a real runtime client. It loops on the Runtime API and, per invocation, prints
``fn-out <requestId> <message>`` on stdout and ``fn-err <requestId>`` on stderr, sleeps
``payload["sleep"]`` seconds if given (to make invokes overlap in managed-instances mode), then
answers ``{"requestId", "pid", "thread", "echo": payload}``; ``payload["fail"]`` posts an
invocation error instead.

It polls from ``$STANDIN_RUNTIME_THREADS`` threads (default 1), since in managed-instances mode one
runtime process may serve several invocations at once.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import urllib.request
from typing import Any

API = os.environ["AWS_LAMBDA_RUNTIME_API"]


def post(path: str, body: Any, headers: dict[str, str] | None = None) -> None:
    """POST JSON to the Runtime API."""
    request = urllib.request.Request(
        f"http://{API}{path}", data=json.dumps(body).encode(), method="POST", headers=headers or {}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def serve() -> None:
    """One polling loop: next -> log -> respond, forever."""
    while True:
        with urllib.request.urlopen(f"http://{API}/2018-06-01/runtime/invocation/next") as response:
            request_id = response.headers["Lambda-Runtime-Aws-Request-Id"]
            payload = json.loads(response.read() or b"null")
        message = payload.get("msg", "hello") if isinstance(payload, dict) else "hello"
        print(f"fn-out {request_id} {message}", flush=True)
        print(f"fn-err {request_id}", file=sys.stderr, flush=True)
        if isinstance(payload, dict) and payload.get("sleep"):
            time.sleep(float(payload["sleep"]))
        if isinstance(payload, dict) and payload.get("fail"):
            post(
                f"/2018-06-01/runtime/invocation/{request_id}/error",
                {"errorMessage": "asked to fail", "errorType": "StandinError"},
                {"Lambda-Runtime-Function-Error-Type": "Unhandled"},
            )
            continue
        answer = {
            "requestId": request_id,
            "pid": os.getpid(),
            "uid": os.getuid(),
            "thread": threading.current_thread().name,
            "echo": payload,
        }
        post(f"/2018-06-01/runtime/invocation/{request_id}/response", answer)


def main() -> None:
    """Start the polling threads; the RIE ends us with a signal."""
    count = int(os.environ.get("STANDIN_RUNTIME_THREADS", "1"))
    print(f"runtime: start pid={os.getpid()} threads={count}", flush=True)
    threads = [
        threading.Thread(target=serve, name=f"poller-{i}", daemon=True) for i in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
