"""``HTTP_HEADERS``: a JSON object of extra headers, refused with the fix when unusable, never
quoting a value (values are often tokens)."""

from __future__ import annotations

import pytest

from lambda_logs_http.settings.headers import parse_headers
from lambda_logs_http.settings.parse import ConfigError

SECRET = "v4lue-s3cret"


def parse(raw: str, kind: str = "none", api_key_header: str = "") -> tuple[tuple[str, str], ...]:
    return parse_headers(raw, auth_kind=kind, api_key_header=api_key_header)


def test_an_object_gives_its_headers_in_order() -> None:
    raw = '{"X-Scope-OrgID": "team-a", "X-Tenant": " t\\u00e9nant ", "X-Empty": ""}'
    assert parse(raw) == (("X-Scope-OrgID", "team-a"), ("X-Tenant", "ténant"), ("X-Empty", ""))
    assert parse("") == () and parse("  ") == () and parse("{}") == ()


def test_authorization_is_allowed_without_an_auth_type() -> None:
    assert parse(f'{{"Authorization": "Splunk {SECRET}"}}') == (("Authorization", f"Splunk {SECRET}"),)


@pytest.mark.parametrize(
    ("raw", "kind", "words"),
    [
        ('{"X-A": "1",}', "none", "is not valid JSON (line 1, column "),
        (f'["X-A", "{SECRET}"]', "none", "must be a JSON object"),
        (f'[["X-A", "{SECRET}"]]', "none", "must be a JSON object"),
        ('"X-A"', "none", "must be a JSON object"),
        (f'{{"X A": "{SECRET}"}}', "none", "'X A' is not a valid header name"),
        (f'{{"X-Ä": "{SECRET}"}}', "none", "'X-Ä' is not a valid header name"),
        (f'{{"X-A": "{SECRET}", "x-a": "{SECRET}"}}', "none", "names 'x-a' twice"),
        (f'{{"X-A": "{SECRET}", "X-A": "{SECRET}"}}', "none", "names 'X-A' twice"),
        (f'{{"X-A": "{SECRET}\\r\\nX-B: 1"}}', "none", "the value of 'X-A' holds a line break"),
        (f'{{"X-A": "{SECRET}\\u0000"}}', "none", "the value of 'X-A' holds a line break or a control"),
        (f'{{"X-A": "{SECRET}\\u20ac"}}', "none", "the value of 'X-A' is not Latin-1 text"),
        ('{"X-A": 1}', "none", "the value of 'X-A' must be a JSON string"),
        (f'{{"X-A": ["{SECRET}"]}}', "none", "the value of 'X-A' must be a JSON string"),
        (f'{{"Content-Length": "{SECRET}"}}', "none", "must not set Content-Length: the extension sets it"),
        (f'{{"transfer-encoding": "{SECRET}"}}', "none", "must not set transfer-encoding"),
        (f'{{"Host": "{SECRET}"}}', "none", "must not set Host"),
        (f'{{"Connection": "{SECRET}"}}', "none", "must not set Connection"),
        (f'{{"Content-Encoding": "{SECRET}"}}', "none", "must not set Content-Encoding"),
        (f'{{"Idempotency-Key": "{SECRET}"}}', "none", "must not set Idempotency-Key"),
        (f'{{"Authorization": "{SECRET}"}}', "bearer", "HTTP_AUTH_TYPE=bearer sets it (remove it"),
        (f'{{"X-Amz-Date": "{SECRET}"}}', "aws_sigv4", "HTTP_AUTH_TYPE=aws_sigv4 sets it"),
        (f'{{"X-API-Key": "{SECRET}"}}', "apikey", "HTTP_AUTH_TYPE=apikey sets it"),
    ],
)
def test_unusable_headers_are_refused_naming_the_variable_not_the_value(
    raw: str, kind: str, words: str
) -> None:
    with pytest.raises(ConfigError) as error:
        parse(raw, kind)
    assert error.value.variable == "HTTP_HEADERS"
    assert words in str(error.value)
    assert SECRET not in str(error.value)


def test_the_api_key_header_the_settings_name_is_taken() -> None:
    with pytest.raises(ConfigError, match="must not set dd-api-key"):
        parse('{"dd-api-key": "k"}', "apikey", api_key_header="DD-API-KEY")
    assert parse('{"X-API-Key": "k"}', "apikey", api_key_header="DD-API-KEY") == (("X-API-Key", "k"),)


def test_at_most_64_headers() -> None:
    many = "{" + ", ".join(f'"X-H{i}": "v"' for i in range(65)) + "}"
    with pytest.raises(ConfigError, match="at most 64"):
        parse(many)


def test_invalid_json_is_located_where_this_python_s_json_locates_it() -> None:
    """The column comes from the json module, which moved it in 3.13 for a trailing comma (it
    names the comma itself, column 12, where older ones name what should follow, 13): the
    oracle is the running interpreter's own parser."""
    import json

    raw = '{"X-A": "1",}'
    try:
        json.loads(raw)
    except json.JSONDecodeError as exc:
        expected = f"(line {exc.lineno}, column {exc.colno})"
    with pytest.raises(ConfigError) as error:
        parse(raw)
    assert expected in str(error.value)
