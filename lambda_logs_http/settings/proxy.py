"""Forward proxies from the environment: ``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``.

A function in a VPC without a NAT gateway reaches the internet only through a proxy, named by
these variables as for curl and every SDK. The lower-case spelling wins when both are set (an
empty lower-case value turns the proxy off), and ``NO_PROXY`` is matched exactly as
``urllib.request.proxy_bypass_environment`` matches it (a test runs generated cases through
both): ``*`` alone bypasses every host; otherwise each comma-separated entry, leading dots
ignored, matches the host itself, the host with its port as written in the URL, or any name
ending in ``.entry``. IP addresses match only literally (no CIDR ranges).

Only ``http://`` proxies are supported (``https://`` endpoints go through them in a ``CONNECT``
tunnel, verified end to end); credentials in the proxy URL (``http://user:password@host:port``)
are sent as ``Proxy-Authorization: Basic`` and never shown.
"""

from __future__ import annotations

from .model import Proxy
from .names import HTTP_PROXY, HTTPS_PROXY, NO_PROXY
from .parse import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

_DEFAULT_PORT = 80


def variable(env: Mapping[str, str], name: str) -> tuple[str, str]:
    """``(value, the variable it came from)`` for ``name``, the lower-case spelling first."""
    lower = name.lower()
    if lower in env:
        return env[lower].strip(), lower
    return env.get(name, "").strip(), name


def proxy_for(env: Mapping[str, str], scheme: str, authority: str) -> Proxy | None:
    """The proxy for a URL of ``scheme`` whose authority (``host[:port]`` as written) is
    ``authority``; None to connect directly. ``ConfigError`` if the proxy URL is unusable."""
    value, name = variable(env, HTTPS_PROXY if scheme == "https" else HTTP_PROXY)
    if not value:
        return None
    no_proxy, _ = variable(env, NO_PROXY)
    if no_proxy and bypass(no_proxy, authority):
        return None
    return parse_proxy(value, name)


def bypass(no_proxy: str, authority: str) -> bool:
    """Whether ``NO_PROXY`` = ``no_proxy`` exempts ``authority`` (urllib's rule, see above)."""
    if no_proxy == "*":
        return True
    host = authority.lower()
    host_only = _host_only(host)
    for entry in no_proxy.split(","):
        entry = entry.strip().lstrip(".").lower()
        if not entry:
            continue
        if entry in (host_only, host):
            return True
        suffix = "." + entry
        if host_only.endswith(suffix) or host.endswith(suffix):
            return True
    return False


def parse_proxy(value: str, name: str) -> Proxy:
    """The ``Proxy`` for the URL ``value`` of the variable ``name``."""
    scheme, sep, rest = value.partition("://")
    if not sep:
        scheme, rest = "http", value  # an authority alone: host:port
    if scheme.lower() != "http":
        raise ConfigError(
            name,
            f"only http:// proxies are supported, got {scheme.lower()}:// (an https:// "
            "endpoint is reached through an http:// proxy in a CONNECT tunnel, end-to-end TLS)",
        )
    authority = rest.split("/", 1)[0]
    userinfo, at, hostport = authority.rpartition("@")
    authorization = ""
    if at:
        import base64  # only when the proxy needs credentials

        user, _, password = userinfo.partition(":")
        credentials = f"{_unquote(user)}:{_unquote(password)}".encode()
        authorization = "Basic " + base64.b64encode(credentials).decode("ascii")
    host, port = _split_host_port(hostport, name)
    shown = f"[{host}]" if ":" in host else host
    return Proxy(
        host=host,
        port=port,
        authorization=authorization,
        variable=name,
        display=f"http://{shown}:{port}",
    )


def _host_only(host: str) -> str:
    """``host`` without a trailing ``:digits`` (urllib's ``_splitport``)."""
    head, sep, port = host.rpartition(":")
    if sep and all(c in "0123456789" for c in port):
        return head
    return host


def _split_host_port(hostport: str, name: str) -> tuple[str, int]:
    if hostport.startswith("["):
        end = hostport.find("]")
        host, after = hostport[1:end] if end > 0 else "", hostport[end + 1 :] if end > 0 else ""
        port_text = after[1:] if after.startswith(":") else ""
        if end < 0 or (after and not after.startswith(":")):
            raise ConfigError(name, f"has a malformed IPv6 address in {hostport!r}")
    else:
        host, _, port_text = hostport.partition(":")
    if not host or any(c.isspace() for c in host) or not host.isascii():
        raise ConfigError(name, f"has no usable host in {hostport!r}")
    if not port_text:
        return host.lower(), _DEFAULT_PORT
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise ConfigError(name, f"has an invalid port {port_text!r}")
    return host.lower(), int(port_text)


def _unquote(text: str) -> str:
    """Percent-decoded, as urllib's proxy handler does (imported only for such a password)."""
    if "%" not in text:
        return text
    from urllib.parse import unquote

    return unquote(text)
