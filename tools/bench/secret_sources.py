"""What reading a setting from AWS adds to a cold start, per source.

```sh
.venv/bin/python -m tools.bench.secret_sources --runs 30        # ~1 minute; --layer dist/layer
```

Each variant starts the built layer's launcher against the bench's fake Extensions API
(``fake_lambda``, the timing of ``init_bench``: start → register, start → first
``/event/next``, both on one monotonic clock) with the bearer token given a different way:
plainly (the baseline), from a Secrets Manager secret, from a key of a JSON secret, from an SSM
``SecureString``, from a KMS ciphertext — fetched from a local ``moto_server`` seeded by the
AWS CLI (``tests/support/moto.py``), through the extension's own HTTP stack — and, for
comparison, ``HTTP_HEADERS`` (JSON parsed after register) and ``aws_sigv4`` (its service
inferred after register). Runs are interleaved so that drift hits every variant alike.

"AWS round trip" is the same call made from this process with the package's own client over a
warm connection (median): what the source costs at the very least. The difference between
"ready added" and it is the extension's own work for the call (``json``, ``hashlib``, ``socket``
imports, signing), paid once per cold start. Against real AWS the round trip is the network's
(plus a TLS handshake and ``ssl``'s import, ~10 ms of CPU, which moto over http:// does not
need). Register must not move: everything happens after it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from . import machine, procs
from .bench import build_layer
from .fake_lambda import FakeLambdaApi
from .figures import fmt_ms
from .init_bench import InitSamples, _run_extension

TOKEN_SETTING = "HTTP_AUTH_CREDENTIALS"


def variants(moto: Any) -> dict[str, dict[str, str]]:
    from tests.support.moto import FUNCTION_NAME, PLAIN_TOKEN

    aws = {"AWS_ENDPOINT_URL": moto.endpoint, "AWS_LAMBDA_FUNCTION_NAME": FUNCTION_NAME,
           **moto.function}
    bearer = {"HTTP_AUTH_TYPE": "bearer"}
    return {
        "plain token": {**bearer, **aws, TOKEN_SETTING: PLAIN_TOKEN},
        "Secrets Manager": {**bearer, **aws, f"{TOKEN_SETTING}_SECRET_ARN": "plain-token"},
        "Secrets Manager, JSON key": {**bearer, **aws,
                                      f"{TOKEN_SETTING}_SECRET_ARN": moto.arns["json-token"],
                                      f"{TOKEN_SETTING}_SECRET_KEY": "api_key"},
        "SSM SecureString": {**bearer, **aws,
                             f"{TOKEN_SETTING}_SSM_NAME": "/lambda-logs-http/token"},
        "KMS ciphertext": {**bearer, **aws,
                           f"{TOKEN_SETTING}_KMS_ENCRYPTED": moto.ciphertexts["context"]},
        "HTTP_HEADERS (plain)": {**bearer, **aws, TOKEN_SETTING: PLAIN_TOKEN,
                                 "HTTP_HEADERS": '{"X-Scope-OrgID": "team-a"}'},
        "aws_sigv4": {**aws, "HTTP_AUTH_TYPE": "aws_sigv4",
                      "HTTP_AWS_SIGV4_SERVICE": "execute-api"},
    }


def round_trips(moto: Any, runs: int) -> dict[str, float]:
    """The median time of each source's AWS call from here, on a warm connection (ms)."""
    from lambda_logs_http.aws import sources
    from lambda_logs_http.aws.credentials import CredentialsProvider
    from lambda_logs_http.aws.services import AwsClient
    from lambda_logs_http.http.request import HttpRequester
    from tests.support.moto import FUNCTION_NAME

    found = {}
    for name, env in variants(moto).items():
        source = sources.find_source(env, TOKEN_SETTING)
        if source is None:
            continue
        full = {**env, "AWS_REGION": "us-east-1"}
        requester = HttpRequester(full)
        client = AwsClient(full, requester, CredentialsProvider(full).get)
        sources.resolve(source, client, function_name=FUNCTION_NAME)  # warm: connect, imports
        took = []
        for _ in range(runs):
            started = time.perf_counter()
            sources.resolve(source, client, function_name=FUNCTION_NAME)
            took.append((time.perf_counter() - started) * 1000)
        requester.close()
        found[name] = statistics.median(took)
    return found


def measure(layer: Path, python: str, moto: Any, runs: int, warmup: int = 2) -> dict[str, Any]:
    chosen = variants(moto)
    samples = {name: InitSamples() for name in chosen}
    with tempfile.TemporaryDirectory(prefix="bench-sources-") as tmp_name:
        tmp = Path(tmp_name)
        for index in range(warmup + runs):
            for name, extra in chosen.items():
                record = samples[name] if index >= warmup else InitSamples()
                with FakeLambdaApi() as fake:
                    settings = {"HTTP_ENDPOINT": "http://127.0.0.1:9/ingest",
                                "HTTP_LISTENER_PORT": str(procs.free_port()),
                                "HTTP_SPILL_DIR": str(tmp / f"spill-{index}"), **extra}
                    env = procs.base_env(fake.runtime_api, python, settings)
                    out = tmp / "extension.out"
                    _run_extension([str(layer / procs.LAUNCHER)], env, fake, out, record)
                    text = out.read_text(errors="replace")
                    if "[EXTENSION] ERROR" in text or fake.subscription is None:
                        record.failures.append(text[-400:])
    return {name: s for name, s in samples.items()}


def table(samples: dict[str, InitSamples], trips: dict[str, float]) -> list[str]:
    base = samples["plain token"]
    base_register = statistics.median(base.register) if base.register else None
    base_ready = statistics.median(base.ready) if base.ready else None
    base_cpu = statistics.median(base.cpu) if base.cpu else None
    rows = ["| token from | register (ms) | first /event/next (ms) | ready added | AWS round "
            "trip | added - round trip | CPU until idle (ms) | failures |",
            "|---|---|---|---|---|---|---|---|"]
    for name, s in samples.items():
        register = statistics.median(s.register) if s.register else None
        ready = statistics.median(s.ready) if s.ready else None
        added = ready - base_ready if ready is not None and base_ready is not None else None
        trip = trips.get(name)
        rest = added - trip if added is not None and trip is not None else None
        cpu = statistics.median(s.cpu) if s.cpu else None
        cpu_added = (f" ({cpu - base_cpu:+.1f})"
                     if cpu is not None and base_cpu is not None and s is not base else "")
        moved = (f" ({register - base_register:+.1f})"
                 if register is not None and base_register is not None and s is not base else "")
        rows.append(f"| {name} | {fmt_ms(register)}{moved} | {fmt_ms(ready)} | "
                    f"{fmt_ms(added) if s is not base else '—'} | {fmt_ms(trip)} | "
                    f"{fmt_ms(rest)} | {fmt_ms(cpu)}{cpu_added} | {len(s.failures)} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", type=Path, help="an unpacked layer (default: build one)")
    parser.add_argument("--python", help="the interpreter the extension runs on")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args(argv)
    from tests.support.moto import SKIP_REASON, moto_available, running_moto

    if not moto_available():
        raise SystemExit(SKIP_REASON)
    python = os.path.realpath(args.python) if args.python else machine.default_python()
    with tempfile.TemporaryDirectory(prefix="bench-sources-build-") as build_dir:
        layer = args.layer or build_layer(Path(build_dir) / "build")[0]
        with tempfile.TemporaryDirectory(prefix="bench-moto-") as home, \
                running_moto(Path(home)) as moto:
            trips = round_trips(moto, args.runs)
            samples = measure(layer, python, moto, args.runs)
    print(f"python {python}; {args.runs} runs each, medians; moto_server on 127.0.0.1 (http)")
    for line in table(samples, trips):
        print(line)
    for name, s in samples.items():
        for failure in s.failures[:1]:
            print(f"{name}: FAILED: {failure}")
    return 0 if not any(s.failures for s in samples.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
