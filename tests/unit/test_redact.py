"""Redaction: every built-in kind replaced, near-misses kept, user patterns, fields; and, as a
property, no planted secret in any entry and never an entry that is not JSON."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambda_logs_http.records import redact
from lambda_logs_http.records.options import Screen
from lambda_logs_http.records.redact import REDACTED, Redactor
from lambda_logs_http.records.transform import EntryContext, Transformer

RID = "459921b5-681c-4a96-beb0-81e0aa586026"
ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PRIVATE_KEY = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn\nq9mUxKEWq1RZ3Q==\n"
    "-----END RSA PRIVATE KEY-----"
)

# (kind, text, what must be gone, what must stay): one or more per built-in kind.
REDACTED_CASES = [
    ("aws_access_key_id", f"using key {ACCESS_KEY_ID} now", ACCESS_KEY_ID, "using key "),
    ("aws_access_key_id", "temp ASIAY34FZKBOKMUTVV7A,", "ASIAY34FZKBOKMUTVV7A", "temp "),
    ("aws_secret", f"aws_secret_access_key={SECRET_KEY}", SECRET_KEY, "aws_secret_access_key="),
    ("aws_secret", f'{{"SecretAccessKey": "{SECRET_KEY}"}}', SECRET_KEY, '"SecretAccessKey"'),
    ("aws_secret", "AWS_SESSION_TOKEN: IQoJb3JpZ2luX2VjEJr//////////wEaCXVz", "IQoJb3JpZ2lu",
     "AWS_SESSION_TOKEN"),
    ("authorization", "Authorization: Bearer abc.def-ghi", "abc.def-ghi", "Authorization: Bearer"),
    ("authorization", "authorization=Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpw", "authorization="),
    ("authorization", 'headers {"Proxy-Authorization": "Digest u=1, r=2"} sent', "u=1, r=2",
     '"} sent'),
    ("authorization", "Authorization: AWS4-HMAC-SHA256 Credential=x/y, Signature=f00d",
     "Signature=f00d", "AWS4-HMAC-SHA256"),
    ("authorization", "authorization: tok3n-only", "tok3n-only", "authorization: "),
    ("bearer", "called with Bearer 0123456789abcdefXYZ ok", "0123456789abcdefXYZ", " ok"),
    ("jwt", f"id token {JWT}!", JWT, "id token "),
    ("jwt", f"token={JWT.split('.')[0]}.{JWT.split('.')[1]}.", "eyJzdWIi", ""),
    ("url_password", "connecting to postgres://app:s3cr3t-pw@db.internal:5432/orders",
     "s3cr3t-pw", "postgres://app:"),
    ("url_password", "redis://:hunter2@cache:6379", "hunter2", "@cache:6379"),
    ("url_password", "ftp://u:p@ss@files.example/x", "p@ss", "@files.example/x"),
    ("private_key", f"loaded {PRIVATE_KEY} ok", "MIIEowIBAAKCAQEA", " ok"),
    ("private_key", "key: -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk", "b3BlbnNzaC1",
     "key: "),
    ("private_key", "-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQOYBF\n-----END PGP PRIVATE KEY "
     "BLOCK-----", "lQOYBF", ""),
    ("assignment", "login password=hunter2&next=1", "hunter2", "&next=1"),
    ("assignment", '{"db_password": "two words", "n": 1}', "two words", '"n": 1'),
    ("assignment", "client_secret: 8Zx_yy-99 more", "8Zx_yy-99", " more"),
    ("assignment", "API_KEY='k-123456'", "k-123456", "API_KEY="),
    ("assignment", "x-api-key=abcdef;", "abcdef", ";"),
    ("assignment", "refresh_token=r.t.1 done", "r.t.1", " done"),
]

# Lines that look a little like a secret and must come out unchanged.
NEAR_MISSES = [
    "AKIA is a prefix, AKIAshort is not a key",
    "AKIAIOSFODNN7EXAMPLEX is one character too long",
    "ZAKIAIOSFODNN7EXAMPLE is part of a longer upper-case token",
    "commit 3f786850e387550fdab836ed7e6dc881de23001b merged",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY alone is not told from any 40 characters",
    "authorization failed for user bob",
    "the bearer of bad news",
    "Bearer short",
    "eyJhbGciOiJIUzI1NiJ9 is only a header",
    "GET https://example.com:8443/path?email=a@b.example",
    "mailto:alice@example.com and https://alice@example.com/",
    "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
    "-----BEGIN PUBLIC KEY-----",
    "password reset requested for bob",
    "tokens=5 keys=3 secrets_count=2",
    "cache key=users:1 hit",
    "token count is 3",
    "",
]


@pytest.mark.parametrize(("kind", "text", "gone", "kept"), REDACTED_CASES)
def test_every_built_in_kind_is_redacted(kind: str, text: str, gone: str, kept: str) -> None:
    out = Redactor().text(text)
    assert gone not in out, (kind, out)
    assert REDACTED in out
    assert kept in out, (kind, out)


def test_every_built_in_kind_has_a_case() -> None:
    assert {kind for kind, *_ in REDACTED_CASES} == set(redact.KINDS)


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_are_kept(text: str) -> None:
    assert Redactor().text(text) is text or Redactor().text(text) == text


def test_a_value_redacted_twice_is_not_mangled() -> None:
    r = Redactor()
    for text in (f"token={REDACTED}", f'password="{REDACTED}"', f"Authorization: {REDACTED}"):
        assert r.text(text) == text


def test_user_patterns_replace_the_whole_match() -> None:
    r = Redactor(True, [re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), re.compile(r"(?<=card )\d+")])
    assert r.text("ssn 123-45-6789 card 4111111111111111.") == (
        f"ssn {REDACTED} card {REDACTED}."
    )


def test_user_patterns_alone_when_built_ins_are_off() -> None:
    r = Redactor(False, [re.compile("internal-[a-z]+")])
    assert r.text(f"internal-host {ACCESS_KEY_ID}") == f"{REDACTED} {ACCESS_KEY_ID}"
    assert r.fields({"password": "internal-x"}) == {"password": REDACTED}


def test_fields_values_keys_and_sensitive_names_at_any_depth() -> None:
    fields = {
        "message": "ok",
        "headers": {"Authorization": "opaque", "X-Api-Key": "k", "cookie": "s=1", "n": 1},
        "list": [ACCESS_KEY_ID, 2, {"deep": [f"Bearer {'x' * 20}"]}],
        f"key {ACCESS_KEY_ID}": True,
        "token": "",
        "count_tokens": "12",
    }
    original = json.loads(json.dumps(fields))
    out = Redactor().fields(fields)
    assert fields == original  # the event's own dict is left as it was
    assert out == {
        "message": "ok",
        "headers": {"Authorization": REDACTED, "X-Api-Key": REDACTED, "cookie": REDACTED, "n": 1},
        "list": [REDACTED, 2, {"deep": [f"Bearer {REDACTED}"]}],
        f"key {REDACTED}": True,
        "token": "",
        "count_tokens": "12",
    }


def test_fields_without_secrets_are_the_same_object() -> None:
    fields = {"level": "INFO", "message": "order 1 done", "nested": {"a": [1, "b"]}}
    assert Redactor().fields(fields) is fields


def test_keys_redacted_to_the_same_text_are_both_kept() -> None:
    out = Redactor().fields({ACCESS_KEY_ID: 1, "AKIAIOSFODNN7EXAMPLF": 2})
    assert sorted(out.values()) == [1, 2] and all(ACCESS_KEY_ID[:8] not in k for k in out)


def transformer(patterns: list[str] | None = None) -> Transformer:
    compiled = [re.compile(p) for p in patterns or []]
    return Transformer(
        EntryContext("fn", "$LATEST", 128, "eu-west-1", "x86_64"),
        screen=Screen(None, Redactor(True, compiled)),
    )


def test_a_json_format_line_is_redacted_in_its_message_and_its_record() -> None:
    t = transformer()
    record = {"level": "INFO", "message": f"key {ACCESS_KEY_ID}", "requestId": RID,
              "db": "mysql://root:pw1234@db/x", "password": "p"}  # fmt: skip
    out = json.loads(t.encode({"time": "t", "type": "function", "record": record}) or "")
    assert out["message"] == f"key {REDACTED}"
    assert out["record"]["db"] == f"mysql://root:{REDACTED}@db/x"
    assert out["record"]["password"] == REDACTED
    assert out["record"]["message"] == f"key {REDACTED}"
    assert record["password"] == "p"


def test_a_text_line_holding_json_is_redacted() -> None:
    t = transformer()
    line = f'{{"level": "WARN", "msg": "x", "auth": "Bearer {"t" * 30}"}}\n'
    out = json.loads(t.encode({"time": "t", "type": "function", "record": line}) or "")
    assert "t" * 30 not in json.dumps(out) and out["level"] == "WARN"


def test_platform_records_are_redacted_too() -> None:
    t = transformer()
    record = {"requestId": RID, "status": "error", "errorType": f"Bad {ACCESS_KEY_ID}"}
    entry = t.encode({"time": "t", "type": "platform.runtimeDone", "record": record}) or ""
    assert ACCESS_KEY_ID not in entry


def test_the_careful_path_is_redacted_too() -> None:
    t = transformer()
    record = {"level": "INFO", "message": f"nan {ACCESS_KEY_ID}", "x": float("nan")}
    entry = t.encode({"time": "t", "type": "function", "record": record}) or ""
    assert ACCESS_KEY_ID not in entry and json.loads(entry)["record"]["x"] == "NaN"


# -- the property: no planted secret survives, every entry stays JSON ---------------------------

PLANTED = [
    (ACCESS_KEY_ID, ACCESS_KEY_ID),
    (f"aws_secret_access_key={SECRET_KEY}", SECRET_KEY),
    (f"Authorization: Bearer {'Q' * 12}z9", "Q" * 12 + "z9"),
    (JWT, JWT.split(".")[2]),
    ("https://bob:Pa55w0rdXYZ@host.example/", "Pa55w0rdXYZ"),
    (PRIVATE_KEY, "MIIEowIBAAKCAQEA"),
    ("password=Zq8wPlantedPw", "Zq8wPlantedPw"),
    ("Bearer Tok3nPlantedValue1", "Tok3nPlantedValue1"),
]
USER_SECRET = ("card 4111-1111-1111-1111", "4111-1111-1111-1111")
_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)


def _plant(value: object, secret: str, path: list[int]) -> object:
    """``value`` with ``secret`` (space-separated) put somewhere inside it."""
    planted = f" {secret} "
    if isinstance(value, dict) and value and path:
        key = list(value)[path[0] % len(value)]
        return {**value, key: _plant(value[key], secret, path[1:])}
    if isinstance(value, list) and value and path:
        i = path[0] % len(value)
        return [*value[:i], _plant(value[i], secret, path[1:]), *value[i + 1 :]]
    if isinstance(value, str):
        return value + planted
    if isinstance(value, dict):
        return {**value, "planted": planted}
    if isinstance(value, list):
        return [*value, planted]
    return planted


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(_text, _json, max_size=5),
    st.sampled_from([*PLANTED, USER_SECRET]),
    st.lists(st.integers(0, 10), max_size=4),
    st.sampled_from(["json", "text", "message"]),
    _text,
)
def test_no_planted_secret_leaves_and_every_entry_is_json(
    fields: dict[str, object], planted: tuple[str, str], path: list[int], shape: str, around: str
) -> None:
    secret_text, secret = planted
    t = transformer([r"\d{4}-\d{4}-\d{4}-\d{4}"])
    if shape == "json":
        record: object = _plant(fields, secret_text, path)
    elif shape == "message":
        record = {**fields, "message": f"{around} {secret_text} {around}"}
    else:
        record = f"{around} {secret_text} {around}\n"
    entry = t.encode({"time": "2024-01-15T10:30:00.000Z", "type": "function", "record": record})
    assert entry
    decoded = json.loads(entry)
    assert secret not in entry
    assert secret not in json.dumps(decoded, ensure_ascii=False)


def test_the_pre_check_names_every_trigger_and_every_sensitive_key_holds_one() -> None:
    for trigger in redact._TEXT_TRIGGERS:
        assert redact._text_may_hold_secret(f"x {trigger} y"), trigger
    for trigger in redact._TRIGGERS:
        assert redact._may_hold_secret(f"x {trigger} y"), trigger
    for key in redact.SENSITIVE_KEYS:
        assert redact._may_hold_secret(key), key
    assert not redact._may_hold_secret("bench-rec 1 get /api/v1/orders/1 200 12.5ms user=u-1")
    # A bare "key" is no trigger: no pattern replaces anything in such a line.
    line = "cache hit key=session:15838 ttl=300 sort_key: 7"
    assert not redact._may_hold_secret(line)
    assert Redactor(True).text(line) is line


# Text made of the triggers' letters and a few others, so that triggers, their parts and
# near-misses are common.
_TRIGGER_TEXT = st.text(alphabet=sorted(set("".join(redact._TRIGGERS)) | set(" =x\n")),
                        max_size=40)  # fmt: skip


@given(st.lists(st.one_of(_TRIGGER_TEXT, st.sampled_from(redact._TRIGGERS)), max_size=6))
def test_the_pre_check_misses_no_trigger_whatever_the_text(parts: list[str]) -> None:
    text = "".join(parts)
    if any(trigger in text for trigger in redact._TEXT_TRIGGERS):
        assert redact._text_may_hold_secret(text)
    if any(trigger in text for trigger in redact._TRIGGERS):
        assert redact._may_hold_secret(text)


@pytest.mark.parametrize("pattern", [r"^internal-\w+$", r"\Ainternal-\w+\Z", r"internal-\w+"])
def test_user_patterns_find_each_field_anchored_or_not(pattern: str) -> None:
    r = Redactor(True, [re.compile(pattern)])
    fields = {"a": "x", "b": ["internal-host"], "message": "m"}
    assert r.fields(fields) == {"a": "x", "b": [REDACTED], "message": "m"}
    assert r.fields({"a": "x", "b": ["internal-"]}) == {"a": "x", "b": ["internal-"]}


@pytest.mark.parametrize("pattern", [r"(?<!\s)SSN\d+", r"SSN\d+(?!\s)", r"(?<![\n ])SSN\d+"])
def test_user_patterns_with_a_negative_lookaround_find_each_field(pattern: str) -> None:
    # Such a pattern holds at a string's edge but may fail beside the newline that joins the
    # fields' strings for the pre-check: each string must be searched on its own.
    r = Redactor(True, [re.compile(pattern)])
    assert r.text("SSN123") == REDACTED
    assert r.fields({"a": "SSN123", "b": "x"}) == {"a": REDACTED, "b": "x"}
    assert r.fields({"b": "x", "a": ["SSN123"]}) == {"b": "x", "a": [REDACTED]}


def test_a_message_that_is_not_a_field_is_checked_on_its_own() -> None:
    t = transformer()
    record = {"level": "INFO", "errorMessage": f"bad {ACCESS_KEY_ID}", "errorType": "E"}
    entry = t.encode({"time": "t", "type": "function", "record": record}) or ""
    assert ACCESS_KEY_ID not in entry and json.loads(entry)["message"] == f"E: bad {REDACTED}"


def test_a_private_key_printed_line_by_line_is_redacted_to_its_end() -> None:
    t = transformer()
    body = ["MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn", "", "q9mUxKEWq1RZ3Q==",
            "-----END RSA PRIVATE KEY-----", "after the key"]  # fmt: skip
    lines = ["here: -----BEGIN RSA PRIVATE KEY-----", *body]
    out = [json.loads(t.encode({"time": "t", "type": "function", "record": f"{m}\n"}) or "")
           for m in lines]  # fmt: skip
    assert [e["message"] for e in out] == ["here: [REDACTED]"] + [REDACTED] * 4 + [
        "after the key"
    ]


def test_a_cut_key_block_ends_at_the_first_line_that_is_not_the_blocks() -> None:
    t = transformer()
    for m, want in [("-----BEGIN PRIVATE KEY-----", REDACTED), ("Proc-Type: 4,ENCRYPTED",
                    REDACTED), ("MIIE", REDACTED), ("order 1 done", "order 1 done"),
                    ("MIIE", "MIIE")]:  # fmt: skip
        entry = json.loads(t.encode({"time": "t", "type": "function", "record": m}) or "")
        assert entry["message"] == want, m
