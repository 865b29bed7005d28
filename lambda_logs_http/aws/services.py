"""Just enough of Secrets Manager, SSM Parameter Store and KMS to read one secret each.

``AwsClient`` makes AWS JSON 1.1 calls (``POST /`` with ``X-Amz-Target`` and
``Content-Type: application/x-amz-json-1.1``), signed with ``sigv4``, through the injected
``request`` callable (see ``errors.Request``). Its three reads:

- ``get_secret_value(secret_id)``: Secrets Manager ``GetSecretValue``, the ``SecretString``.
- ``get_parameter(name)``: SSM ``GetParameter`` with ``WithDecryption``, the value.
- ``kms_decrypt(ciphertext_b64, function_name)``: KMS ``Decrypt``, first with the encryption
  context ``{"LambdaFunctionName": function_name}`` (what the Lambda console's encryption helpers
  use), then without one; the plaintext as UTF-8 text.

Region: ``AWS_REGION`` (else ``AWS_DEFAULT_REGION``); a secret's or parameter's ARN names its own
region, which wins. Endpoint, as the AWS SDKs choose it: ``AWS_ENDPOINT_URL_SECRETS_MANAGER`` /
``AWS_ENDPOINT_URL_SSM`` / ``AWS_ENDPOINT_URL_KMS``, else ``AWS_ENDPOINT_URL``, else
``https://<service>.<region>.amazonaws.com`` (``.amazonaws.com.cn`` in China);
``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`` ignores the variables. Not derived: FIPS and
dual-stack endpoints (set them with the variables above).

Each attempt has ``timeout`` seconds (2 by default); a throttled or 5xx answer is tried once more
after a short jittered pause. Every failure is an ``AwsError`` whose text names the fix.
"""

from __future__ import annotations

import time

from ..settings.names import (
    AWS_DEFAULT_REGION,
    AWS_ENDPOINT_URL,
    AWS_IGNORE_CONFIGURED_ENDPOINT_URLS,
    AWS_REGION,
)
from . import errors
from .errors import AwsError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from .credentials import Credentials
    from .errors import Request

TIMEOUT_SECONDS = 2.0
LAMBDA_FUNCTION_NAME_CONTEXT = "LambdaFunctionName"


class Service:
    """What differs between the three services: names, target prefix, endpoint variable."""

    __slots__ = ("endpoint_variable", "name", "signing_name", "target_prefix", "title")

    def __init__(
        self, signing_name: str, target_prefix: str, endpoint_variable: str, title: str
    ) -> None:
        self.signing_name = signing_name  # also the endpoint's host prefix and the IAM prefix
        self.target_prefix = target_prefix
        self.endpoint_variable = endpoint_variable
        self.title = title


SECRETS_MANAGER = Service(
    "secretsmanager", "secretsmanager", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "Secrets Manager"
)
SSM = Service("ssm", "AmazonSSM", "AWS_ENDPOINT_URL_SSM", "SSM Parameter Store")
KMS = Service("kms", "TrentService", "AWS_ENDPOINT_URL_KMS", "KMS")

# Error codes after which the same call may succeed a moment later.
THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "ProvisionedThroughputExceededException",
        "SlowDown",
    }
)
ACCESS_DENIED_CODES = frozenset({"AccessDeniedException", "AccessDenied"})
CREDENTIALS_REJECTED_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "ExpiredTokenException",
        "ExpiredToken",
        "RequestExpired",
    }
)
RETRY_PAUSE_SECONDS = (0.05, 0.25)  # the pause before the one retry: uniform in this range


class AwsClient:
    """Signed AWS JSON 1.1 calls to Secrets Manager, SSM and KMS.

    ``environ`` is read here, once (region and endpoints). ``credentials`` returns the
    credentials to sign with (``CredentialsProvider.get``). ``clock`` gives epoch seconds for the
    signature; ``sleep`` is the pause before a retry. Both are injectable for tests.
    """

    def __init__(
        self,
        environ: Mapping[str, str],
        request: Request,
        credentials: Callable[[], Credentials],
        *,
        timeout: float = TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.region = (
            environ.get(AWS_REGION, "").strip() or environ.get(AWS_DEFAULT_REGION, "").strip()
        )
        ignore = environ.get(AWS_IGNORE_CONFIGURED_ENDPOINT_URLS, "").strip().lower()
        self._endpoints: dict[str, str] = {}
        if ignore not in ("1", "true", "yes", "on"):
            default = environ.get(AWS_ENDPOINT_URL, "").strip()
            for service in (SECRETS_MANAGER, SSM, KMS):
                chosen = environ.get(service.endpoint_variable, "").strip() or default
                if chosen:
                    self._endpoints[service.signing_name] = chosen
        self._request = request
        self._credentials = credentials
        self._timeout = timeout
        self._clock = clock
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"AwsClient(region={self.region!r})"

    def endpoint(self, service: Service, region: str) -> str:
        """The URL calls to ``service`` in ``region`` go to."""
        configured = self._endpoints.get(service.signing_name)
        if configured:
            return configured
        domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
        return f"https://{service.signing_name}.{region}.{domain}/"

    # --- the three reads -------------------------------------------------------------------

    def get_secret_value(self, secret_id: str, *, version_stage: str = "") -> str:
        """The ``SecretString`` of a Secrets Manager secret (ARN or name)."""
        region = arn_region(secret_id) or self.region
        payload: dict[str, object] = {"SecretId": secret_id}
        if version_stage:
            payload["VersionStage"] = version_stage
        answer = self.call(
            SECRETS_MANAGER, "GetSecretValue", payload, region=region, resource=secret_id
        )
        value = answer.get("SecretString")
        if not isinstance(value, str):
            raise AwsError(
                errors.SECRET_NOT_TEXT,
                f"the secret {secret_id} has no SecretString (a binary secret?): store the value "
                "as a secret string",
                service=SECRETS_MANAGER.signing_name,
                action="GetSecretValue",
            )
        return value

    def get_parameter(self, name: str, *, with_decryption: bool = True) -> str:
        """The value of an SSM parameter (name or ARN); a ``SecureString`` comes decrypted."""
        region = arn_region(name) or self.region
        answer = self.call(
            SSM,
            "GetParameter",
            {"Name": name, "WithDecryption": with_decryption},
            region=region,
            resource=name,
        )
        parameter = answer.get("Parameter")
        value = parameter.get("Value") if isinstance(parameter, dict) else None
        if not isinstance(value, str):
            raise _invalid_response(SSM, "GetParameter", "no Parameter.Value")
        return value

    def kms_decrypt(self, ciphertext_b64: str, *, function_name: str = "") -> str:
        """The plaintext (UTF-8) of a base64 KMS ciphertext.

        Tried first with the encryption context ``{"LambdaFunctionName": function_name}`` (when a
        name is given), then, if KMS says the ciphertext does not match, without a context.
        """
        import base64
        import binascii

        text = "".join(ciphertext_b64.split())
        try:
            blob = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            blob = b""
        if not blob:
            raise AwsError(
                errors.INVALID_CIPHERTEXT_BASE64,
                "the KMS ciphertext is not base64 text: give the CiphertextBlob as the Lambda "
                "console's encryption helper or `aws kms encrypt --query CiphertextBlob` shows it",
                service=KMS.signing_name,
                action="Decrypt",
            )
        contexts: list[dict[str, str] | None] = [None]
        if function_name:
            contexts.insert(0, {LAMBDA_FUNCTION_NAME_CONTEXT: function_name})
        for context in contexts:
            payload: dict[str, object] = {"CiphertextBlob": text}
            if context is not None:
                payload["EncryptionContext"] = context
            try:
                answer = self.call(
                    KMS, "Decrypt", payload, region=self.region, resource=function_name
                )
            except AwsError as error:
                if error.code == "InvalidCiphertextException" and context is not None:
                    continue  # encrypted without the context (or with another): try without
                raise
            plaintext = answer.get("Plaintext")
            try:
                return base64.b64decode(plaintext, validate=True).decode("utf-8")  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise _invalid_response(
                    KMS, "Decrypt", "a Plaintext that is not base64 UTF-8 text"
                ) from None
        raise AssertionError("unreachable: the last context re-raises")  # pragma: no cover

    # --- the call --------------------------------------------------------------------------

    def call(
        self,
        service: Service,
        action: str,
        payload: Mapping[str, object],
        *,
        region: str = "",
        resource: str = "",
    ) -> dict[str, object]:
        """One JSON 1.1 action; the decoded answer. ``resource`` only words error messages."""
        import json

        from . import sigv4

        region = region or self.region
        if not region:
            raise AwsError(
                errors.NO_REGION,
                f"no AWS region: set {AWS_REGION} (Lambda sets it), or give an ARN",
                service=service.signing_name,
                action=action,
            )
        url = self.endpoint(service, region)
        body = json.dumps(payload).encode("utf-8")
        credentials = self._credentials()
        status, headers, answer = 0, {}, b""
        for attempt in (1, 2):
            request_headers = {
                "Host": sigv4.host_header(url),
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": f"{service.target_prefix}.{action}",
            }
            signed = sigv4.sign(
                "POST",
                url,
                request_headers,
                body,
                credentials=credentials,
                region=region,
                service=service.signing_name,
                now=self._clock(),
            )
            request_headers.update(signed.headers)
            try:
                status, headers, answer = self._request(
                    "POST", url, request_headers, body, self._timeout
                )
            except OSError as exc:
                raise _unreachable(service, action, url, exc) from None
            if status == 200:
                break
            code, message = error_code(status, headers, answer)
            retryable = status >= 500 or status == 429 or code in THROTTLING_CODES
            if attempt == 1 and retryable:
                low, high = RETRY_PAUSE_SECONDS
                self._sleep(low + (high - low) * _uniform())
                continue
            raise _aws_error(
                service,
                action,
                status,
                code,
                message,
                region,
                resource,
                credentials,
                retried=attempt == 2,
            )
        try:
            decoded = json.loads(answer) if answer else {}
        except ValueError:
            raise _invalid_response(service, action, "a body that is not JSON") from None
        if not isinstance(decoded, dict):
            raise _invalid_response(service, action, "JSON that is not an object")
        return decoded


def arn_region(identifier: str) -> str:
    """The region of an ARN (``arn:partition:service:region:account:...``); "" for a name."""
    if not identifier.startswith("arn:"):
        return ""
    parts = identifier.split(":", 5)
    return parts[3] if len(parts) == 6 else ""


def error_code(status: int, headers: Mapping[str, str], body: bytes) -> tuple[str, str]:
    """AWS's error code and message from an error answer (JSON, the header, or XML)."""
    import json

    code, message = "", ""
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if isinstance(document, dict):
        raw = document.get("__type") or document.get("code") or ""
        code = str(raw).rsplit("#", 1)[-1]
        message = str(document.get("message") or document.get("Message") or "")
    if not code:
        # "ResourceNotFoundException:http://internal.amazon.com/coral/..."
        code = errors.header(headers, "x-amzn-ErrorType").split(":", 1)[0].strip()
    if not code or not message:
        # Not AWS's JSON answer (a proxy, a query-protocol front end, moto's IAM checks).
        text = body.decode("utf-8", "replace")
        code = code or _between(text, "<Code>", "</Code>")
        message = message or _between(text, "<Message>", "</Message>")
    return code or f"HTTP{status}", message


def _between(text: str, start: str, end: str) -> str:
    begin = text.find(start)
    if begin < 0:
        return ""
    begin += len(start)
    finish = text.find(end, begin)
    return text[begin:finish] if finish >= 0 else ""


def _uniform() -> float:
    """A draw in [0, 1) without importing ``random`` (its import costs more than the draw)."""
    import os

    return int.from_bytes(os.urandom(2), "big") / 65536


def _unreachable(service: Service, action: str, url: str, exc: OSError) -> AwsError:
    timed_out = isinstance(exc, TimeoutError) or "timed out" in str(exc)
    code = errors.TIMEOUT if timed_out else errors.ENDPOINT_UNREACHABLE
    what = "did not answer in time" if timed_out else f"could not be reached ({type(exc).__name__})"
    return AwsError(
        code,
        f"{service.title} {action}: {_origin(url)} {what}: a function in a VPC needs a VPC "
        f"endpoint for {service.signing_name} or a NAT gateway; {service.endpoint_variable} "
        "sets another endpoint",
        service=service.signing_name,
        action=action,
    )


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL, for messages: no path, query or userinfo."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def _invalid_response(service: Service, action: str, what: str) -> AwsError:
    return AwsError(
        errors.INVALID_RESPONSE,
        f"{service.title} {action} answered {what}: is {service.endpoint_variable} or "
        f"{AWS_ENDPOINT_URL} pointing at an AWS endpoint?",
        service=service.signing_name,
        action=action,
    )


def _aws_error(
    service: Service,
    action: str,
    status: int,
    code: str,
    message: str,
    region: str,
    resource: str,
    credentials: Credentials,
    *,
    retried: bool,
) -> AwsError:
    said = errors.scrub(message, credentials.secrets())
    text = f"{service.title} {action} failed with {code} (HTTP {status}"
    text += ", after one retry)" if retried else ")"
    if said:
        text += f": {said.rstrip('.')}"
    fix = _fix(service, action, code, region, resource)
    if fix:
        text += f". Fix: {fix}"
    return AwsError(code, text, status=status, service=service.signing_name, action=action)


def _fix(service: Service, action: str, code: str, region: str, resource: str) -> str:
    """What to change, for the errors a user can act on."""
    iam_action = f"{service.signing_name}:{action}"
    if code in ACCESS_DENIED_CODES:
        if service is SECRETS_MANAGER:
            target = (
                resource
                if resource.startswith("arn:")
                else (f"arn:aws:secretsmanager:{region}:<account-id>:secret:{resource}-*")
            )
            return (
                f"allow {iam_action} on {target} in the function's execution role (and "
                "kms:Decrypt on the secret's key if it is a customer managed key)"
            )
        if service is SSM:
            target = (
                resource
                if resource.startswith("arn:")
                else (f"arn:aws:ssm:{region}:<account-id>:parameter/{resource.lstrip('/')}")
            )
            return (
                f"allow {iam_action} on {target} in the function's execution role (and "
                "kms:Decrypt on the parameter's key for a SecureString with a customer "
                "managed key)"
            )
        return (
            f"allow kms:Decrypt on the key that encrypted the value in the function's "
            "execution role (condition kms:EncryptionContext:LambdaFunctionName = "
            f"{resource or '<function name>'} if the policy restricts the context)"
        )
    if code in CREDENTIALS_REJECTED_CODES:
        return (
            "AWS rejected the function's credentials: do not override AWS_ACCESS_KEY_ID, "
            "AWS_SECRET_ACCESS_KEY or AWS_SESSION_TOKEN (Lambda sets them), and check the "
            "clock and the endpoint's region"
        )
    if code in THROTTLING_CODES or code == "HTTP429":
        return f"{service.title} throttled the call: raise its request quota in {region}"
    if code == "ResourceNotFoundException" and service is SECRETS_MANAGER:
        return f"check the secret's ARN or name, and that it exists in {region}"
    if code in ("ParameterNotFound", "ParameterVersionNotFound"):
        return (
            f"check the parameter's name (a path starts with /) or ARN, and that it exists "
            f"in {region}"
        )
    if code == "InvalidCiphertextException":
        return (
            "the ciphertext was not made by KMS in this region with the encryption context "
            f'{{"{LAMBDA_FUNCTION_NAME_CONTEXT}": "<function name>"}} nor without one: '
            "encrypt the value again with the Lambda console's helper or `aws kms encrypt`"
        )
    if code in ("DisabledException", "KMSInvalidStateException", "KeyUnavailableException"):
        return "the KMS key is disabled or pending deletion: enable it"
    if code == "DecryptionFailure":
        return "allow kms:Decrypt on the secret's KMS key in the function's execution role"
    return ""
