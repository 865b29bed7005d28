"""Verifying a received request's AWS Signature Version 4 with botocore, as a receiver behind IAM
would: the credential scope, the signed headers, the payload hash and the signature itself.

botocore's ``SigV4Auth`` (what the AWS CLI and boto3 sign with) recomputes the canonical request
and the signature from the request as received, restricted to the headers the request says it
signed; anything that differs from what the sender computed makes the signature differ.
"""

from __future__ import annotations

import calendar
import hashlib
import time
from collections.abc import Mapping

MAX_SKEW_SECONDS = 300  # AWS refuses a signature more than 5 minutes off


class Expected:
    """What the receiver knows: the caller's credentials, and the scope it accepts."""

    def __init__(self, access_key_id: str, secret_access_key: str, session_token: str | None,
                 region: str, service: str) -> None:
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.session_token = session_token
        self.region = region
        self.service = service

    def as_dict(self) -> dict[str, str | None]:
        return {"access_key_id": self.access_key_id, "secret_access_key": self.secret_access_key,
                "session_token": self.session_token, "region": self.region,
                "service": self.service}


def problems(method: str, url: str, headers: Mapping[str, str], body: bytes,
             expected: Expected, *, must_sign: tuple[str, ...] = ()) -> list[str]:
    """Everything wrong with the request's signature; [] when it verifies.

    ``headers`` as received (any case); ``body`` as received, before any decompression.
    ``must_sign``: header names (lower case) that must be among the signed ones when present.
    """
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    lower = {name.lower(): value for name, value in headers.items()}
    authorization = lower.get("authorization", "")
    if not authorization.startswith("AWS4-HMAC-SHA256 "):
        return [f"no SigV4 Authorization header: {authorization[:30]!r}"]
    fields = dict(part.strip().split("=", 1) for part in authorization[17:].split(","))
    found = []
    key_id, date, region, service, terminator = (fields.get("Credential", "").split("/") + [""] * 5)[:5]
    amz_date = lower.get("x-amz-date", "")
    if key_id != expected.access_key_id:
        found.append("signed with another access key")
    if (region, service, terminator) != (expected.region, expected.service, "aws4_request"):
        found.append(f"scope {region}/{service}/{terminator}, expected "
                     f"{expected.region}/{expected.service}/aws4_request")
    if not amz_date or date != amz_date[:8]:
        found.append(f"scope date {date} does not match X-Amz-Date {amz_date}")
    else:
        signed_at = calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
        if abs(signed_at - time.time()) > MAX_SKEW_SECONDS:
            found.append(f"X-Amz-Date {amz_date} is more than 5 minutes off")
    if lower.get("x-amz-security-token") != expected.session_token:
        found.append("X-Amz-Security-Token is not the session token")
    payload_hash = hashlib.sha256(body).hexdigest()
    if lower.get("x-amz-content-sha256") != payload_hash:
        found.append("X-Amz-Content-Sha256 is not the SHA-256 of the body as received")
    signed = fields.get("SignedHeaders", "").split(";")
    for name in ("host", "x-amz-date", "x-amz-content-sha256", *must_sign):
        if name in lower and name not in signed:
            found.append(f"{name} is not signed")
    if expected.session_token and "x-amz-security-token" not in signed:
        found.append("x-amz-security-token is not signed")
    missing = [name for name in signed if name not in lower]
    if missing:
        found.append(f"signed headers not in the request: {missing}")
        return found

    request = AWSRequest(method=method, url=url, data=body,
                         headers={name: lower[name] for name in signed})
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(expected.access_key_id, expected.secret_access_key,
                                   expected.session_token), expected.service, expected.region)
    if signer.signed_headers(signer.headers_to_sign(request)) != ";".join(signed):
        found.append("botocore would sign another set of headers: "
                     f"{signer.signed_headers(signer.headers_to_sign(request))}")
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    if signature != fields.get("Signature"):
        found.append("the signature does not verify (botocore's canonical request: "
                     f"{canonical!r})")
    return found
