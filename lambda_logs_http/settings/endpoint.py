"""``HTTP_ENDPOINT`` parsed once into the ``Endpoint`` the transport connects to.

A URL that the transport could not use must fail here, at load time, naming the variable — not
later, batch after batch, as silence. So the parse is strict where ``urlsplit`` is lenient or
raises late: one port at most, a bracketed and valid IPv6 literal, a host of URL characters, no
credentials in the URL. Non-ASCII in the path or query is percent-encoded as UTF-8 (as browsers
send it), and an international host name is sent in its ASCII (IDNA) form.

Written by hand rather than with ``urllib.parse``: this runs before the extension registers,
and that import would add to every cold start.
"""

from __future__ import annotations

from .model import Endpoint, Proxy
from .names import HTTP_AUTH_CREDENTIALS, HTTP_AUTH_TYPE, HTTP_AUTH_USERNAME, HTTP_ENDPOINT
from .parse import ConfigError, shown
from .proxy import proxy_for

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_PORTS = {"http": 80, "https": 443}
# RFC 3986 unreserved characters plus sub-delims that may appear in a registered name.
_HOST_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-._~")
# The characters IDNA 2003 maps and IDNA 2008 keeps (UTS #46 "deviations").
_IDNA_DEVIATIONS = frozenset("\u00df\u03c2\u200c\u200d")


def parse_endpoint(
    url: str,
    *,
    timeout_seconds: float,
    tls_verify: bool,
    ca_bundle: str,
    proxy_env: Mapping[str, str] | None = None,
) -> Endpoint:
    """The ``Endpoint`` for ``url``, or ``ConfigError`` naming ``HTTP_ENDPOINT`` and the fix;
    its proxy is chosen from ``proxy_env`` (the environment; None: no proxy)."""
    url = url.strip()
    if not url:
        raise ConfigError(
            HTTP_ENDPOINT,
            "is not set; set it to the URL that receives the logs, "
            "e.g. https://logs.example.com/ingest",
        )
    if any(c.isspace() for c in url):
        raise ConfigError(HTTP_ENDPOINT, "must not contain spaces")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise ConfigError(HTTP_ENDPOINT, "must not contain control characters")
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in DEFAULT_PORTS:
        raise ConfigError(
            HTTP_ENDPOINT,
            f"must be an http:// or https:// URL, got {scheme!r}"
            if sep
            else "must be an http:// or https:// URL",
        )
    rest = rest.split("#", 1)[0]  # a fragment is never sent
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, target = rest[:cut], rest[cut:]
    if "@" in authority:
        raise ConfigError(
            HTTP_ENDPOINT,
            f"must not carry credentials; use {HTTP_AUTH_TYPE}=basic "
            f"with {HTTP_AUTH_USERNAME} and {HTTP_AUTH_CREDENTIALS}",
        )
    host, port = _host_and_port(authority, DEFAULT_PORTS[scheme])
    proxy = None if proxy_env is None else proxy_for(proxy_env, scheme, authority)
    target = percent_encode(target if target.startswith("/") else "/" + target)
    if target.endswith("?") and target.count("?") == 1:
        target = target[:-1]  # an empty query is no query (as urllib sends it)
    return endpoint_for(
        scheme,
        host,
        port,
        target,
        timeout_seconds=timeout_seconds,
        tls_verify=tls_verify,
        ca_bundle=ca_bundle,
        proxy=proxy,
        url=url,
        shown_target=redact_query(target),
    )


def endpoint_for(
    scheme: str,
    host: str,
    port: int,
    target: str,
    *,
    timeout_seconds: float,
    tls_verify: bool,
    ca_bundle: str,
    proxy: Proxy | None,
    url: str,
    shown_target: str = "",
) -> Endpoint:
    """The ``Endpoint`` for parts already checked: its ``Host`` header (the port only when it
    is not the scheme's) and the ``display`` logs show (``shown_target``: what of the path may
    be shown)."""
    bracketed = f"[{host}]" if ":" in host else host
    host_header = bracketed if port == DEFAULT_PORTS[scheme] else f"{bracketed}:{port}"
    return Endpoint(
        url=url,
        scheme=scheme,
        host=host,
        port=port,
        target=target,
        host_header=host_header,
        display=f"{scheme}://{host_header}{shown_target}",
        timeout_seconds=timeout_seconds,
        tls_verify=tls_verify,
        ca_bundle=ca_bundle,
        proxy=proxy,
    )


def redact_query(target: str) -> str:
    """``target`` with every query value replaced by ``***`` (API keys often travel there)."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    shown = "&".join(p.split("=", 1)[0] + ("=***" if "=" in p else "") for p in query.split("&"))
    return f"{path}?{shown}"


def _host_and_port(authority: str, default_port: int) -> tuple[str, int]:
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise ConfigError(HTTP_ENDPOINT, "has an IPv6 address without its closing ']'")
        host, after = authority[1:end], authority[end + 1 :]
        if not _is_ipv6(host):
            raise ConfigError(HTTP_ENDPOINT, f"[{host}] is not a valid IPv6 address")
        if after and not after.startswith(":"):
            raise ConfigError(HTTP_ENDPOINT, f"has unexpected text after [{host}]: {after!r}")
        port_text = after[1:]
    else:
        host, _, port_text = authority.partition(":")
        if ":" in port_text:
            raise ConfigError(
                HTTP_ENDPOINT,
                f"has more than one ':' in {authority!r}; an IPv6 address goes in brackets",
            )
        host = _ascii_host(host)
    if not host:
        raise ConfigError(HTTP_ENDPOINT, "has no host name")
    if not port_text:
        return host, default_port
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise ConfigError(HTTP_ENDPOINT, f"has an invalid port {port_text!r}")
    return host, int(port_text)


def _ascii_host(host: str) -> str:
    """The host as it goes on the wire: lower case, international names in IDNA form, labels
    of at most 63 characters and 253 in all (what DNS, and ``socket``'s own encoding, take)."""
    if not host.isascii():
        deviations = sorted(set(host) & _IDNA_DEVIATIONS)
        if deviations:
            # Python's codec is IDNA 2003, which maps these to other letters (straße -> strasse):
            # another host than the one a browser (IDNA 2008) reaches.
            raise ConfigError(
                HTTP_ENDPOINT,
                f"{host!r} holds {', '.join(f'U+{ord(c):04X}' for c in deviations)}, which "
                "IDNA 2003 and 2008 encode differently; write the host in its xn-- form",
            )
        try:
            host = host.encode("idna").decode("ascii")  # the codec loads only for such names
        except UnicodeError:
            raise ConfigError(HTTP_ENDPOINT, f"{host!r} is not a valid host name") from None
    host = host.lower()
    if not set(host) <= _HOST_CHARACTERS or ".." in host or host.startswith("."):
        raise ConfigError(HTTP_ENDPOINT, f"{host!r} is not a valid host name")
    name = host[:-1] if host.endswith(".") else host
    if len(name) > 253 or any(len(label) > 63 for label in name.split(".")):
        raise ConfigError(
            HTTP_ENDPOINT,
            f"{shown(host)} is not a valid host name (at most 63 characters between dots, "
            "253 in all)",
        )
    return host


def _is_ipv6(text: str) -> bool:
    import _socket  # C module, already loaded for Lambda's local APIs

    try:
        _socket.inet_pton(_socket.AF_INET6, text)
    except (OSError, ValueError):
        return False
    return True


def percent_encode(target: str) -> str:
    """Non-ASCII characters as UTF-8 ``%XX``; everything else (``%2F`` included) as given."""
    if target.isascii():
        return target
    return "".join(
        c if c.isascii() else "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogatepass"))
        for c in target
    )
