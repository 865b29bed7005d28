"""What every entry carries beyond its record (trace, account, cold start, version, service,
HTTP_EXTRA_FIELDS), and the one ERROR entry of a timed-out, crashed or failed invocation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_logs_http import __version__, app
from lambda_logs_http.delivery.worker import assemble
from lambda_logs_http.invocations import InvocationProgress
from lambda_logs_http.lambda_api.extensions import Registration
from lambda_logs_http.records import enrich
from lambda_logs_http.records.enrich import ShutdownNotice, trace
from lambda_logs_http.records.transform import ENTRY_KEYS, Transformer
from lambda_logs_http.settings.load import load
from lambda_logs_http.settings.parse import ConfigError
from lambda_logs_http.stats import Stats
from tests.support.fakes import FakeClock, ScriptedTransport

R1, R2 = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
ROOT = "1-6352a70e-1e2c502e358361800241fd45"
PARENT = "35465b3a9e2f7c6a"
TRACING = {"type": "X-Amzn-Trace-Id", "value": f"Root={ROOT};Parent={PARENT};Sampled=1"}
ENV = {"HTTP_ENDPOINT": "http://receiver.test/ingest", "AWS_LAMBDA_FUNCTION_NAME": "fn",
       "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_REGION": "eu-west-1",
       "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128"}  # fmt: skip
REGISTRATION = Registration("ext-id", b'{"functionName":"fn","accountId":"123456789012"}')


def build(progress: InvocationProgress | None = None, **env: str) -> Transformer:
    return app.transformer(load({**ENV, **env}), REGISTRATION, progress or InvocationProgress())


def encode(transformer: Transformer, event: dict[str, Any]) -> dict[str, Any]:
    encoded = transformer.encode(event)
    assert encoded
    return json.loads(encoded)  # type: ignore[no-any-return]


def start(rid: str, tracing: object = None) -> dict[str, Any]:
    record: dict[str, Any] = {"requestId": rid, "version": "$LATEST"}
    if tracing is not None:
        record["tracing"] = {"spanId": "24cd7d670fa455f0", **tracing}  # type: ignore[dict-item]
    return {"time": "t", "type": "platform.start", "record": record}


def done(rid: str, status: str = "success", **more: Any) -> dict[str, Any]:
    return {"time": "t", "type": "platform.runtimeDone",
            "record": {"requestId": rid, "status": status, **more}}


def report(rid: str, status: str = "success", **more: Any) -> dict[str, Any]:
    return {"time": "t", "type": "platform.report",
            "record": {"requestId": rid, "status": status,
                       "metrics": {"durationMs": 3000.42, "billedDurationMs": 3000}, **more}}


def line(text: str) -> dict[str, Any]:
    return {"time": "t", "type": "function", "record": text}


# -- the trace --------------------------------------------------------------------------------


@pytest.mark.parametrize(("tracing", "expected"), [
    (TRACING, (ROOT, PARENT)),
    ({"value": f"Root={ROOT}", "spanId": "abc"}, (ROOT, "abc")),
    ({"value": f" Parent={PARENT} ; Root={ROOT} ;Sampled=0"}, (ROOT, PARENT)),
    ({"value": "Sampled=1"}, ("", "")),
    ({"value": "Root=" + "1" * 100}, ("", "")),
    ({"value": 7}, ("", "")),
    ("Root=x", ("", "")),
    (None, ("", "")),
    ({"value": "x" * 10_000}, ("", "")),
])  # fmt: skip
def test_trace_is_read_from_the_x_ray_header(tracing: object, expected: tuple[str, str]) -> None:
    assert trace(tracing) == expected


def test_every_record_of_an_invocation_carries_its_trace_the_report_too() -> None:
    transformer = build()
    entries = [encode(transformer, event) for event in (
        start(R1, TRACING), line("print"), line(f"[INFO]\t2024-01-15T10:30:00.000Z\t{R1}\thi\n"),
        line(json.dumps({"level": "INFO", "message": "j", "requestId": R1})), done(R1),
    )]  # fmt: skip
    other = {"value": f"Root=1-00000000-aaaaaaaaaaaaaaaaaaaaaaaa;Parent={'b' * 16};Sampled=1"}
    entries2 = [encode(transformer, event) for event in (start(R2, other), report(R1))]
    assert [(e["trace_id"], e["span_id"]) for e in entries] == [(ROOT, PARENT)] * 5
    assert entries2[0]["trace_id"] == "1-00000000-aaaaaaaaaaaaaaaaaaaaaaaa"
    assert (entries2[1]["trace_id"], entries2[1]["request_id"]) == (ROOT, R1)  # next invocation
    encode(transformer, done(R2))
    between = encode(transformer, line("no request"))
    assert "trace_id" not in between and "span_id" not in between


def test_without_platform_records_the_trace_comes_from_the_invoke_event() -> None:
    """HTTP_TELEMETRY_TYPES=function: only the main thread saw the trace, in INVOKE."""
    progress = InvocationProgress()
    transformer = build(progress)
    progress.note_invoke(R1, TRACING)
    got = encode(transformer, line(f"[INFO]\t2024-01-15T10:30:00.000Z\t{R1}\thi\n"))
    assert (got["trace_id"], got["span_id"], got["cold_start"]) == (ROOT, PARENT, True)
    progress.note_invoke(R2, None)  # no tracing: none invented
    got = encode(transformer, line(f"[INFO]\t2024-01-15T10:30:00.000Z\t{R2}\thi\n"))
    assert "trace_id" not in got and "cold_start" not in got


def test_the_trace_memory_is_bounded() -> None:
    progress = InvocationProgress()
    transformer = build(progress)
    for n in range(500):
        progress.note_invoke(f"r-{n}", TRACING)
        transformer.encode(start(f"r-{n}", TRACING))
    assert len(transformer._traces) <= 64 and len(progress._tracing) <= 64
    assert progress.invoke_tracing("r-499") == TRACING and progress.invoke_tracing("r-0") is None


# -- the fixed context ------------------------------------------------------------------------


def test_account_version_and_service_name_are_on_every_entry() -> None:
    got = encode(build(), line("x"))
    assert got["account_id"] == "123456789012"
    assert got["extension_version"] == __version__
    assert got["service_name"] == "fn"  # the function's name by default
    assert "instance" not in got  # Lambda gives extensions no log stream name
    named = encode(build(OTEL_SERVICE_NAME="checkout", AWS_LAMBDA_LOG_STREAM_NAME="2024/01/15/x"),
                   line("x"))
    assert (named["service_name"], named["instance"]) == ("checkout", "2024/01/15/x")


def test_no_account_id_when_lambda_does_not_give_one() -> None:
    transformer = app.transformer(load(ENV), Registration("id", b'{"functionName":"fn"}'))
    assert "account_id" not in encode(transformer, line("x"))


# -- cold start -------------------------------------------------------------------------------


def test_cold_start_is_on_the_first_invocations_entries_only() -> None:
    transformer = build()
    init = encode(transformer, line("init output"))
    first = [encode(transformer, e) for e in (start(R1), line("a"), done(R1))]
    second = [encode(transformer, e) for e in (start(R2), line("b"), report(R1), done(R2))]
    assert "cold_start" not in init  # before any invocation: no request, not an invocation's
    assert all(e["cold_start"] is True for e in first)
    assert [e.get("cold_start", False) for e in second] == [False, False, True, False]


@pytest.mark.parametrize("kind", ["provisioned-concurrency", "lambda-managed-instances"])
def test_no_cold_start_where_init_runs_ahead_of_requests(kind: str) -> None:
    transformer = build(AWS_LAMBDA_INITIALIZATION_TYPE=kind)
    assert all("cold_start" not in encode(transformer, e) for e in (start(R1), line("a")))


def test_after_a_snapstart_restore_the_first_invocation_is_a_cold_start() -> None:
    transformer = build(AWS_LAMBDA_INITIALIZATION_TYPE="snap-start")
    restore = {"time": "t", "type": "platform.restoreStart", "record": {"runtimeVersion": "x"}}
    assert "cold_start" not in encode(transformer, restore)
    assert encode(transformer, start(R1))["cold_start"] is True


# -- HTTP_EXTRA_FIELDS ------------------------------------------------------------------------


def test_extra_fields_are_on_every_entry() -> None:
    transformer = build(HTTP_EXTRA_FIELDS='{"env": "prod", "team": "pay", "shard": 3, "canary": false}')
    got = encode(transformer, line("x"))
    assert (got["env"], got["team"], got["shard"], got["canary"]) == ("prod", "pay", 3, False)


@pytest.mark.parametrize(("text", "says"), [
    ("{", "not valid JSON"),
    ('["a"]', "must be a JSON object"),
    ('"prod"', "must be a JSON object"),
    ('{"": 1}', "empty"),
    ('{"  ": 1}', "empty"),
    ('{"message": "x"}', "'message' is a key every entry has"),
    ('{"trace_id": "x"}', "'trace_id' is a key every entry has"),
    ('{"a": null}', "got null"),
    ('{"a": {"b": 1}}', "got dict"),
    ('{"a": [1]}', "got list"),
    ('{"a": NaN}', "NaN is not a JSON number"),
    ('{"a": 1e999}', "must be a string, number or boolean"),
    ('{"a": 123456789012345678901234567890}', "beyond 2**53"),
    ('{"a": "' + "v" * 300 + '"}', "longer than 256"),
    ('{"' + "n" * 100 + '": 1}', "longer than 64"),
    (json.dumps({f"k{i}": i for i in range(33)}), "at most 32"),
])  # fmt: skip
def test_bad_extra_fields_are_a_configuration_error_naming_the_variable(
    text: str, says: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        enrich.extra_fields(text, ENTRY_KEYS)
    assert raised.value.variable == "HTTP_EXTRA_FIELDS"
    assert str(raised.value).startswith("HTTP_EXTRA_FIELDS: ") and says in str(raised.value)


def test_bad_extra_fields_stop_delivery_with_one_clear_line() -> None:
    with pytest.raises(ConfigError, match="HTTP_EXTRA_FIELDS"):
        build(HTTP_EXTRA_FIELDS="[1, 2]")


def test_a_spilled_batch_with_every_enrichment_reads_back(tmp_path: Path) -> None:
    """The spill store checks the keys of what it reads back: the new ones and the extra
    fields' names must pass, or every spilled batch would be refused."""
    progress = InvocationProgress()
    transformer = build(progress, HTTP_EXTRA_FIELDS='{"env": "prod"}',
                        AWS_LAMBDA_LOG_STREAM_NAME="stream", OTEL_SERVICE_NAME="svc")
    clock = FakeClock()
    settings = load({**ENV, "HTTP_SPILL_DIR": str(tmp_path / "spill")})
    parts = assemble(settings.batching, settings.delivery, 1.0, transformer,
                     ScriptedTransport(clock, []), Stats(), progress, clock=clock)
    entries = [transformer.encode(e) for e in (start(R1, TRACING), line("x"),
                                               done(R1, "timeout"))]
    entries.insert(2, transformer.alert)
    keys = set().union(*(json.loads(e or "{}") for e in entries))
    assert {"trace_id", "span_id", "cold_start", "account_id", "instance", "env"} <= keys
    store = parts.backlog.spill
    store.write("b-1", len(entries), "\n".join(e or "" for e in entries).encode())
    back = store.read_oldest()
    assert back is not None and len(back) == len(entries)


# -- timeouts and crashes ---------------------------------------------------------------------


def alerts_of(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if e.get("record", {}).get("source") == "lambda-logs-http"]


def run_through_intake(transformer: Transformer, tmp_path: Path,
                       *pushes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pushes through the real intake and sending side; the entries as delivered."""
    clock = FakeClock()
    settings = load({**ENV, "HTTP_SPILL_DIR": str(tmp_path / "spill")})
    stats = Stats()
    transport = ScriptedTransport(clock, [])
    parts = assemble(settings.batching, settings.delivery, 1.0, transformer, transport, stats,
                     InvocationProgress(clock=clock), clock=clock)
    for push in pushes:
        parts.intake.ingest(push)
    parts.intake.close_if_due(now_due=True)
    while parts.backlog:
        parts.sending.send_due()
    # The alert is the extension's own, like a drop report: not a record received.
    received = sum(len(push) for push in pushes
                   if not any(type(e) is ShutdownNotice for e in push))
    assert stats.skipped == 0 and stats.delivered == received
    return transport.delivered()  # type: ignore[no-any-return]


def test_a_timeout_makes_one_error_entry_before_its_runtime_done(tmp_path: Path) -> None:
    transformer = build()
    entries = run_through_intake(
        transformer, tmp_path,
        [start(R1, TRACING), line("working"),
         done(R1, "timeout", errorType="Sandbox.Timedout", metrics={"durationMs": 3000.7})],
        [report(R1, "timeout", errorType="Sandbox.Timedout")],
        [ShutdownNotice.make("timeout", R1, "2024-01-15T10:30:03.000Z")],
    )
    (alert,) = alerts_of(entries)
    assert alert["message"] == f"RequestId: {R1} Error: Task timed out after 3.00 seconds"
    assert alert["level"] == "ERROR" and alert["request_id"] == R1
    assert (alert["trace_id"], alert["span_id"], alert["cold_start"]) == (ROOT, PARENT, True)
    assert alert["record"] == {"requestId": R1, "status": "timeout", "errorType": "Sandbox.Timedout",
                               "durationMs": 3000.7, "reportedBy": "platform.runtimeDone",
                               "source": "lambda-logs-http"}
    messages = [e["message"] for e in entries]
    assert messages.index(alert["message"]) == messages.index(
        f"END RequestId: {R1}\tStatus: timeout\tError Type: Sandbox.Timedout") - 1


@pytest.mark.parametrize(("status", "error_type", "says"), [
    ("failure", "Runtime.ExitError", "Invocation failed (Runtime.ExitError) after 3000.42 ms"),
    ("error", "Runtime.Unknown", "Invocation error (Runtime.Unknown) after 3000.42 ms"),
    ("timeout", "", "Task timed out after 3.00 seconds"),
])  # fmt: skip
def test_a_report_alone_makes_the_entry(status: str, error_type: str, says: str) -> None:
    """Managed Instances send no runtimeDone: the report says it."""
    transformer = build()
    more = {"errorType": error_type} if error_type else {}
    encode(transformer, report(R1, status, **more))
    assert json.loads(transformer.alert)["message"] == f"RequestId: {R1} Error: {says}"
    transformer.alert = ""
    encode(transformer, report(R1, status, **more))  # Lambda pushing it again: no second one
    assert transformer.alert == ""


def test_success_and_spindown_make_no_entry() -> None:
    transformer = build()
    for event in (done(R1), report(R1), ShutdownNotice.make("spindown", R1, "t"),
                  {"time": "t", "type": "platform.initReport", "record": {"status": "error"}}):
        transformer.encode(event)
        assert transformer.alert == ""


def test_a_shutdown_alone_makes_the_entry_from_the_main_thread() -> None:
    """A runtime that died before Lambda could say so in a record: the SHUTDOWN says it."""
    transformer = build()
    encode(transformer, start(R1, TRACING))
    assert transformer.encode(ShutdownNotice.make("failure", R1, "2024-01-15T10:30:03Z")) is None
    alert = json.loads(transformer.alert)
    assert alert["message"].startswith(f"RequestId: {R1} Error: Invocation failed: Lambda shut")
    assert (alert["timestamp"], alert["trace_id"]) == ("2024-01-15T10:30:03Z", ROOT)
    assert alert["record"]["reportedBy"] == "SHUTDOWN"


def test_a_push_cannot_forge_the_shutdown_notice() -> None:
    transformer = build()
    forged = dict(ShutdownNotice.make("timeout", R1, "t"))
    got = encode(transformer, forged)
    assert got["log_type"] == "platform" and transformer.alert == ""


def test_the_alert_memory_is_bounded() -> None:
    alerts = enrich.Alerts()
    for n in range(500):
        assert alerts.from_event("platform.report", {"requestId": f"r-{n}", "status": "error"})
    assert len(alerts._alerted) <= 64


def test_a_shutdown_after_a_successful_invocation_is_not_put_on_it() -> None:
    """SHUTDOWN (failure) because something else failed after R1 ended well: said, but not
    as R1's failure."""
    transformer = build()
    for event in (start(R1, TRACING), done(R1), report(R1)):
        transformer.encode(event)
    transformer.encode(ShutdownNotice.make("failure", R1, "t"))
    alert = json.loads(transformer.alert)
    assert alert["message"] == "Error: Lambda shut the execution environment down (failure)"
    assert "request_id" not in alert and "trace_id" not in alert


# -- whatever a push holds --------------------------------------------------------------------

_ANY = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=8,
)
_RECORD = st.fixed_dictionaries(
    {"requestId": st.sampled_from([R1, R2, ""]) | _ANY,
     "status": st.sampled_from(["timeout", "error", "failure", "success"]) | _ANY},
    optional={"errorType": _ANY, "metrics": st.fixed_dictionaries({"durationMs": _ANY}) | _ANY,
              "tracing": st.fixed_dictionaries({"value": st.text(max_size=80) | _ANY}) | _ANY},
)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["platform.start", "platform.runtimeDone",
                                           "platform.report"]), _RECORD), max_size=8))
def test_alerts_are_valid_json_and_one_per_request(events: list[tuple[str, dict[str, Any]]]) -> None:
    transformer = build()
    alerted: list[str] = []
    for event_type, record in events:
        entry = transformer.encode({"time": "t", "type": event_type, "record": record})
        assert entry and entry.isascii()
        json.loads(entry)
        if transformer.alert:
            alert = json.loads(transformer.alert)
            assert transformer.alert.isascii() and alert["level"] == "ERROR"
            alerted.append(alert.get("request_id", ""))
            transformer.alert = ""
    named = [rid for rid in alerted if rid]
    assert len(named) == len(set(named))


def test_a_shutdown_naming_no_request_after_the_same_failure_adds_nothing() -> None:
    """Managed Instances: no INVOKE, so the SHUTDOWN names no request; the report said it."""
    transformer = build(AWS_LAMBDA_INITIALIZATION_TYPE="lambda-managed-instances")
    transformer.encode(report(R1, "timeout"))
    assert transformer.alert
    transformer.alert = ""
    transformer.encode(ShutdownNotice.make("timeout", "", "t"))
    assert transformer.alert == ""
    transformer.encode(ShutdownNotice.make("failure", "", "t"))  # a different reason: said
    assert json.loads(transformer.alert)["message"] == (
        "Error: Lambda shut the execution environment down (failure)"
    )
