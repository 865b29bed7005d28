"""Filtering and redaction through the built layer in the sandbox, with a real function.

A function prints secrets (as text, and through Lambda's JSON log format with the secrets in
``extra`` fields): none reaches the receiver. ``HTTP_MIN_LEVEL``'s default comes from Lambda's
``AWS_LAMBDA_LOG_LEVEL``; include/exclude patterns leave lines out; platform records stay; the
shutdown summary counts what was left out (``filtered=``); a pattern that does not compile is a
configuration error naming its variable, and the function keeps working.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest

from tests.e2e.test_extension import all_output, messages, run
from tools.lambda_sandbox import Sandbox
from tools.lambda_sandbox.receiver import Receiver

__all__ = ["run"]  # a fixture, used by name

ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THs"
DB_PASSWORD = "Db-Pa55-e2e"
BEARER = "tok-e2e-0123456789abcdef"
FIELD_PASSWORD = "field-pw-e2e"
USER_SECRET = "4111-1111-1111-1111"
SECRETS = [ACCESS_KEY_ID, SECRET_KEY, JWT, DB_PASSWORD, BEARER, FIELD_PASSWORD, USER_SECRET,
           "MIIEowIBAAKCAQEA", "MHcCAQEEIlinebyline0Qx", "AwEHoUQDQgAE"]  # fmt: skip

APP = rf'''
import json, logging, sys
logger = logging.getLogger()

def handler(event, context):
    n = event.get("n", 0)
    if event.get("secrets"):
        print("using {ACCESS_KEY_ID} for s3")
        print("env aws_secret_access_key={SECRET_KEY}")
        print("GET /x Authorization: Bearer {BEARER}")
        print("id_token {JWT}")
        print("connecting to postgres://app:{DB_PASSWORD}@db.internal:5432/orders")
        print("loaded -----BEGIN RSA PRIVATE KEY-----\\nMIIEowIBAAKCAQEA\\n-----END RSA PRIVATE KEY-----")
        print("card {USER_SECRET} charged")
        for pem_line in ["-----BEGIN EC PRIVATE KEY-----", "MHcCAQEEIlinebyline0Qx", "AwEHoUQDQgAE",
                         "-----END EC PRIVATE KEY-----"]:
            print(pem_line)  # one record each
        print(json.dumps({{"level": "WARN", "message": "login", "password": "{FIELD_PASSWORD}",
                          "headers": {{"authorization": "Bearer {BEARER}"}}}}))
        logger.warning("json-login", extra={{"password": "{FIELD_PASSWORD}",
                                             "creds": {{"key": "{ACCESS_KEY_ID}"}}}})
        logger.error({{"message": "dict-message", "db": "mysql://root:{DB_PASSWORD}@db/x"}})
    for word in event.get("print", []):
        print(f"{{word}}-{{n}}")
        sys.stdout.flush()
    return {{"n": n}}
'''


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "code"
    directory.mkdir()
    (directory / "app.py").write_text(APP)
    return directory


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    with Receiver(tmp_path) as running:
        yield running


def summary(sandbox: Sandbox) -> dict[str, str]:
    (line,) = [line for line in sandbox.extension_output if "shutdown summary:" in line]
    words = line.split("shutdown summary:", 1)[1].split()
    return dict(w.split("=", 1) for w in words if "=" in w and not w.startswith("("))


def bodies(receiver: Receiver) -> str:
    return "\n".join(r["body"] for r in receiver.requests())


@pytest.mark.timeout(60)
@pytest.mark.parametrize("log_format", ["Text", "JSON"])
def test_secrets_a_function_prints_never_reach_the_receiver(
    run: Callable[..., Sandbox], receiver: Receiver, log_format: str
) -> None:
    sandbox = run({"HTTP_REDACT_PATTERNS": r'["\\d{4}-\\d{4}-\\d{4}-\\d{4}"]'},
                  log_format=log_format)  # fmt: skip
    result = sandbox.invoke({"secrets": True})
    assert result.status == "success"
    sandbox.shutdown()
    sent, printed = bodies(receiver), all_output(sandbox)
    for secret in SECRETS:
        assert secret not in sent, secret
        assert secret not in printed, secret
    got = messages(receiver)
    assert "using [REDACTED] for s3" in got
    assert "connecting to postgres://app:[REDACTED]@db.internal:5432/orders" in got
    assert "card [REDACTED] charged" in got
    login = next(e for e in receiver.entries() if e["message"] == "login")
    assert login["record"]["password"] == "[REDACTED]"
    assert login["record"]["headers"]["authorization"] == "[REDACTED]"
    if log_format == "JSON":  # Lambda's JSON format: the extra fields are the record's
        entry = next(e for e in receiver.entries() if e["message"] == "json-login")
        assert entry["record"]["password"] == "[REDACTED]"
        assert entry["record"]["creds"] == {"key": "[REDACTED]"}
        assert entry["level"] == "WARN"
    assert any(m.startswith("REPORT RequestId:") for m in got)


@pytest.mark.timeout(60)
def test_redaction_off_forwards_secrets_as_printed(
    run: Callable[..., Sandbox], receiver: Receiver
) -> None:
    sandbox = run({"HTTP_REDACT": "false"})
    sandbox.invoke({"secrets": True})
    sandbox.shutdown()
    assert f"using {ACCESS_KEY_ID} for s3" in messages(receiver)


@pytest.mark.timeout(60)
def test_the_minimum_level_defaults_to_lambdas_application_log_level(
    run: Callable[..., Sandbox], receiver: Receiver
) -> None:
    sandbox = run(log_format="JSON", log_level="WARN")  # AWS_LAMBDA_LOG_LEVEL=WARN
    words = ["DEBUG: quiet", "INFO: chatty", "WARNING: loud", "ERROR: louder"]
    results = [sandbox.invoke({"n": n, "print": words}) for n in range(2)]
    sandbox.shutdown()
    got = set(messages(receiver))
    for n in range(2):
        assert {f"WARNING: loud-{n}", f"ERROR: louder-{n}"} <= got
        assert not {f"DEBUG: quiet-{n}", f"INFO: chatty-{n}"} & got
    for result in results:  # platform records are kept whatever their level
        assert f"END RequestId: {result.request_id}" in got
        assert any(m.startswith(f"REPORT RequestId: {result.request_id}") for m in got)
    figures = summary(sandbox)
    assert figures["filtered"] == "4" and figures["dropped"] == "0"


@pytest.mark.timeout(60)
def test_include_and_exclude_patterns_with_exclusion_winning(
    run: Callable[..., Sandbox], receiver: Receiver
) -> None:
    sandbox = run({"HTTP_INCLUDE_PATTERN": "^keep", "HTTP_EXCLUDE_PATTERN": "noise"})
    results = [sandbox.invoke({"n": n, "print": ["keep", "keep-noise", "other"]})
               for n in range(3)]  # fmt: skip
    sandbox.shutdown()
    got = messages(receiver)
    function_lines = [e["message"] for e in receiver.entries() if e["log_type"] == "function"]
    assert function_lines == [f"keep-{n}" for n in range(3)]
    for result in results:
        assert f"START RequestId: {result.request_id} Version: $LATEST" in got
    assert summary(sandbox)["filtered"] == "6"


@pytest.mark.timeout(60)
def test_a_pattern_that_does_not_compile_is_a_configuration_error(
    run: Callable[..., Sandbox], receiver: Receiver
) -> None:
    sandbox = run({"HTTP_EXCLUDE_PATTERN": "(unclosed"})
    result = sandbox.invoke({"print": ["line"]})
    assert result.status == "success"  # the function keeps working
    sandbox.shutdown()
    output = all_output(sandbox)
    assert re.search(r"configuration error: HTTP_EXCLUDE_PATTERN: not a valid regular "
                     r"expression \(missing \), unterminated subpattern", output)  # fmt: skip
    assert "logs will NOT be forwarded" in output
    assert receiver.requests() == []
    assert int(summary(sandbox)["dropped"]) > 0  # counted, not silently lost
