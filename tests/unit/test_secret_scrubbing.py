"""No secret in any line: what the settings register, the forms scrubbed, what a cut leaves.

The encoders in ``log`` are written by hand (the standard library's are too heavy to import
before the extension registers); here they are held equal to ``base64``, ``urllib.parse`` and
``json`` on generated input. End to end, through the built layer and a receiver that echoes
the request: tests/e2e/test_hardening.py.
"""

from __future__ import annotations

import base64
import io
import json
import re
import sys
import timeit
import urllib.parse
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_logs_http import log
from lambda_logs_http.http.result import answered
from lambda_logs_http.settings.load import load
from lambda_logs_http.settings.parse import unquote

TOKEN = "tok-3xAmple/Secret+value=="
ENDPOINT = "https://logs.example.com/ingest"


@pytest.fixture
def printed() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    log.set_stream(stream)
    yield stream
    log.set_stream(sys.stdout)


def every_form(value: str) -> list[str]:
    """``value`` as the standard library encodes it, each way a receiver may echo it."""
    data = value.encode()
    return [
        value,
        base64.b64encode(data).decode(),
        base64.b64encode(data).decode().rstrip("="),
        base64.urlsafe_b64encode(data).decode(),
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote(value),
        urllib.parse.quote_plus(value),
        re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), urllib.parse.quote(value, safe="")),
        json.dumps(value)[1:-1],
        json.dumps(value).replace("/", "\\/")[1:-1],
        repr(value)[1:-1],
    ]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_base64_is_the_standard_librarys(data: bytes) -> None:
    assert log.b64encode(data) == base64.b64encode(data).decode()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=24))
def test_percent_and_json_forms_are_the_standard_librarys(value: str) -> None:
    try:
        data = value.encode()
    except UnicodeEncodeError:
        return  # a lone surrogate: not UTF-8, so no byte form either
    assert log.percent_encode(data, log._UNRESERVED) == urllib.parse.quote(value, safe="~")
    assert log.percent_encode(data, log._UNRESERVED | {ord("/")}) == urllib.parse.quote(value)
    assert log.percent_encode(data, log._UNRESERVED, plus=True) == urllib.parse.quote_plus(
        value, safe="~"
    )
    assert log._json_escaped(value, False) == json.dumps(value)[1:-1]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="%0123456789abcdefABCDEFgz+ é日", max_size=16))
def test_unquote_is_the_standard_librarys(text: str) -> None:
    assert unquote(text) == urllib.parse.unquote(text)


@pytest.mark.parametrize("form", every_form(TOKEN))
def test_every_form_of_a_registered_secret_is_scrubbed(form: str, printed: io.StringIO) -> None:
    log.add_secrets([TOKEN])
    log.error(f"HTTP 401: echo Authorization: Bearer {form} and ?k={form}&x=1")
    line = printed.getvalue()
    assert form not in line and "Bearer *** and ?k=***&x=1" in line


def test_short_values_are_not_secrets(printed: io.StringIO) -> None:
    log.add_secrets(["abc", ""])
    log.info("abc stays readable")
    assert "abc stays readable" in printed.getvalue()


def test_a_line_without_secrets_is_unchanged(printed: io.StringIO) -> None:
    log.add_secrets([TOKEN])
    log.info("nothing to hide | here")
    assert printed.getvalue() == "[EXTENSION] INFO nothing to hide | here\n"


def test_a_cut_never_leaves_the_beginning_of_a_secret() -> None:
    log.add_secrets([TOKEN])
    for start in range(len(TOKEN) + 3):
        text = "x" * (300 - start) + TOKEN + " after"
        kept = log.excerpt(text, 300)
        assert len(kept) <= 300 and not any(TOKEN[:n] in kept for n in range(4, len(TOKEN)))


def test_a_text_cut_short_before_it_came_keeps_no_beginning_of_a_secret() -> None:
    log.add_secrets([TOKEN])
    assert log.excerpt("echo: Bearer " + TOKEN[:10], 300) == "echo: Bearer ***"
    assert log.excerpt("echo: " + TOKEN[:3], 300) == "echo: " + TOKEN[:3]  # below the minimum


def test_a_receivers_error_body_is_scrubbed_before_it_is_cut() -> None:
    log.add_secrets([TOKEN])
    body = ("<p>" + "." * 280 + f"Authorization: Bearer {TOKEN}</p>").encode()
    error = answered(401, body, None).error
    assert error.startswith("HTTP 401: <p>....") and "tok-3x" not in error


@pytest.mark.parametrize(
    ("env", "secrets"),
    [
        ({"HTTP_AUTH_TYPE": "bearer", "HTTP_AUTH_CREDENTIALS": TOKEN}, [TOKEN]),
        ({"HTTP_AUTH_TYPE": "apikey", "HTTP_AUTH_CREDENTIALS": TOKEN}, [TOKEN]),
        (
            {"HTTP_AUTH_TYPE": "basic", "HTTP_AUTH_USERNAME": "alice",
             "HTTP_AUTH_CREDENTIALS": "pa ss:wörd"},
            ["pa ss:wörd", "alice:pa ss:wörd",
             base64.b64encode("alice:pa ss:wörd".encode()).decode()],
        ),
        ({"HTTP_ENDPOINT": f"{ENDPOINT}?dd-api-key=k%2Fey+1234&format=json"},
         ["k%2Fey+1234", "k/ey+1234", "k/ey 1234"]),
        ({"HTTPS_PROXY": "http://bob:pr%40xy-pass@proxy.internal:3128"},
         ["pr%40xy-pass", "pr@xy-pass", base64.b64encode(b"bob:pr@xy-pass").decode()]),
        ({"http_proxy": "http://bob:pr0xy-pass@proxy.internal:3128",
          "HTTP_ENDPOINT": "http://logs.example.com/"}, ["pr0xy-pass"]),
    ],
)
def test_the_settings_register_every_credential(
    env: dict[str, str], secrets: list[str], printed: io.StringIO
) -> None:
    load({"HTTP_ENDPOINT": ENDPOINT, **env})
    for secret in secrets:
        log.error(f"echo {secret}")
    line = printed.getvalue()
    assert all(secret not in line for secret in secrets), line
    assert line.count("echo ***") == len(secrets)


def test_query_values_shorter_than_eight_characters_are_not_secrets(
    printed: io.StringIO,
) -> None:
    load({"HTTP_ENDPOINT": f"{ENDPOINT}?format=json&source=lambda"})
    log.info("format json from lambda")
    assert "format json from lambda" in printed.getvalue()


def test_a_refused_credential_is_not_shown_in_its_own_error(printed: io.StringIO) -> None:
    from lambda_logs_http.settings.parse import ConfigError

    secret = "bad\x00secret-value"
    with pytest.raises(ConfigError) as caught:
        load({"HTTP_ENDPOINT": ENDPOINT, "HTTP_AUTH_TYPE": "bearer",
              "HTTP_AUTH_CREDENTIALS": secret})
    log.error(f"configuration error: {caught.value} ({secret})")
    assert secret not in printed.getvalue() and "secret-value" not in str(caught.value)


def test_scrubbing_costs_little_per_line() -> None:
    """The figure in docs/design.md: a typical line, a basic-auth pair and an API key in the
    URL registered (14 forms). Bounded loosely here: a shared CI machine is noisy."""
    load({"HTTP_ENDPOINT": f"{ENDPOINT}?api_key=0123456789abcdef", "HTTP_AUTH_TYPE": "basic",
          "HTTP_AUTH_USERNAME": "alice", "HTTP_AUTH_CREDENTIALS": "s3cr3t-Cred-value"})
    line = "send failed (HTTP 503: upstream unavailable); records are kept and retried " * 2
    seconds = min(timeit.repeat(lambda: log.scrub(line), number=2000, repeat=5)) / 2000
    assert seconds < 50e-6, f"{seconds * 1e6:.2f} µs per line"
