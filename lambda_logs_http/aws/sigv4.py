"""AWS Signature Version 4 for one HTTP request, with the standard library only.

``sign()`` takes a request as it will go on the wire (method, URL, headers, body), the
credentials, region, service and the current time, and returns the headers to add to it
(``Authorization``, ``X-Amz-Date``, and ``X-Amz-Security-Token`` / ``X-Amz-Content-Sha256`` when
asked for). Every step is a pure function of its arguments, so the clock is the caller's.

What is supported, following AWS's "Create a signed AWS API request" (Signature Version 4):

- Header-based signing (``Authorization`` header), ``AWS4-HMAC-SHA256`` only. Not supported:
  presigned URLs (query-string signing), SigV4a (``AWS4-ECDSA-P256-SHA256``), chunked
  ``STREAMING-*`` payloads, and ``UNSIGNED-PAYLOAD``: the body is always hashed.
- Canonical URI. The path is taken as it goes on the wire (already percent-encoded once) and is
  URI-encoded once more, as every service but S3 expects ("each path segment must be URI-encoded
  twice"): ``/a%20b`` signs as ``/a%2520b``. Before that it is normalised: ``.`` and ``..``
  segments are removed and runs of ``/`` collapse to one; a trailing ``/`` is kept when the path
  ended in one (``/a/b/..`` gives ``/a``, as botocore, which AWS's own CLI uses, does). Characters
  that are not valid on the wire (a space, non-ASCII text, as in AWS's test suite) are encoded as
  UTF-8. S3-style signing is supported with ``normalize_path=False, double_encode=False``: the
  path is used as sent, only characters outside the unreserved set, ``/`` and ``%`` are encoded.
- Canonical query string. Each ``name=value`` pair of the wire query is percent-decoded and
  re-encoded with AWS's rules (only ``A-Z a-z 0-9 - _ . ~`` stay literal, hex digits upper-case),
  then sorted by name and, for a repeated name, by value. ``+`` is a literal plus (``%2B``), not a
  space: send spaces as ``%20``. A pair without ``=`` signs as ``name=``; empty pairs (``a=1&&b``)
  are skipped.
- Canonical headers. Names lower-cased; values trimmed and inner runs of whitespace (including
  folded lines) collapsed to one space; a header given more than once signs as its values joined
  by ``,`` in the order given. ``Host`` is derived from the URL when not given (``host_header``):
  the transport must send the same value. Hop-by-hop and tracing headers that proxies and
  tracers change are left out of the signature (``UNSIGNED_HEADERS``, the same set as botocore).
- ``X-Amz-Date`` always; ``X-Amz-Security-Token`` when the credentials have a session token,
  signed by default (``sign_session_token=False`` adds it after signing, as a few services
  want); ``X-Amz-Content-Sha256`` when ``content_sha256_header=True`` (S3, and receivers that
  check the payload hash, such as OpenSearch or API Gateway behind CloudFront).

``hashlib``/``hmac`` cost about 3-4 ms to import (OpenSSL), so they are imported on the first
signature, not with this module: importing it costs the cold start nothing measurable.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds to import on the cold-start path
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from .credentials import Credentials

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

# Headers a proxy, a tracer or the HTTP client may add, drop or rewrite on the way: signing them
# would make a correct request fail. The same list as botocore's, plus the headers sign() sets.
UNSIGNED_HEADERS = frozenset(
    {
        "authorization",
        "baggage",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "traceparent",
        "tracestate",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)
# Set by sign() itself; a value the caller passed is replaced, never signed twice.
_SET_BY_SIGN = frozenset({"x-amz-date", "x-amz-security-token", "x-amz-content-sha256"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class Signed:
    """What ``sign`` computed: ``headers`` to add, and the intermediate strings for debugging.

    The canonical request holds the session token, so ``repr`` shows none of it.
    """

    __slots__ = ("canonical_request", "headers", "signature", "signed_headers", "string_to_sign")

    def __init__(
        self,
        headers: dict[str, str],
        canonical_request: str,
        string_to_sign: str,
        signed_headers: str,
        signature: str,
    ) -> None:
        self.headers = headers
        self.canonical_request = canonical_request
        self.string_to_sign = string_to_sign
        self.signed_headers = signed_headers
        self.signature = signature

    def __repr__(self) -> str:
        return f"Signed(signed_headers={self.signed_headers!r})"


def sign(
    method: str,
    url: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    body: bytes,
    *,
    credentials: Credentials,
    region: str,
    service: str,
    now: float,
    content_sha256_header: bool = False,
    sign_session_token: bool = True,
    normalize_path: bool = True,
    double_encode: bool = True,
) -> Signed:
    """Sign one request; ``Signed.headers`` are the headers to add to it before sending.

    ``url`` is the full URL as sent (``https://host[:port]/path?query``; a fragment is ignored),
    ``headers`` the headers that will be sent (a mapping, or ``(name, value)`` pairs when a name
    repeats), ``body`` the exact bytes sent (after compression). ``now`` is the time in seconds
    since the epoch (``time.time()``). ``credentials`` needs ``access_key_id``,
    ``secret_access_key`` and ``session_token`` (``None`` or ``""`` for none).
    """
    import hashlib  # 3-4 ms of OpenSSL loading: paid by the first signature, not at import

    amz_date = amz_timestamp(now)
    payload_hash = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
    pairs = list(headers.items()) if hasattr(headers, "items") else list(headers)
    pairs = [(name, value) for name, value in pairs if name.lower() not in _SET_BY_SIGN]
    if not any(name.lower() == "host" for name, _ in pairs):
        pairs.append(("Host", host_header(url)))
    added = {"X-Amz-Date": amz_date}
    pairs.append(("X-Amz-Date", amz_date))
    token = credentials.session_token
    if token:
        added["X-Amz-Security-Token"] = token
        if sign_session_token:
            pairs.append(("X-Amz-Security-Token", token))
    if content_sha256_header:
        added["X-Amz-Content-Sha256"] = payload_hash
        pairs.append(("X-Amz-Content-Sha256", payload_hash))

    path, query = split_url(url)
    creq, signed_headers = canonical_request(
        method,
        path,
        query,
        pairs,
        payload_hash,
        normalize_path=normalize_path,
        double_encode=double_encode,
    )
    scope = credential_scope(amz_date[:8], region, service)
    sts = string_to_sign(amz_date, scope, creq)
    key = signing_key(credentials.secret_access_key, amz_date[:8], region, service)
    signature = hmac_sha256(key, sts).hex()
    added["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
    return Signed(added, creq, sts, signed_headers, signature)


# Host name endings of the AWS endpoints a log receiver is commonly behind, and the signing name
# each one's requests are signed for (the SigV4 "service").
_SERVICE_BY_HOST_SUFFIX = (
    (".lambda-url.", ".on.aws", "lambda"),  # <id>.lambda-url.<region>.on.aws
    (".execute-api.", ".amazonaws.com", "execute-api"),  # <id>.execute-api.<region>.amazonaws.com
    (".es.", ".amazonaws.com", "es"),  # search-<domain>-<id>.<region>.es.amazonaws.com
    (".aoss.", ".amazonaws.com", "aoss"),  # <collection>.<region>.aoss.amazonaws.com
    ("aps-workspaces.", ".amazonaws.com", "aps"),  # aps-workspaces.<region>.amazonaws.com
)


def infer_service(host: str) -> str:
    """The signing name for a receiver's host name, or "" when the host does not tell.

    Knows API Gateway (``execute-api``), Lambda function URLs (``lambda``), OpenSearch Service
    (``es``), OpenSearch Serverless (``aoss``) and Amazon Managed Prometheus (``aps``), also
    under ``.amazonaws.com.cn``. A custom domain in front of any of them does not tell.
    """
    name = host.lower().rstrip(".")
    if name.startswith("["):
        return ""
    name = name.rsplit(":", 1)[0] if ":" in name else name
    if name.endswith(".amazonaws.com.cn"):
        name = name[: -len(".cn")]
    for marker, suffix, service in _SERVICE_BY_HOST_SUFFIX:
        if name.endswith(suffix) and (marker in name or name.startswith(marker)):
            return service
    return ""


def amz_timestamp(now: float) -> str:
    """``X-Amz-Date`` for ``now`` (seconds since the epoch): ``YYYYMMDDTHHMMSSZ`` in UTC."""
    import time

    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))


def split_url(url: str) -> tuple[str, str]:
    """The path (``/`` when empty) and the query string of an absolute URL, as written."""
    rest = url.split("#", 1)[0]
    scheme_end = rest.find("://")
    if scheme_end >= 0:
        slash = rest.find("/", scheme_end + 3)
        query_mark = rest.find("?", scheme_end + 3)
        if slash < 0 or 0 <= query_mark < slash:  # "https://host?x=1": no path
            start = query_mark if query_mark >= 0 else len(rest)
            rest = "/" + rest[start:]
        else:
            rest = rest[slash:]
    path, _, query = rest.partition("?")
    return path or "/", query


def host_header(url: str) -> str:
    """The ``Host`` value for ``url``: lower-case host, ``[...]`` for IPv6, port unless default."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is not None and port != _DEFAULT_PORTS.get(parts.scheme.lower()):
        host = f"{host}:{port}"
    return host


def canonical_request(
    method: str,
    path: str,
    query: str,
    headers: Iterable[tuple[str, str]],
    payload_hash: str,
    *,
    normalize_path: bool = True,
    double_encode: bool = True,
) -> tuple[str, str]:
    """The canonical request and its ``SignedHeaders`` list, from the wire path and query."""
    block, signed = canonical_headers(headers)
    lines = (
        method.upper(),
        canonical_uri(path, normalize=normalize_path, double_encode=double_encode),
        canonical_query(query),
        block,
        signed,
        payload_hash,
    )
    return "\n".join(lines), signed


def canonical_uri(path: str, *, normalize: bool = True, double_encode: bool = True) -> str:
    """The CanonicalURI of a wire path (see the module's docstring for the rules)."""
    from urllib.parse import quote

    if normalize:
        path = normalize_uri_path(path)
    elif not path:
        path = "/"
    # quote() keeps A-Z a-z 0-9 - _ . ~ (AWS's unreserved set) and the characters in `safe`.
    return quote(path, safe="/" if double_encode else "/%")


def normalize_uri_path(path: str) -> str:
    """Remove ``.``/``..`` segments and empty segments; keep a leading and a trailing ``/``."""
    if not path:
        return "/"
    kept: list[str] = []
    for segment in path.split("/"):
        if not segment or segment == ".":
            continue
        if segment == "..":
            if kept:
                kept.pop()
        else:
            kept.append(segment)
    leading = "/" if path.startswith("/") else ""
    trailing = "/" if path.endswith("/") and kept else ""
    return leading + "/".join(kept) + trailing


def canonical_query(query: str) -> str:
    """The CanonicalQueryString of a wire query string (without the ``?``)."""
    if not query:
        return ""
    from urllib.parse import quote, unquote_to_bytes

    pairs = []
    for piece in query.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        # Bytes, not text: a %FF that is no UTF-8 must sign as %FF, not as a replacement char.
        pairs.append(
            (quote(unquote_to_bytes(name), safe=""), quote(unquote_to_bytes(value), safe=""))
        )
    pairs.sort()
    return "&".join(f"{name}={value}" for name, value in pairs)


def canonical_headers(headers: Iterable[tuple[str, str]]) -> tuple[str, str]:
    """The CanonicalHeaders block (ending in a newline) and the SignedHeaders list."""
    values: dict[str, list[str]] = {}
    for name, value in headers:
        key = name.strip().lower()
        if key in UNSIGNED_HEADERS:
            continue
        values.setdefault(key, []).append(" ".join(str(value).split()))
    names = sorted(values)
    block = "".join(f"{name}:{','.join(values[name])}\n" for name in names)
    return block, ";".join(names)


def credential_scope(date: str, region: str, service: str) -> str:
    """``YYYYMMDD/region/service/aws4_request``."""
    return f"{date}/{region}/{service}/aws4_request"


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    """The StringToSign: algorithm, timestamp, scope and the canonical request's SHA-256."""
    import hashlib

    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    """The derived key: HMAC chain over the date, region, service and ``aws4_request``."""
    key = hmac_sha256(f"AWS4{secret_access_key}".encode(), date)
    key = hmac_sha256(key, region)
    key = hmac_sha256(key, service)
    return hmac_sha256(key, "aws4_request")


def hmac_sha256(key: bytes, message: str) -> bytes:
    """HMAC-SHA256 of a UTF-8 message (OpenSSL's one-shot HMAC)."""
    import hmac

    return hmac.digest(key, message.encode("utf-8"), "sha256")
