"""HTTP_MIN_LEVEL, HTTP_INCLUDE_PATTERN / HTTP_EXCLUDE_PATTERN, and the settings' errors: read
before register (settings.load), compiled on the worker thread (records.options.build)."""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lambda_logs_http import log
from lambda_logs_http.delivery.worker import DeliveryWorker, assemble
from lambda_logs_http.invocations import InvocationProgress
from lambda_logs_http.records import options
from lambda_logs_http.records.filters import MAX_MATCH_CHARS, Filter, backtracking_risk
from lambda_logs_http.records.transform import FILTERED, EntryContext, Transformer
from lambda_logs_http.settings.load import load
from lambda_logs_http.settings.model import Records
from lambda_logs_http.settings.parse import ConfigError
from lambda_logs_http.stats import Stats
from tests.support.fakes import FakeClock, ScriptedTransport

BASE = {"HTTP_ENDPOINT": "https://logs.example.com/ingest"}
RID = "459921b5-681c-4a96-beb0-81e0aa586026"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    log.set_stream(stream)
    try:
        yield stream
    finally:
        log.set_stream(sys.stdout)


def records(**values: str) -> Records:
    return load({**BASE, **values}).records


def transformer(**values: str) -> Transformer:
    return Transformer(
        EntryContext("fn", "$LATEST", 128, "eu-west-1", "x86_64"),
        screen=options.build(records(**values)),
    )


def line(level: str, message: str) -> dict[str, object]:
    return {"time": "t", "type": "function",
            "record": f"[{level}]\t2024-01-15T10:30:00.000Z\t{RID}\t{message}\n"}  # fmt: skip


PLATFORM = [
    {"time": "t", "type": "platform.start", "record": {"requestId": RID}},
    {"time": "t", "type": "platform.report",
     "record": {"requestId": RID, "status": "success", "metrics": {"durationMs": 1.0}}},
]  # fmt: skip


# -- settings, before register ----------------------------------------------------------------


def test_min_level_defaults_to_lambdas_log_level_then_to_everything() -> None:
    assert (records().min_level, records().min_level_variable) == ("", "")
    r = records(AWS_LAMBDA_LOG_LEVEL="warn")
    assert (r.min_level, r.min_level_variable) == ("WARN", "AWS_LAMBDA_LOG_LEVEL")
    r = records(AWS_LAMBDA_LOG_LEVEL="WARN", HTTP_MIN_LEVEL="debug")
    assert (r.min_level, r.min_level_variable) == ("DEBUG", "HTTP_MIN_LEVEL")
    assert records(HTTP_MIN_LEVEL="warning").min_level == "WARN"
    assert records(HTTP_MIN_LEVEL="critical").min_level == "FATAL"


def test_an_unknown_min_level_is_a_configuration_error_naming_it() -> None:
    with pytest.raises(ConfigError) as caught:
        load({**BASE, "HTTP_MIN_LEVEL": "LOUD"})
    assert caught.value.variable == "HTTP_MIN_LEVEL" and "TRACE, DEBUG" in str(caught.value)


def test_an_unknown_lambda_log_level_is_a_warning_and_filters_nothing() -> None:
    settings = load({**BASE, "AWS_LAMBDA_LOG_LEVEL": "verbose"})
    assert settings.records.min_level == ""
    assert any("AWS_LAMBDA_LOG_LEVEL" in w for w in settings.warnings)


@pytest.mark.parametrize("name", ["HTTP_INCLUDE_PATTERN", "HTTP_EXCLUDE_PATTERN",
                                  "HTTP_REDACT_PATTERNS"])  # fmt: skip
def test_an_overlong_pattern_setting_is_refused_before_register(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load({**BASE, name: "a" * 20_000})
    assert caught.value.variable == name


def test_redaction_is_on_by_default() -> None:
    assert records().redact is True
    assert records(HTTP_REDACT="false").redact is False


# -- compiled on the worker thread ------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "variable", "words"),
    [
        ({"HTTP_INCLUDE_PATTERN": "(unclosed"}, "HTTP_INCLUDE_PATTERN", "not a valid regular"),
        ({"HTTP_EXCLUDE_PATTERN": "a{2,1}"}, "HTTP_EXCLUDE_PATTERN", "not a valid regular"),
        ({"HTTP_REDACT_PATTERNS": "[oops"}, "HTTP_REDACT_PATTERNS", "not valid JSON"),
        ({"HTTP_REDACT_PATTERNS": '"abc"'}, "HTTP_REDACT_PATTERNS", "JSON array"),
        ({"HTTP_REDACT_PATTERNS": '["ok", 3]'}, "HTTP_REDACT_PATTERNS", "JSON array"),
        ({"HTTP_REDACT_PATTERNS": '["ok", ""]'}, "HTTP_REDACT_PATTERNS", "JSON array"),
        ({"HTTP_REDACT_PATTERNS": '["ok", "(x"]'}, "HTTP_REDACT_PATTERNS", "pattern 2 '(x'"),
        ({"HTTP_REDACT_PATTERNS": '["x*"]'}, "HTTP_REDACT_PATTERNS", "empty text"),
        ({"HTTP_REDACT_PATTERNS": json.dumps(["a"] * 33)}, "HTTP_REDACT_PATTERNS", "at most 32"),
    ],
)
def test_what_cannot_be_compiled_is_a_configuration_error_naming_the_variable(
    values: dict[str, str], variable: str, words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        options.build(records(**values))
    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ") and words in str(caught.value)


def test_nothing_to_do_builds_no_screen() -> None:
    assert options.build(records(HTTP_REDACT="false")) is None
    screen = options.build(records())
    assert screen is not None and screen.filter is None and screen.redactor is not None


@pytest.mark.parametrize("pattern", [r"(a+)+$", r"(\w*\s?)*x", r"(?:x|.+)*y", r"(a{1,3})+"])
def test_nested_repeats_are_warned_about(pattern: str, captured: io.StringIO) -> None:
    assert backtracking_risk(re.compile(pattern))
    options.build(records(HTTP_EXCLUDE_PATTERN=pattern))
    assert "HTTP_EXCLUDE_PATTERN" in captured.getvalue() and "exponential" in captured.getvalue()


@pytest.mark.parametrize("pattern", ["ERROR|WARN", r"^\d{3}-\d+$", "(?:ab){2,5}", "health.?check"])
def test_ordinary_patterns_are_not_warned_about(pattern: str, captured: io.StringIO) -> None:
    assert not backtracking_risk(re.compile(pattern))
    options.build(records(HTTP_INCLUDE_PATTERN=pattern))
    assert captured.getvalue() == ""


def test_the_worker_reports_a_compile_error_as_a_configuration_error(
    captured: io.StringIO,
) -> None:
    """Found only on the worker thread: one clear line naming the variable, nothing forwarded
    (and counted), the function untouched."""
    settings = load({**BASE, "HTTP_INCLUDE_PATTERN": "(bad", "HTTP_TEST_MODE": "true"})
    stats = Stats()

    def factory() -> Transformer:
        return Transformer(EntryContext("fn", "1", 128, "r", "x"),
                           screen=options.build(settings.records))  # fmt: skip

    worker = DeliveryWorker(
        settings.batching, settings.delivery, 1.0, factory,
        lambda: pytest.fail("no transport without a transformer"),  # type: ignore[arg-type,return-value]
        InvocationProgress(), stats,
    )  # fmt: skip
    worker.start()
    worker.submit([line("INFO", "x")])
    assert worker.stop(5.0)
    out = captured.getvalue()
    assert "configuration error: HTTP_INCLUDE_PATTERN: not a valid regular expression" in out
    assert "logs will NOT be forwarded; the function keeps running normally" in out
    assert stats.dropped_total() == 1


# -- the filters -------------------------------------------------------------------------------


def test_min_level_leaves_out_function_lines_below_it_and_keeps_platform_records() -> None:
    t = transformer(HTTP_MIN_LEVEL="WARN")
    assert t.encode(line("INFO", "chatty")) is FILTERED
    assert t.encode(line("DEBUG", "chattier")) is FILTERED
    assert t.encode(line("WARN", "careful"))
    assert t.encode(line("ERROR", "boom"))
    for event in PLATFORM:
        assert t.encode(event)


def test_min_level_from_lambdas_log_level_applies_to_json_lines_and_extensions() -> None:
    t = transformer(AWS_LAMBDA_LOG_LEVEL="ERROR")
    json_line = {"time": "t", "type": "function", "record": {"level": "WARN", "message": "m"}}
    assert t.encode(json_line) is FILTERED
    assert t.encode({"time": "t", "type": "extension", "record": "INFO other extension"}) is (
        FILTERED
    )
    assert t.encode({"time": "t", "type": "extension", "record": "ERROR other extension"})


def test_exclusion_wins_over_inclusion() -> None:
    t = transformer(HTTP_INCLUDE_PATTERN="order", HTTP_EXCLUDE_PATTERN="health")
    assert t.encode(line("INFO", "order 1 done"))
    assert t.encode(line("INFO", "order health check")) is FILTERED
    assert t.encode(line("INFO", "unrelated")) is FILTERED
    for event in PLATFORM:  # platform records are not matched
        assert t.encode(event)


def test_patterns_see_the_message_before_redaction() -> None:
    t = transformer(HTTP_INCLUDE_PATTERN="AKIA")
    entry = t.encode(line("INFO", "key AKIAIOSFODNN7EXAMPLE"))
    assert entry and "AKIAIOSFODNN7EXAMPLE" not in entry


def test_patterns_see_a_bounded_start_of_the_message() -> None:
    flt = Filter("", None, re.compile("needle"))
    t = Transformer(EntryContext("fn", "1", 128, "r", "x"), screen=options.Screen(flt, None))
    assert t.encode(line("INFO", "x" * 10 + "needle")) is FILTERED
    assert t.encode(line("INFO", "x" * MAX_MATCH_CHARS + "needle"))


def test_unfiltered_records_are_unchanged_without_redaction() -> None:
    plain = Transformer(EntryContext("fn", "$LATEST", 128, "eu-west-1", "x86_64"))
    t = transformer(HTTP_MIN_LEVEL="INFO", HTTP_REDACT="false")
    event = line("WARN", "password=kept-when-redaction-is-off")
    assert t.encode(event) == plain.encode(event)


def test_the_intake_counts_what_is_filtered_and_still_releases_the_invocation(
    tmp_path: Path,
) -> None:
    settings = load({**BASE, "HTTP_MIN_LEVEL": "ERROR", "HTTP_SPILL_DIR": str(tmp_path)})
    clock = FakeClock()
    transport = ScriptedTransport(clock)
    stats = Stats()
    progress = InvocationProgress(clock=clock)
    t = Transformer(EntryContext("fn", "1", 128, "r", "x"),
                    screen=options.build(settings.records))  # fmt: skip
    parts = assemble(settings.batching, settings.delivery, 1.0, t, transport, stats, progress,
                     clock=clock)  # fmt: skip
    done = {"time": "t", "type": "platform.runtimeDone",
            "record": {"requestId": RID, "status": "success"}}  # fmt: skip
    parts.intake.ingest([line("INFO", "a"), line("DEBUG", "b"), line("ERROR", "c"), done])
    parts.sending.send_due()
    delivered = [e["message"] for e in transport.delivered()]
    assert delivered[0] == "c" and len(delivered) == 2  # the error line and runtimeDone's
    assert stats.filtered == 2 and stats.dropped_total() == 0 and stats.skipped == 0
    assert "filtered=2" in stats.summary()
