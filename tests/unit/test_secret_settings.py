"""Which settings come from AWS, decided from the environment alone (no AWS call), and the
names that say so (the fetching itself is tested against moto in tests/aws)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lambda_logs_http.aws import sources
from lambda_logs_http.settings import names
from lambda_logs_http.settings.load import names_secret_sources, secret_sources
from lambda_logs_http.settings.parse import ConfigError
from lambda_logs_http.settings.secrets import with_values

ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:token-AbCdEf"


def test_the_suffixes_are_the_sources_own() -> None:
    assert names.SECRET_SUFFIXES == (sources.SECRET_ARN, sources.SECRET_KEY, sources.SSM_NAME,
                                     sources.KMS_ENCRYPTED)


@pytest.mark.parametrize("setting", names.SECRET_SETTINGS)
@pytest.mark.parametrize("suffix", ["_SECRET_ARN", "_SSM_NAME", "_KMS_ENCRYPTED"])
def test_each_setting_may_come_from_each_source(setting: str, suffix: str) -> None:
    env = {setting + suffix: "ref"}
    assert names_secret_sources(env)
    found = secret_sources(env)
    assert list(found) == [setting] and found[setting].variable == setting + suffix


def test_plain_settings_need_no_source_and_no_import() -> None:
    assert not names_secret_sources({"HTTP_ENDPOINT": "https://x/", "HTTP_AUTH_CREDENTIALS": "t"})
    assert secret_sources({"HTTP_ENDPOINT": "https://x/"}) == {}
    # An empty source variable counts as unset.
    assert secret_sources({"HTTP_ENDPOINT": "https://x/", "HTTP_ENDPOINT_SSM_NAME": " "}) == {}
    code = ("import sys; sys.path.insert(0, sys.argv[1]);"
            "from lambda_logs_http.settings.load import load, names_secret_sources;"
            "env = {'HTTP_ENDPOINT': 'https://x/'};"
            "assert not names_secret_sources(env); load(env);"
            "print(sorted(m for m in sys.modules if m.startswith('lambda_logs_http.aws')))")
    root = str(Path(__file__).resolve().parents[2])
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code, root], capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "[]"


@pytest.mark.parametrize(
    ("env", "variable", "words"),
    [
        ({"HTTP_AUTH_CREDENTIALS": "t", "HTTP_AUTH_CREDENTIALS_SECRET_ARN": ARN},
         "HTTP_AUTH_CREDENTIALS_SECRET_ARN", "takes one value"),
        ({"HTTP_ENDPOINT_SSM_NAME": "/a", "HTTP_ENDPOINT_KMS_ENCRYPTED": "AQID"},
         "HTTP_ENDPOINT_KMS_ENCRYPTED", "takes one value"),
        ({"HTTP_HEADERS_SECRET_KEY": "h"}, "HTTP_HEADERS_SECRET_KEY", "HTTP_HEADERS_SECRET_ARN is not set"),
        ({"HTTP_AUTH_USERNAME_SSM_NAME": "/u", "HTTP_AUTH_USERNAME_SECRET_KEY": "u"},
         "HTTP_AUTH_USERNAME_SECRET_KEY", "HTTP_AUTH_USERNAME_SECRET_ARN is not set"),
    ],
)
def test_a_setting_given_twice_or_half_a_source_is_a_configuration_error(
    env: dict[str, str], variable: str, words: str
) -> None:
    with pytest.raises(ConfigError) as error:
        secret_sources(env)
    assert error.value.variable == variable and words in str(error.value)


def test_fetched_values_replace_their_sources() -> None:
    env = {"HTTP_AUTH_CREDENTIALS_SECRET_ARN": ARN, "HTTP_AUTH_CREDENTIALS_SECRET_KEY": "k",
           "HTTP_ENDPOINT": "https://x/"}
    final = with_values(env, secret_sources(env), {"HTTP_AUTH_CREDENTIALS": "t0ken"})
    assert final == {"HTTP_AUTH_CREDENTIALS": "t0ken", "HTTP_ENDPOINT": "https://x/"}
