"""The ``mirrors`` and ``mirror_fallback`` keys of ``[registry."NAME".oci]`` (and of the
``"*"`` entry, which applies to every registry without mirrors of its own), and the
``PKGLOADER_MIRRORS`` environment override. Pure parsing and validation: no I/O.

    [registry."ghcr.io".oci]
    mirrors = ["mirror.internal:5000/ghcr", { location = "zot.internal", resolve = true }]
    mirror_fallback = true      # go to the origin when every mirror fails (default)

A mirror is stored normalised as a dict: ``location`` (``host[:port][/path-prefix]``) and
optionally ``protocol``, ``auth``, ``resolve`` and the TLS keys of ``[registry."NAME".oci]``
(``accept_invalid_certificates``, ``extra_root_certificates``, ``client_certificate``,
``client_key``, validated as there). A mirror with TLS keys of its own is reached with those
alone; see ``backends._mirrors.mirror_plan`` for one without.
"""

from __future__ import annotations

import re
from typing import Any, Callable

__all__ = ["MIRROR_KEYS", "check_mirrors", "check_fallback", "parse_env_mirrors", "split_location", "mask_mirrors"]

#: the TLS keys a mirror table may hold (as [registry."NAME".oci] has them)
TLS_KEYS = ("accept_invalid_certificates", "extra_root_certificates", "client_certificate", "client_key")
MIRROR_KEYS = ("location", "protocol", "auth", "resolve") + TLS_KEYS
_HOST_RE = re.compile(
    r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*)(?::[0-9]{1,5})?$"
)
_PREFIX_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")

#: fail(key path below the mirrors key, message, hint) -> the exception to raise
Fail = Callable[[list[str], str, "str | None"], Exception]


def split_location(location: str) -> tuple[str, str]:
    """``host[:port][/prefix]`` -> (host[:port], prefix with a trailing ``/`` or '')."""
    host, _, prefix = location.partition("/")
    prefix = prefix.strip("/")
    return host, (prefix + "/" if prefix else "")


def location_problem(location: str) -> tuple[str, str] | None:
    """(problem, hint) when ``location`` is not ``host[:port][/path-prefix]``."""
    if "://" in location:
        bare = location.split("://", 1)[1].rstrip("/")
        scheme = location.split("://", 1)[0]
        return ("a mirror location has no scheme",
                f'write {bare!r} (and protocol = "{scheme}" in a mirror table when it is not the default)')
    host, prefix = split_location(location)
    if not _HOST_RE.match(host):
        return "a mirror location starts with a host[:port]", "e.g. mirror.internal:5000 or harbor.example.com/ghcr-proxy"
    if ":" in host and not host.startswith("["):
        port = int(host.rsplit(":", 1)[1])
        if not 0 < port < 65536:
            return f"port {port} is out of range", "use a port from 1 to 65535"
    if prefix and not _PREFIX_RE.match(prefix.rstrip("/")):
        return "the path prefix is not a repository path", "a prefix is lowercase path segments such as ghcr-proxy/webassembly"
    return None


def check_mirrors(value: Any, fail: Fail, tls_value: Callable[[list[str], Any], Any] | None = None) -> list[dict[str, Any]]:
    """Validate a ``mirrors`` value; return the normalised list. ``tls_value(key path below the
    mirrors key, value)`` validates and normalises a TLS key's value as the ``oci`` table does
    (certificate tables, paths made absolute); without it TLS keys are refused."""
    if not isinstance(value, list):
        raise fail([], "mirrors must be an array", 'write mirrors = ["mirror.internal:5000"] or tables { location = "..." }')
    out: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        kp = [str(i)]
        if isinstance(item, str):
            item = {"location": item}
        elif not isinstance(item, dict):
            raise fail(kp, "a mirror is a string host[:port][/path-prefix] or a table", 'e.g. { location = "mirror:5000" }')
        for key in item:
            if key in TLS_KEYS and tls_value is None:
                raise fail(kp + [key], f"{key} is not supported here", "write the mirror's TLS keys in a config file")
            if key not in MIRROR_KEYS:
                import difflib

                close = difflib.get_close_matches(key, MIRROR_KEYS, n=1, cutoff=0.6)
                raise fail(kp + [key], f"unknown mirror key {key!r}",
                           f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(MIRROR_KEYS)}")
        loc = item.get("location")
        if not isinstance(loc, str):
            raise fail(kp, "a mirror table needs a string location", 'write location = "host[:port][/path-prefix]"')
        problem = location_problem(loc)
        if problem:
            raise fail(kp + ["location"], f"invalid mirror location {loc[:200]!r}: {problem[0]}", problem[1])
        norm: dict[str, Any] = {"location": loc.rstrip("/")}
        if "protocol" in item:
            if item["protocol"] not in ("http", "https"):
                raise fail(kp + ["protocol"], 'protocol must be "http" or "https"', None)
            norm["protocol"] = item["protocol"]
        for key in TLS_KEYS:
            if key in item and tls_value is not None:
                norm[key] = tls_value(kp + [key], item[key])
        if "client_key" in norm and "client_certificate" not in norm:
            raise fail(kp + ["client_key"], "client_key without client_certificate",
                       "add client_certificate = the mirror's client certificate (PEM)")
        for key in ("resolve",):
            if key in item:
                if not isinstance(item[key], bool):
                    raise fail(kp + [key], f"{key} must be true or false", None)
                norm[key] = item[key]
        if "auth" in item:
            auth = item["auth"]
            if isinstance(auth, dict):
                if set(auth) != {"username", "password"} or not all(isinstance(v, str) for v in auth.values()):
                    raise fail(kp + ["auth"], "a mirror's auth table needs exactly a string username and password",
                               'write auth = { username = "...", password = "..." }')
                norm["auth"] = dict(auth)
            elif isinstance(auth, str):
                import base64

                try:
                    raw = base64.b64decode(auth + "=" * (-len(auth) % 4), validate=True).decode()
                except Exception:
                    raw = ""
                if ":" not in raw:
                    raise fail(kp + ["auth"], 'a mirror\'s auth is not base64 of "user:pass"',
                               'write base64 of "user:pass", or a { username, password } table')
                norm["auth"] = auth
            else:
                raise fail(kp + ["auth"], "a mirror's auth must be a table { username, password } or a base64 string", None)
        out.append(norm)
    return out


def check_fallback(value: Any, fail: Fail) -> bool:
    if not isinstance(value, bool):
        raise fail([], "mirror_fallback must be true or false", "true (the default) goes to the origin when every mirror fails")
    return value


def parse_env_mirrors(text: str) -> dict[str, list[dict[str, Any]]]:
    """``PKGLOADER_MIRRORS``: groups separated by ``;``, each ``[REGISTRY=]LOCATION[,LOCATION...]``;
    a group without ``REGISTRY=`` is for every registry (``*``). Raises ``ValueError``."""
    out: dict[str, list[dict[str, Any]]] = {}
    for group in text.split(";"):
        group = group.strip()
        if not group:
            continue
        name, sep, rest = group.partition("=")
        if not sep:
            name, rest = "*", group
        name = name.strip()
        if name != "*" and not _HOST_RE.match(name):
            raise ValueError(f"{name[:100]!r} is not a registry name (host[:port]) or *")
        mirrors = []
        for loc in rest.split(","):
            loc = loc.strip()
            if not loc:
                continue
            problem = location_problem(loc)
            if problem:
                raise ValueError(f"invalid mirror location {loc[:200]!r}: {problem[0]}")
            mirrors.append({"location": loc.rstrip("/")})
        out[name] = mirrors
    return out


def mask_mirrors(value: Any) -> Any:
    """A mirrors list as ``config show`` prints it: credentials masked."""
    if not isinstance(value, list):
        return value
    out = []
    for m in value:
        if isinstance(m, dict) and "auth" in m:
            m = dict(m)
            auth = m["auth"]
            m["auth"] = ({"username": auth.get("username"), "password": "********"} if isinstance(auth, dict)
                         else "********")
        out.append(m)
    return out
