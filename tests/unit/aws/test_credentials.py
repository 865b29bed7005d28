"""Credentials from the environment and from a real local container-credentials endpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from lambda_logs_http.aws import credentials as creds
from lambda_logs_http.aws.credentials import Credentials, CredentialsProvider, parse_timestamp
from lambda_logs_http.aws.errors import AwsError
from tests.unit.aws.http_support import Reply, http_request, scripted_server

KEY, SECRET, TOKEN = "ASIAEXAMPLEKEY123", "sEcReT/kEy+ExAmPlE", "SeSsIoN//tOkEn=="
CONTAINER_TOKEN = "container-auth-token-xyz"
T0 = 1_800_000_000.0
EXPIRES = "2027-01-15T08:00:00Z"
EXPIRES_AT = parse_timestamp(EXPIRES)


def document(key: str = KEY, expiration: str = EXPIRES) -> dict[str, object]:
    return {"AccessKeyId": key, "SecretAccessKey": SECRET, "Token": TOKEN,
            "Expiration": expiration}


def assert_no_secret(text: str) -> None:
    for secret in (KEY, SECRET, TOKEN, CONTAINER_TOKEN):
        assert secret not in text


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_environment_credentials_with_and_without_token() -> None:
    env = {"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": TOKEN}
    assert creds.from_environment(env) == Credentials(KEY, SECRET, TOKEN)
    del env["AWS_SESSION_TOKEN"]
    found = creds.from_environment(env)
    assert found is not None and found.session_token is None
    assert creds.from_environment({}) is None


@pytest.mark.parametrize("present", ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"])
def test_half_the_keys_is_an_error_naming_the_missing_one(present: str) -> None:
    with pytest.raises(AwsError) as caught:
        creds.from_environment({present: SECRET})
    missing = ({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} - {present}).pop()
    assert caught.value.code == "IncompleteCredentials"
    assert caught.value.variable == missing
    assert missing in str(caught.value)
    assert_no_secret(str(caught.value) + repr(caught.value))


def test_no_credential_in_any_repr() -> None:
    credentials = Credentials(KEY, SECRET, TOKEN, 5.0)
    provider = CredentialsProvider(
        {"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": TOKEN})
    assert_no_secret(repr(credentials) + str(credentials) + repr(provider) + repr([credentials]))
    assert set(credentials.secrets()) == {KEY, SECRET, TOKEN}


def test_environment_keys_win_over_the_container_endpoint() -> None:
    provider = CredentialsProvider({
        "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:1/creds",
    })
    assert provider.source == "environment"
    assert provider.get() is provider.get()
    assert provider.get().access_key_id == KEY


def test_no_credentials_at_all() -> None:
    provider = CredentialsProvider({})
    assert provider.source == ""
    with pytest.raises(AwsError) as caught:
        provider.get()
    assert caught.value.code == "NoCredentials"
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" in str(caught.value)


def test_container_credentials_sent_with_the_token_and_refreshed_before_expiry() -> None:
    clock = Clock(EXPIRES_AT - 3600)
    with scripted_server(Reply(200, document("FIRSTKEY")), Reply(200, document("SECONDKEY"))) \
            as server:
        provider = CredentialsProvider({
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{server.url}2021-04-23/credentials",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": CONTAINER_TOKEN,
        }, http_request, clock=clock)
        assert provider.source == "container"
        first = provider.get()
        assert (first.access_key_id, first.secret_access_key, first.session_token) == (
            "FIRSTKEY", SECRET, TOKEN)
        assert first.expiration == EXPIRES_AT
        assert server.seen[0].method == "GET"
        assert server.seen[0].path == "/2021-04-23/credentials"
        assert server.seen[0].headers["Authorization"] == CONTAINER_TOKEN

        clock.now = EXPIRES_AT - creds.REFRESH_MARGIN_SECONDS - 1
        assert provider.get() is first  # still well before the margin: no request
        assert len(server.seen) == 1
        clock.now = EXPIRES_AT - creds.REFRESH_MARGIN_SECONDS + 1
        assert provider.get().access_key_id == "SECONDKEY"
        assert len(server.seen) == 2


def test_failed_refresh_keeps_valid_credentials_and_tries_again_later() -> None:
    clock = Clock(EXPIRES_AT - 3600)
    with scripted_server(Reply(200, document("FIRSTKEY")), Reply(503, b"busy"), Reply(503),
                         Reply(200, document("THIRDKEY"))) as server:
        provider = CredentialsProvider(
            {"AWS_CONTAINER_CREDENTIALS_FULL_URI": server.url}, http_request, clock=clock)
        first = provider.get()
        clock.now = EXPIRES_AT - 60  # inside the margin: refresh, which fails (503 twice)
        assert provider.get() is first
        assert len(server.seen) == 3
        clock.now += creds.RETRY_AFTER_FAILURE_SECONDS / 2
        assert provider.get() is first  # no new attempt yet
        assert len(server.seen) == 3
        clock.now += creds.RETRY_AFTER_FAILURE_SECONDS
        assert provider.get().access_key_id == "THIRDKEY"


def test_expired_credentials_and_a_failing_endpoint_raise() -> None:
    clock = Clock(EXPIRES_AT - 3600)
    with scripted_server(Reply(200, document()), Reply(500)) as server:
        provider = CredentialsProvider(
            {"AWS_CONTAINER_CREDENTIALS_FULL_URI": server.url,
             "AWS_CONTAINER_AUTHORIZATION_TOKEN": CONTAINER_TOKEN}, http_request, clock=clock)
        provider.get()
        clock.now = EXPIRES_AT + 1
        with pytest.raises(AwsError) as caught:
            provider.get()
    assert caught.value.code == "CredentialsEndpointError"
    assert caught.value.status == 500
    assert_no_secret(str(caught.value))


@pytest.mark.parametrize(
    ("reply", "code", "words"),
    [
        (Reply(403, b'{"message": "bad token ' + CONTAINER_TOKEN.encode() + b'"}'),
         "CredentialsEndpointError", "AWS_CONTAINER_AUTHORIZATION_TOKEN"),
        (Reply(200, b"<html>"), "InvalidResponse", "not JSON"),
        (Reply(200, b"[]"), "InvalidResponse", "not an object"),
        (Reply(200, {"AccessKeyId": KEY}), "InvalidResponse", "AccessKeyId/SecretAccessKey"),
        (Reply(200, document(expiration="tomorrow")), "InvalidResponse", "Expiration"),
    ],
)
def test_bad_answers_from_the_endpoint(reply: Reply, code: str, words: str) -> None:
    with scripted_server(reply) as server:
        provider = CredentialsProvider(
            {"AWS_CONTAINER_CREDENTIALS_FULL_URI": server.url,
             "AWS_CONTAINER_AUTHORIZATION_TOKEN": CONTAINER_TOKEN}, http_request)
        with pytest.raises(AwsError) as caught:
            provider.get()
    assert caught.value.code == code
    assert words in str(caught.value)
    assert_no_secret(str(caught.value) + repr(caught.value))


def test_unreachable_endpoint() -> None:
    with scripted_server(Reply(200)) as server:
        url = server.url  # a port that was just closed
    provider = CredentialsProvider({"AWS_CONTAINER_CREDENTIALS_FULL_URI": url}, http_request)
    with pytest.raises(AwsError) as caught:
        provider.get()
    assert caught.value.code == "CredentialsEndpointError"
    assert "did not answer" in str(caught.value)


def test_token_from_a_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(CONTAINER_TOKEN + "\n")
    with scripted_server(Reply(200, document())) as server:
        provider = CredentialsProvider({
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": server.url,
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file),
        }, http_request)
        provider.get()
        assert server.seen[0].headers["Authorization"] == CONTAINER_TOKEN


@pytest.mark.parametrize("uri", ["http://example.com/creds", "ftp://127.0.0.1/", "creds"])
def test_plain_http_only_to_this_machine_or_the_link_local_address(uri: str) -> None:
    with pytest.raises(AwsError) as caught:
        CredentialsProvider({"AWS_CONTAINER_CREDENTIALS_FULL_URI": uri})
    assert caught.value.code == "InvalidCredentialsEndpoint"


@pytest.mark.parametrize("uri", ["http://127.0.0.1:9001/x", "http://localhost/x",
                                 "http://[::1]:80/", "http://169.254.170.2/v2/credentials",
                                 "http://[fd00:ec2::23]/", "https://creds.example.com/"])
def test_accepted_endpoints(uri: str) -> None:
    assert CredentialsProvider({"AWS_CONTAINER_CREDENTIALS_FULL_URI": uri}).source == "container"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2027-01-15T08:00:00Z", 1800000000.0),
        ("2027-01-15T08:00:00.5Z", 1800000000.5),
        ("2027-01-15T08:00:00.123456789Z", 1800000000.123456),
        ("2027-01-15T09:00:00+01:00", 1800000000.0),
        ("2027-01-15T08:00:00", 1800000000.0),
        ("not a time", None),
    ],
)
def test_parse_timestamp(text: str, expected: float | None) -> None:
    got = parse_timestamp(text)
    assert got == pytest.approx(expected) if expected is not None else got is None
