"""Where a setting's value comes from: the variable itself, or a secret in AWS.

A setting ``VAR`` (``HTTP_AUTH_CREDENTIALS``, ``HTTP_ENDPOINT``...) may instead be given by one of:

- ``VAR_SECRET_ARN``: a Secrets Manager secret (ARN or name); with ``VAR_SECRET_KEY``, the value
  of that key in a JSON secret, else the whole ``SecretString``.
- ``VAR_SSM_NAME``: an SSM parameter (name or ARN), a ``SecureString`` decrypted.
- ``VAR_KMS_ENCRYPTED``: a base64 KMS ciphertext, decrypted with the encryption context
  ``{"LambdaFunctionName": <function name>}``, then without one.

At most one of ``VAR`` and the three is set (an empty or blank value counts as not set);
anything else is a ``SourceConfigError``. Two steps, so that the environment is checked while
the settings load, before any AWS call: ``find_source`` (pure) at load, ``resolve`` (one AWS
call, through ``services.AwsClient``) later. A fetched value loses one trailing line break
(``--secret-string file://token.txt`` keeps the file's), nothing else.
"""

from __future__ import annotations

from . import errors
from .errors import AwsError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from .services import AwsClient

SECRET_ARN = "_SECRET_ARN"
SECRET_KEY = "_SECRET_KEY"
SSM_NAME = "_SSM_NAME"
KMS_ENCRYPTED = "_KMS_ENCRYPTED"

SECRETS_MANAGER = "secretsmanager"
SSM = "ssm"
KMS = "kms"
_KINDS = ((SECRET_ARN, SECRETS_MANAGER), (SSM_NAME, SSM), (KMS_ENCRYPTED, KMS))


class SourceConfigError(ValueError):
    """The environment gives a setting more than one value, or half a source.

    ``variable`` names the variable to change; the message says how.
    """

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(message)
        self.variable = variable


class SecretSource:
    """One setting's value in AWS: ``kind`` (``secretsmanager``/``ssm``/``kms``), ``reference``
    (the ARN, name or ciphertext) and, for a JSON secret, ``json_key``.

    ``setting`` is the setting (``HTTP_AUTH_CREDENTIALS``), ``variable`` the variable that named
    the source (``HTTP_AUTH_CREDENTIALS_SECRET_ARN``), for messages.
    """

    __slots__ = ("json_key", "kind", "reference", "setting", "variable")

    def __init__(
        self, setting: str, variable: str, kind: str, reference: str, json_key: str = ""
    ) -> None:
        self.setting = setting
        self.variable = variable
        self.kind = kind
        self.reference = reference
        self.json_key = json_key

    def __repr__(self) -> str:
        key = f", json_key={self.json_key!r}" if self.json_key else ""
        return f"SecretSource({self.variable}{key})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretSource):
            return NotImplemented
        return (self.setting, self.variable, self.kind, self.reference, self.json_key) == (
            other.setting,
            other.variable,
            other.kind,
            other.reference,
            other.json_key,
        )

    __hash__ = None  # type: ignore[assignment]


def find_source(environ: Mapping[str, str], setting: str) -> SecretSource | None:
    """The AWS source of ``setting``; None when it is given plainly or not at all.

    Raises ``SourceConfigError`` when more than one of ``setting`` and its sources is set, or
    when ``<setting>_SECRET_KEY`` is set without ``<setting>_SECRET_ARN``.
    """
    given = [
        name
        for name in (setting, *(setting + suffix for suffix, _ in _KINDS))
        if environ.get(name, "").strip()
    ]
    key_variable = setting + SECRET_KEY
    json_key = environ.get(key_variable, "").strip()
    if len(given) > 1:
        names = ", ".join(given[:-1]) + f" and {given[-1]}"
        raise SourceConfigError(
            given[1],
            f"{names} are set, but {setting} takes one value: keep one of them "
            "and unset the others",
        )
    if json_key and given != [setting + SECRET_ARN]:
        raise SourceConfigError(
            key_variable,
            f"{key_variable} names a key of a JSON secret, but {setting}{SECRET_ARN} is not "
            "set: set it to the secret's ARN, or unset " + key_variable,
        )
    if not given or given[0] == setting:
        return None
    variable = given[0]
    kind = next(kind for suffix, kind in _KINDS if variable == setting + suffix)
    return SecretSource(setting, variable, kind, environ[variable].strip(), json_key)


def find_sources(environ: Mapping[str, str], settings: Iterable[str]) -> dict[str, SecretSource]:
    """``find_source`` for each setting; only those that come from AWS are in the answer."""
    found = {}
    for setting in settings:
        source = find_source(environ, setting)
        if source is not None:
            found[setting] = source
    return found


def resolve(source: SecretSource, client: AwsClient, *, function_name: str = "") -> str:
    """Fetch the value. Raises ``AwsError`` whose text leads with ``source.variable``."""
    try:
        if source.kind == SECRETS_MANAGER:
            value = client.get_secret_value(source.reference)
            if source.json_key:
                value = json_value(value, source)
        elif source.kind == SSM:
            value = client.get_parameter(source.reference)
        else:
            value = client.kms_decrypt(source.reference, function_name=function_name)
    except AwsError as error:
        raise error.for_variable(error.variable or source.variable) from None
    if value.endswith("\r\n"):
        return value[:-2]
    return value[:-1] if value.endswith("\n") else value


def resolve_all(
    sources: Mapping[str, SecretSource], client: AwsClient, *, function_name: str = ""
) -> dict[str, str]:
    """``resolve`` each source, by setting; the first failure raises."""
    return {
        setting: resolve(source, client, function_name=function_name)
        for setting, source in sources.items()
    }


def json_value(secret: str, source: SecretSource) -> str:
    """The value at ``source.json_key`` in a JSON secret: text as is, numbers and booleans in
    their JSON form. The secret's content is never part of an error."""
    import json

    key_variable = source.setting + SECRET_KEY
    try:
        document = json.loads(secret)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise AwsError(
            errors.SECRET_NOT_JSON,
            f"the secret {source.reference} is not a JSON object, so it has no key "
            f"{source.json_key!r}: unset {key_variable} to use the whole secret",
            service=SECRETS_MANAGER,
            action="GetSecretValue",
            variable=key_variable,
        )
    if source.json_key not in document:
        # Key names help spot a case mismatch; they are names, never the values.
        names = ", ".join(repr(name[:40]) for name in sorted(document)[:10]) or "none"
        raise AwsError(
            errors.JSON_KEY_NOT_FOUND,
            f"the secret {source.reference} has no key {source.json_key!r} (its keys: "
            f"{names}): check {key_variable}, keys are case-sensitive",
            service=SECRETS_MANAGER,
            action="GetSecretValue",
            variable=key_variable,
        )
    value = document[source.json_key]
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)
    kind = "object" if isinstance(value, dict) else "array" if isinstance(value, list) else "null"
    raise AwsError(
        errors.SECRET_NOT_TEXT,
        f"the key {source.json_key!r} of the secret {source.reference} holds a JSON {kind}, "
        f"not text: point {key_variable} at a text value",
        service=SECRETS_MANAGER,
        action="GetSecretValue",
        variable=key_variable,
    )
