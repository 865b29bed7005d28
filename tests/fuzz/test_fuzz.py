"""Every parser and encoder fuzzed for a fixed time, not a fixed number of examples.

Each target is a Hypothesis test (most are the property tests of ``tests/unit``, some are here),
driven through its public ``fuzz_one_input`` with random buffers until ``FUZZ_SECONDS`` (per
target; default 1 s, ``make fuzz`` runs 60 s) have passed — the way an external fuzzer drives
them. A failure names the target and writes the buffer that produced it to
``.cache/fuzz-failures/``; ``python -m tests.fuzz.replay FILE`` runs it again.

Targets, by what faces input we do not control:

* the listener: its request parser (any bytes, in any pieces), the push body parser, the
  listener against ``http.server`` (the differential test);
* the transport's response reader: any bytes, and against ``http.client`` (differential);
* records: the transformer on any event and on hostile values, the level parser, batching;
* the spill directory (untrusted files);
* settings: any environment, ``HTTP_ENDPOINT`` against urllib's reading, ``NO_PROXY``
  against urllib's;
* SigV4 against botocore's signer.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_logs_http.http.response import MalformedResponse, Reader, read_body, read_head
from lambda_logs_http.listener.parser import MAX_HEAD_BYTES, ProtocolError, RequestParser
from lambda_logs_http.settings import names
from lambda_logs_http.settings.endpoint import parse_endpoint
from lambda_logs_http.settings.load import load
from lambda_logs_http.settings.parse import ConfigError
from tests.unit import (
    test_properties,
    test_proxy_settings,
    test_request_differential,
    test_response_differential,
    test_settings,
    test_spill,
)

ROOT = Path(__file__).resolve().parents[2]
FAILURES = ROOT / ".cache" / "fuzz-failures"
BUFFER_BYTES = 8192


def _seconds() -> float:
    raw = os.environ.get("FUZZ_SECONDS", "1")
    try:
        seconds = float(raw)
    except ValueError:
        raise pytest.UsageError(f"FUZZ_SECONDS must be a number of seconds, got {raw!r}") from None
    return max(0.1, seconds)


# --- targets of this module (the others are the unit tests' own) --------------------------------

LAMBDA_PUSH = (
    b"POST / HTTP/1.1\r\nHost: sandbox.localdomain:4243\r\nUser-Agent: Go-http-client/1.1\r\n"
    b"Content-Length: 9\r\nContent-Type: application/json\r\nAccept-Encoding: gzip\r\n\r\n"
    b'[{"a":1}]'
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=1\r\nok\r\n0\r\nT: v\r\n\r\n"
)
_MUTATION = st.tuples(st.integers(0, 1 << 16), st.binary(max_size=16), st.integers(0, 16))


def _mutate(data: bytes, mutations: list[tuple[int, bytes, int]]) -> bytes:
    """``data`` with bytes inserted and cut at a few places."""
    for position, chunk, cut in mutations:
        position %= len(data) + 1
        data = data[:position] + chunk + data[position + cut :]
    return data


def _pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted(c % (len(data) + 1) for c in cuts)
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


_STREAMS = st.one_of(
    st.binary(max_size=512),
    st.builds(_mutate, st.sampled_from([LAMBDA_PUSH, LAMBDA_PUSH * 2]), st.lists(_MUTATION, max_size=4)),
)


@settings(deadline=None)
@given(_STREAMS, st.lists(st.integers(0, 4096), max_size=6), st.integers(0, 64))
def fuzz_request_parser(stream: bytes, cuts: list[int], max_body: int) -> None:
    """Any bytes, in any pieces: requests or one definite refusal, and a bounded buffer."""
    parser = RequestParser(max_body)
    try:
        for piece in _pieces(stream, cuts):
            parser.feed(piece)
            while (request := parser.next_request()) is not None:
                assert len(request.body) <= max_body
            assert parser.buffered <= MAX_HEAD_BYTES + max_body + len(piece)
    except ProtocolError as refused:
        assert 400 <= refused.status < 600


class _Pieces:
    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = [p for p in pieces if p]

    def recv(self, size: int) -> bytes:
        if not self._pieces:
            return b""
        piece = self._pieces.pop(0)
        if len(piece) > size:
            self._pieces.insert(0, piece[size:])
        return piece[:size]

    def settimeout(self, value: float | None) -> None:
        pass


@settings(deadline=None)
@given(
    st.one_of(st.binary(max_size=512),
              st.builds(_mutate, st.just(RESPONSE), st.lists(_MUTATION, max_size=4))),
    st.lists(st.integers(0, 4096), max_size=6),
    st.integers(0, 256),
)  # fmt: skip
def fuzz_response_reader(stream: bytes, cuts: list[int], limit: int) -> None:
    """Any answer: a status and at most ``limit`` bytes of body, or a definite error."""
    reader = Reader(_Pieces(_pieces(stream, cuts)))
    try:
        for _ in range(3):
            status, headers = read_head(reader)
            assert 100 <= status <= 999 and all(isinstance(v, str) for v in headers.values())
            body, whole = read_body(reader, status, headers, limit)
            assert len(body) <= limit or whole
    except (MalformedResponse, ConnectionError):
        pass


_SETTING_NAMES = sorted(
    value for key, value in vars(names).items() if key.isupper() and isinstance(value, str)
)
_VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["0", "-1", "1e308", "nan", "inf", "true", "yes", "", " ", "https://x",
                     "http://[::1", "basic", "bearer", "apikey", "gzip", "日本", "a\r\nb"]),
    st.integers(-(10**20), 10**20).map(str),
    st.floats().map(repr),
)  # fmt: skip


@settings(deadline=None)
@given(st.dictionaries(st.sampled_from(_SETTING_NAMES), _VALUES, max_size=10))
def fuzz_settings(env: dict[str, str]) -> None:
    """Any environment: ``Settings`` or one ``ConfigError`` naming a variable, nothing else."""
    env = {"HTTP_ENDPOINT": "https://logs.example.com/ingest", **env}
    env.pop(names.HTTP_CA_BUNDLE, None)  # a path: the file system is not the input here
    try:
        load(env)
    except ConfigError as error:
        assert error.variable


@settings(deadline=None)
@given(st.one_of(
    st.text(max_size=60),
    st.builds(lambda scheme, rest: f"{scheme}://{rest}",
              st.sampled_from(["http", "https", "HTTP"]), st.text(max_size=50)),
))  # fmt: skip
def fuzz_endpoint(url: str) -> None:
    """Any ``HTTP_ENDPOINT``: an endpoint the transport can use, or a ``ConfigError``."""
    try:
        endpoint = parse_endpoint(url, timeout_seconds=10, tls_verify=True, ca_bundle="")
    except ConfigError as error:
        assert error.variable == names.HTTP_ENDPOINT
        return
    assert endpoint.target.startswith("/") and endpoint.target.isascii()
    assert endpoint.host_header.isascii() and 0 < endpoint.port < 65536


# --- the list, and the driver -----------------------------------------------------------------

TARGETS: dict[str, Callable[..., Any]] = {
    "listener.request_parser": fuzz_request_parser,
    "listener.against_http_server":
        test_request_differential.test_what_the_listener_accepts_http_server_accepts_alike,
    "listener.push_body": test_properties.test_parse_push_never_raises_on_bytes,
    "listener.any_json_push": test_properties.test_listener_answers_any_json_and_keeps_accepting,
    "http.response_reader": fuzz_response_reader,
    "http.response_against_http_client": test_response_differential.test_reader_agrees_with_http_client,
    "records.transform_any_event": test_properties.test_transformer_turns_any_event_into_valid_ascii_json,
    "records.transform_hostile": test_properties.test_transformer_encodes_any_hostile_event_as_strict_json,
    "records.level_parser": test_properties.test_parse_text_never_raises,
    "records.fields_parser": test_properties.test_parse_fields_never_raises_on_hostile_values,
    "delivery.batching": test_properties.test_batches_never_exceed_the_byte_limit,
    "delivery.spill_file":
        test_spill.test_fuzz_whatever_is_in_a_spill_file_the_store_never_raises_and_sends_only_entries,
    "settings.environment": fuzz_settings,
    "settings.endpoint": fuzz_endpoint,
    "settings.endpoint_against_urllib":
        test_settings.test_what_the_endpoint_accepts_urllib_reads_the_same_way,
    "settings.no_proxy_against_urllib": test_proxy_settings.test_no_proxy_matches_as_urllib_does,
}  # fmt: skip


SIGV4 = "aws.sigv4_against_botocore"


def _sigv4_target() -> Callable[..., Any] | None:
    """SigV4 against botocore (with botocore's clock pinned, as its module's fixture does),
    when botocore is installed (a dev dependency)."""
    try:
        from tests.unit.aws import test_sigv4_botocore
    except ImportError:
        return None
    test = test_sigv4_botocore.test_same_signature_as_botocore_with_url_query

    def fuzz_one_input(buffer: bytes) -> None:
        with test_sigv4_botocore.frozen_clock():
            test.hypothesis.fuzz_one_input(buffer)

    return fuzz_one_input


def target_named(name: str) -> Callable[[bytes], None] | None:
    """The ``fuzz_one_input`` of target ``name`` (None: not installed here)."""
    if name == SIGV4:
        return _sigv4_target()
    return TARGETS[name].hypothesis.fuzz_one_input


def run_for(fuzz_one_input: Callable[[bytes], None], name: str, seconds: float, seed: int) -> int:
    """Drive a target with random buffers for ``seconds``; the number of inputs it ran."""
    rng = random.Random(seed)
    runs = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        buffer = rng.randbytes(BUFFER_BYTES)
        try:
            fuzz_one_input(buffer)
        except BaseException as failure:
            if not isinstance(failure, Exception):
                raise
            FAILURES.mkdir(parents=True, exist_ok=True)
            saved = FAILURES / f"{name}-{seed}-{runs}.bin"
            saved.write_bytes(buffer)
            raise AssertionError(
                f"fuzz target {name} failed after {runs} inputs ({type(failure).__name__}: "
                f"{failure}); replay: python -m tests.fuzz.replay {saved.relative_to(ROOT)}"
            ) from failure
        runs += 1
    return runs


@pytest.mark.parametrize("name", [*TARGETS, SIGV4])
def test_fuzz(name: str, record_property: Callable[[str, object], None]) -> None:
    target = target_named(name)
    if target is None:
        pytest.skip("botocore is not installed (pip install -r requirements-dev.txt)")
    seed = int(os.environ.get("FUZZ_SEED", "0")) or random.SystemRandom().randrange(1, 1 << 31)
    runs = run_for(target, name, _seconds(), seed)
    record_property("inputs", runs)
    assert runs > 0, f"{name} ran no input in {_seconds()} s"
