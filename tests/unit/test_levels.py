from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_logs_http.records import levels

RID = "459921b5-681c-4a96-beb0-81e0aa586026"


@pytest.mark.parametrize(
    ("line", "level", "message", "request_id"),
    [
        # Python runtime, Text format
        (f"[ERROR]\t2024-01-15T10:30:00.000Z\t{RID}\tboom\n", "ERROR", "boom", RID),
        (f"[WARNING]\t2024-01-15T10:30:00.000Z\t{RID}\tcareful\n", "WARN", "careful", RID),
        (f"[DEBUG]\t2024-01-15T10:30:00.000Z\t{RID}\tdetail\n", "DEBUG", "detail", RID),
        (f"[CRITICAL]\t2024-01-15T10:30:00.000Z\t{RID}\tdown\n", "FATAL", "down", RID),
        ("[INFO]\t2024-01-15T10:30:00.000Z\tNone\toutside a request\n", "INFO",
         "outside a request", ""),
        # multi-line record joined with carriage returns
        (f"[ERROR]\t2024-01-15T10:30:00.000Z\t{RID}\tfailed\rTraceback:\r  line 1\n", "ERROR",
         "failed\nTraceback:\n  line 1", RID),
        # Node.js runtime, Text format
        (f"2024-05-15T23:59:20.159Z\t{RID}\tWARN\tnode says\n", "WARN", "node says", RID),
        (f"2024-05-15T23:59:20.159Z\t{RID}\tERROR\tInvoke Error \n", "ERROR", "Invoke Error ", RID),
        # JSON line from a custom runtime or a JSON logger
        ('{"level":"error","message":"json line","requestId":"r-1"}\n', "ERROR", "json line", "r-1"),
        ('{"severity":"WARNING","msg":"gcp style"}', "WARN", "gcp style", ""),
        # common prefixes
        ("[ERROR] Runtime.ImportModuleError: no module\n", "ERROR",
         "[ERROR] Runtime.ImportModuleError: no module", ""),
        ("WARNING:root:python default format\n", "WARN", "WARNING:root:python default format", ""),
        ("Error: Cannot find module 'x'\n", "ERROR", "Error: Cannot find module 'x'", ""),
        ("ERROR something broke\n", "ERROR", "ERROR something broke", ""),
        ("info: winston style\n", "INFO", "info: winston style", ""),
        ("  [warn] indented\n", "WARN", "  [warn] indented", ""),
        # no level
        ("plain print output\n", "INFO", "plain print output", ""),
        ("error happened (lower-case, no colon)\n", "INFO", "error happened (lower-case, no colon)",
         ""),
        ("Note: not a level\n", "INFO", "Note: not a level", ""),
        ("", "INFO", "", ""),
        ("{not json}\n", "INFO", "{not json}", ""),
        ("2024 was a year\n", "INFO", "2024 was a year", ""),
    ],
)
def test_parse_text(line: str, level: str, message: str, request_id: str) -> None:
    assert levels.parse_text(line)[:3] == (level, message, request_id)


def test_parse_fields_lambda_json_format() -> None:
    record = {
        "timestamp": "2024-01-15T10:30:00.000Z",
        "level": "ERROR",
        "message": "failed",
        "logger": "root",
        "requestId": RID,
        "errorType": "ValueError",
        "stackTrace": ["  File x"],
    }
    parsed = levels.parse_fields(record)
    assert parsed[:3] == ("ERROR", "failed", RID)
    assert parsed[3] is record


@pytest.mark.parametrize(
    ("record", "level", "message"),
    [
        ({"level": "bogus", "message": "m"}, "INFO", "m"),
        ({"level": 30, "message": "m"}, "INFO", "m"),
        ({"message": {"nested": 1}}, "INFO", '{"nested":1}'),
        ({"other": 1}, "INFO", '{"other":1}'),
        ({"levelname": "warning", "message": "m"}, "WARN", "m"),
        # Lambda's JSON record of an unhandled exception
        ({"level": "ERROR", "errorType": "RuntimeError", "errorMessage": "boom", "stackTrace": []},
         "ERROR", "RuntimeError: boom"),
    ],
)
def test_parse_fields_odd_records(record: dict[str, object], level: str, message: str) -> None:
    assert levels.parse_fields(record)[:2] == (level, message)


def test_normalize() -> None:
    assert levels.normalize("warning") == "WARN"
    assert levels.normalize(" Fatal ") == "FATAL"
    assert levels.normalize("verbose") is None
    assert levels.normalize(None) is None


# Lines made of the pieces the parser looks at: brackets, level words in several cases, tabs,
# line ends, a timestamp's start, the request ids that mean "none".
_PIECES = st.sampled_from(
    ["[", "]", "INFO", "info", "Warning", "WARNING", "ERR", "x", "\t", "\n", "\r", "\r\n",
     "2024-", "1", " ", "None", "null", "{", "}", ":", RID, "é", "€"]
)  # fmt: skip


@settings(max_examples=1500, deadline=None)
@given(st.lists(_PIECES, max_size=14).map("".join))
def test_the_python_runtimes_fast_path_reads_lines_as_the_general_parser_does(line: str) -> None:
    assert levels.parse_text(line) == levels._parse_split(line, line.split("\t", 3))
