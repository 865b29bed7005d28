"""A receiver that reads requests the way Elasticsearch's ``_bulk``, Splunk's HTTP Event
Collector or Datadog's logs intake does, and answers as they do.

Run as its own process (``python -m tests.support.vendor_receiver --vendor NAME --record FILE
--credential SECRET``); it prints ``LISTENING <port>`` once ready. Each request is checked —
the path (``/<index>/_bulk``, ``/services/collector/event``, ``/api/v2/logs``), the
credential in the vendor's header (``Authorization: ApiKey …``/``Splunk …``, ``DD-API-KEY``),
the content type, and the body parsed as the vendor parses it (``tests.support.hec``,
``datadog_intake``, ``_bulk`` NDJSON) — and answered with the vendor's status and body. With
``--bulk-fail-first``, Elasticsearch's first ``_bulk`` answer is a documented partial failure:
200, ``errors: true``, its first document refused for now (429
``es_rejected_execution_exception``) and its second for good (400 ``document_parsing_exception``).

Every request is recorded as one JSON line: the status answered, the problem if any, the path,
the headers, and the documents (log events) read from the body.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import select
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

START_TIMEOUT = 20.0
PATHS = {"elasticsearch": "/logs-lambda-default/_bulk", "splunk_hec": "/services/collector/event",
         "datadog": "/api/v2/logs"}
CONTENT_TYPES = {"elasticsearch": "application/x-ndjson", "splunk_hec": "application/json",
                 "datadog": "application/json"}
REFUSED_FOR_NOW = {"type": "es_rejected_execution_exception",
                   "reason": "rejected execution of coordinating operation"}
REFUSED_FOR_GOOD = {"type": "document_parsing_exception",
                    "reason": "[1:42] failed to parse field [record] of type [keyword]"}


class Refused(Exception):
    def __init__(self, status: int, answer: dict[str, Any], problem: str) -> None:
        super().__init__(problem)
        self.status, self.answer, self.problem = status, answer, problem


def read_bulk(body: bytes) -> list[dict[str, Any]]:
    """The documents of a ``_bulk`` body as Elasticsearch reads it (an error answer else)."""
    def refuse(reason: str) -> Refused:
        return Refused(400, {"error": {"type": "illegal_argument_exception", "reason": reason},
                             "status": 400}, reason)

    text = body.decode("utf-8")
    if not text.endswith("\n"):
        raise refuse("The bulk request must be terminated by a newline [\\n]")
    lines = text[:-1].split("\n")
    documents = []
    for number in range(0, len(lines), 2):
        action = json.loads(lines[number])
        if action != {"create": {}}:
            raise refuse(f"unexpected action line {lines[number][:60]!r}")
        if number + 1 >= len(lines):
            raise refuse("a create action without its document")
        document = json.loads(lines[number + 1])
        if not isinstance(document, dict) or "@timestamp" not in document:
            raise refuse("a document without @timestamp (a data stream needs one)")
        documents.append(document)
    return documents


def _handler(vendor: str, record: Path, credential: str, state: dict[str, Any]) -> Any:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            wire = self.rfile.read(length)
            documents: list[dict[str, Any]] = []
            try:
                body = wire
                if self.headers.get("Content-Encoding", "").lower() == "gzip":
                    body = gzip.decompress(wire)
                self._check_request()
                documents = self._read(body)
                status, answer = self._answer_for(documents)
                problem = ""
            except Refused as refused:
                status, answer, problem = refused.status, refused.answer, refused.problem
            except (ValueError, UnicodeDecodeError) as exc:
                status, answer, problem = 400, self._bad_data(str(exc)), f"unreadable: {exc}"
            entry = {"status": status, "problem": problem, "path": self.path,
                     "headers": dict(self.headers.items()), "documents": documents,
                     "wire_bytes": len(wire)}
            with lock, record.open("a", encoding="utf-8") as out:
                out.write(json.dumps(entry) + "\n")
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _check_request(self) -> None:
            path, _, query = self.path.partition("?")
            if path != PATHS[vendor]:
                raise Refused(404, {"error": f"no handler for {path}"}, f"path {path}")
            content_type = self.headers.get("Content-Type", "")
            if content_type.split(";")[0].strip() != CONTENT_TYPES[vendor]:
                raise Refused(415 if vendor == "datadog" else 400,
                              self._bad_data("content type"), f"content type {content_type}")
            if vendor == "elasticsearch":
                if self.headers.get("Authorization") != f"ApiKey {credential}":
                    raise Refused(401, {"error": {"type": "security_exception",
                                                  "reason": "missing authentication"},
                                        "status": 401}, "credential")
                if "filter_path=" not in query:
                    raise Refused(400, self._bad_data("no filter_path"), "no filter_path")
            elif vendor == "splunk_hec":
                if self.headers.get("Authorization") != f"Splunk {credential}":
                    raise Refused(403, {"text": "Invalid token", "code": 4}, "credential")
            elif self.headers.get("DD-API-KEY") != credential:
                raise Refused(403, {"errors": ["Forbidden"]}, "credential")

        def _read(self, body: bytes) -> list[dict[str, Any]]:
            if vendor == "elasticsearch":
                return read_bulk(body)
            if vendor == "splunk_hec":
                from tests.support import hec

                try:
                    return hec.read_events(body)
                except hec.Refused as refused:
                    raise Refused(400, json.loads(refused.answer), str(refused)) from None
            from tests.support import datadog_intake

            try:
                return datadog_intake.read_logs(body)
            except datadog_intake.Refused as refused:
                raise Refused(refused.status, json.loads(refused.answer), str(refused)) from None

        def _answer_for(self, documents: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
            if vendor == "splunk_hec":
                return 200, {"text": "Success", "code": 0}
            if vendor == "datadog":
                return 202, {}
            items: list[dict[str, Any]] = [{"create": {"status": 201}} for _ in documents]
            with lock:
                fail = state["fail_first"] and len(documents) >= 2
                state["fail_first"] = state["fail_first"] and not fail
            if fail:
                items[0] = {"create": {"status": 429, "error": REFUSED_FOR_NOW}}
                items[1] = {"create": {"status": 400, "error": REFUSED_FOR_GOOD}}
            return 200, {"errors": fail, "items": items}

        def _bad_data(self, reason: str) -> dict[str, Any]:
            if vendor == "splunk_hec":
                return {"text": "Invalid data format", "code": 6}
            if vendor == "datadog":
                return {"errors": [reason]}
            return {"error": {"type": "parse_exception", "reason": reason}, "status": 400}

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    return Handler


class VendorReceiver:
    """The receiver process, owned by a test: what it recorded, and its stop (by PID)."""

    def __init__(self, directory: Path, vendor: str, credential: str,
                 bulk_fail_first: bool = False) -> None:
        self.vendor = vendor
        self.record = directory / f"{vendor}-{os.getpid()}-{id(self)}.jsonl"
        self.record.touch()
        command = [sys.executable, "-m", "tests.support.vendor_receiver", "--vendor", vendor,
                   "--record", str(self.record), "--credential", credential]
        if bulk_fail_first:
            command.append("--bulk-fail-first")
        root = Path(__file__).resolve().parents[2]
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=root,
                                         start_new_session=True)
        assert self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], START_TIMEOUT)
        line = self._process.stdout.readline() if ready else ""
        if not line.startswith("LISTENING "):
            self.stop()
            raise RuntimeError(f"the {vendor} receiver did not start: {line!r}")
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}{PATHS[vendor]}"

    def requests(self) -> list[dict[str, Any]]:
        lines = self.record.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def problems(self) -> list[str]:
        return [r["problem"] for r in self.requests() if r["problem"]]

    def documents(self) -> list[dict[str, Any]]:
        """Every document of every request answered 2xx (ES: partial failures included)."""
        return [d for r in self.requests() if 200 <= r["status"] < 300 for d in r["documents"]]

    def stop(self) -> None:
        from tests.support.process import stop_group

        stop_group(self._process)
        if self._process.stdout is not None:
            self._process.stdout.close()

    def __enter__(self) -> VendorReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vendor", choices=sorted(PATHS), required=True)
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--credential", required=True)
    parser.add_argument("--bulk-fail-first", action="store_true")
    args = parser.parse_args()
    state = {"fail_first": args.bulk_fail_first}
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), _handler(args.vendor, args.record, args.credential, state)
    )
    server.daemon_threads = True
    print(f"LISTENING {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
