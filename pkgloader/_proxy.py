"""Which proxy a request goes through: ``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``,
``NO_PROXY`` (upper or lower case, lower case first, as requests and httpx read them) and the
``[pkgloader] proxy`` / ``https_proxy`` / ``http_proxy`` / ``no_proxy`` keys.

As in curl, requests, httpx and pip, every host goes through the proxy unless ``NO_PROXY``
matches it, loopback included. ``NO_PROXY`` entries are separated by commas (or white
space) and are one of:

* ``*``: no host uses the proxy;
* a host name: that host and every host below it (``example.com``, ``.example.com`` and
  ``*.example.com`` all match ``example.com`` and ``a.example.com``);
* ``host:port``: the same, on that port only;
* an IP literal (``127.0.0.1``, ``::1``, ``[::1]``) or a CIDR range (``10.0.0.0/8``,
  ``fd00::/8``), matched against an IP literal in the URL (names are never resolved).

Only ``http://`` proxies are spoken (plain requests for ``http://`` URLs, a ``CONNECT``
tunnel for ``https://``): they are what corporate networks run. A proxy's credentials come
from its URL (``http://user:pass@proxy:3128``) and are sent as ``Proxy-Authorization``,
never printed: :attr:`Proxy.display` is the URL without them.
"""

from __future__ import annotations

import base64
from typing import Mapping
from urllib.parse import unquote, urlsplit

from ._frozen import Frozen, init_field

__all__ = ["Proxy", "ProxySettings", "parse_proxy_url", "no_proxy_matches"]


class Proxy(Frozen):
    __fields__ = ("host", "port", "authorization", "display", "origin")
    host: str
    port: int
    #: ``Proxy-Authorization`` value, or None
    authorization: str | None
    #: the proxy's URL without credentials (for messages and logs)
    display: str
    #: where the setting came from ("environment HTTPS_PROXY", "config ...")
    origin: str = ""

    def __init__(self, host: str, port: int, authorization: str | None, display: str, origin: str = "") -> None:
        init_field(self, "host", host)
        init_field(self, "port", port)
        init_field(self, "authorization", authorization)
        init_field(self, "display", display)
        init_field(self, "origin", origin)

    def __repr__(self) -> str:  # never show the credentials
        return f"Proxy({self.display!r})"


def parse_proxy_url(value: str, origin: str) -> Proxy:
    """A proxy URL (``http://[user:pass@]host[:port]``; a bare ``host:port`` means
    ``http://``) as a :class:`Proxy`. Raises ``ValueError`` with a message that names
    ``origin`` and never the credentials."""
    text = value.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError(f"{origin}: not a proxy URL (expected http://host:port)") from None
    scheme = parts.scheme.lower()
    if scheme != "http":
        raise ValueError(
            f"{origin}: pkgloader speaks to proxies over http:// only, not {scheme}:// "
            "(an http:// proxy still tunnels https:// registries with CONNECT)"
        )
    if not parts.hostname:
        raise ValueError(f"{origin}: the proxy URL has no host (expected http://host:port)")
    host = parts.hostname
    netloc_host = f"[{host}]" if ":" in host else host
    auth = None
    if parts.username is not None:
        user = unquote(parts.username)
        password = unquote(parts.password or "")
        auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    port = port or 80
    return Proxy(host, port, auth, f"http://{netloc_host}:{port}", origin)


def _strip_brackets(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def no_proxy_matches(entries: tuple[str, ...], host: str, port: int) -> bool:
    """Whether ``host:port`` is exempt from the proxy by these ``NO_PROXY`` entries."""
    import ipaddress

    host = _strip_brackets(host).lower().rstrip(".")
    try:
        addr: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        addr = None
    for raw in entries:
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        if "/" in entry:  # CIDR
            try:
                net = ipaddress.ip_network(_strip_brackets(entry), strict=False)
            except ValueError:
                continue
            if addr is not None and addr.version == net.version and addr in net:
                return True
            continue
        want_port: int | None = None
        name = entry
        if name.startswith("["):  # [v6] or [v6]:port
            end = name.find("]")
            rest = name[end + 1:]
            name = name[1:end]
            if rest.startswith(":") and rest[1:].isdigit():
                want_port = int(rest[1:])
        elif name.count(":") == 1:
            name, _, p = name.partition(":")
            if not p.isdigit():
                continue
            want_port = int(p)
        if want_port is not None and want_port != port:
            continue
        try:
            entry_addr = ipaddress.ip_address(name)
        except ValueError:
            entry_addr = None
        if entry_addr is not None:
            if addr is not None and addr == entry_addr:
                return True
            continue
        if name.startswith("*."):  # "*.example.com": as ".example.com" (Go and curl users write it)
            name = name[1:]
        name = name.lstrip(".").rstrip(".")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


def split_no_proxy(value: str) -> tuple[str, ...]:
    return tuple(e for e in value.replace(",", " ").split() if e)


class ProxySettings(Frozen):
    """The proxies for ``http://`` and ``https://`` URLs and the exemptions."""

    __fields__ = ("http", "https", "no_proxy")
    http: Proxy | None = None
    https: Proxy | None = None
    no_proxy: tuple[str, ...] = ()

    def __init__(self, http: Proxy | None = None, https: Proxy | None = None, no_proxy: tuple[str, ...] = ()) -> None:
        init_field(self, "http", http)
        init_field(self, "https", https)
        init_field(self, "no_proxy", no_proxy)

    def for_url(self, scheme: str, host: str, port: int) -> Proxy | None:
        proxy = self.https if scheme == "https" else self.http
        if proxy is None or no_proxy_matches(self.no_proxy, host, port):
            return None
        return proxy

    @property
    def active(self) -> bool:
        return self.http is not None or self.https is not None


#: the environment variables read, lower case first (as requests, httpx and pip do)
ENV_NAMES = ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY",
             "no_proxy", "NO_PROXY")


def _env(environ: Mapping[str, str], name: str) -> tuple[str, str] | None:
    for n in (name.lower(), name.upper()):
        v = environ.get(n)
        if v is not None and v.strip():
            return v, n
    return None


def from_environment(environ: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """``{"https_proxy"|"http_proxy"|"proxy"|"no_proxy": (value, variable name)}`` of the
    proxy variables that are set (``ALL_PROXY`` is the ``proxy`` key: both schemes)."""
    out: dict[str, tuple[str, str]] = {}
    for key, var in (("https_proxy", "https_proxy"), ("http_proxy", "http_proxy"), ("proxy", "all_proxy"),
                     ("no_proxy", "no_proxy")):
        hit = _env(environ, var)
        if hit is not None:
            out[key] = hit
    return out
