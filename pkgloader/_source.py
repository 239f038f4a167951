"""From a package reference to a *source*: which registry, which backend, and where.

Registry metadata is discovered at ``/.well-known/wasm-pkg/registry.json`` (falling back to
the legacy ``/.well-known/warg/registry.json``), cached on disk with a TTL, and skipped when
the config carries inline metadata or the registry is a local directory. The discovery is a
sans-I/O flow (see ``_http``), driven by the sync or the async client.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ._frozen import Frozen, init_field
from ._json import MAX_ANSWER_CONTAINERS, load_json
from ._config import Config, RegistryChoice, RegistryConfig
from ._errors import ConfigError, RegistryError
from ._http import BodyTooLarge, Flow, HttpSettings, Request, Response, is_loopback_host, redact_url, split_host
from ._log import get_logger
from ._metadata import LEGACY_METADATA_PATH, METADATA_PATH, RegistryMetadata
from ._ref import PackageRef

__all__ = ["Source", "MetadataResult", "discovery_flow", "source_flow", "resolve_source", "http_settings", "metadata_scheme", "oci_scheme"]

log = get_logger()

METADATA_MAX_BYTES = 64 * 1024


class MetadataResult(Frozen):
    __fields__ = ("metadata", "how", "warning")
    metadata: RegistryMetadata | None
    how: str  # "inline config", "fetched <url>", "cached <url>", "none (404)", "not fetched (...)", "failed: ..."
    warning: str | None = None

    def __init__(self, metadata: RegistryMetadata | None, how: str, warning: str | None = None) -> None:
        init_field(self, "metadata", metadata)
        init_field(self, "how", how)
        init_field(self, "warning", warning)


class Source(Frozen):
    """Where a package's releases come from."""

    __fields__ = (
        "package", "choice", "backend", "backend_rule", "metadata", "registry_config", "oci_registry",
        "oci_repository", "oci_scheme", "local_root", "warg_url"
    )
    package: PackageRef
    choice: RegistryChoice
    backend: str  # "oci" | "local" | "warg"
    backend_rule: str
    metadata: MetadataResult
    registry_config: RegistryConfig
    oci_registry: str | None = None  # host[:port] of the OCI registry
    oci_repository: str | None = None  # <namespacePrefix><namespace>/<name>
    oci_scheme: str | None = None
    local_root: Path | None = None
    warg_url: str | None = None

    def __init__(self, package: PackageRef, choice: RegistryChoice, backend: str, backend_rule: str,
                 metadata: MetadataResult, registry_config: RegistryConfig, oci_registry: str | None = None,
                 oci_repository: str | None = None, oci_scheme: str | None = None, local_root: Path | None = None,
                 warg_url: str | None = None) -> None:
        init_field(self, "package", package)
        init_field(self, "choice", choice)
        init_field(self, "backend", backend)
        init_field(self, "backend_rule", backend_rule)
        init_field(self, "metadata", metadata)
        init_field(self, "registry_config", registry_config)
        init_field(self, "oci_registry", oci_registry)
        init_field(self, "oci_repository", oci_repository)
        init_field(self, "oci_scheme", oci_scheme)
        init_field(self, "local_root", local_root)
        init_field(self, "warg_url", warg_url)

    @property
    def registry(self) -> str:
        return self.choice.registry

    @property
    def location(self) -> str:
        if self.backend == "oci":
            return f"{self.oci_registry}/{self.oci_repository}"
        if self.backend == "local":
            return str(self.local_root / self.package.namespace / self.package.name) if self.local_root else "?"
        if self.backend == "oci-layout":
            return f"{self.local_root}:{self.package.namespace}/{self.package.name}"
        return self.warg_url or "?"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "package": str(self.package),
            "registry": self.registry,
            "registry_rule": self.choice.rule,
            "registry_origin": self.choice.origin.to_json(),
            "backend": self.backend,
            "backend_rule": self.backend_rule,
            "metadata": self.metadata.metadata.to_json() if self.metadata.metadata else None,
            "metadata_source": self.metadata.how,
        }
        if self.backend == "oci":
            out.update(oci_registry=self.oci_registry, oci_repository=self.oci_repository, oci_scheme=self.oci_scheme,
                       reference=f"{self.oci_registry}/{self.oci_repository}")
        elif self.backend in ("local", "oci-layout"):
            out.update(local_root=str(self.local_root), local_path=self.location)
        else:
            out.update(warg_url=self.warg_url)
        return out


def metadata_scheme(registry: str, rc: RegistryConfig) -> str:
    """``http`` only for loopback hosts or a registry configured with ``protocol = "http"``."""
    proto = rc.oci().protocol if "oci" in rc.backends else None
    if proto:
        return proto
    return "http" if is_loopback_host(split_host(registry)) else "https"


def oci_scheme(host: str, rc: RegistryConfig) -> str:
    proto = rc.oci().protocol if "oci" in rc.backends else None
    if proto:
        return proto
    return "http" if is_loopback_host(split_host(host)) else "https"


def _cache_file(cache_dir: Path, registry: str, kind: str = "metadata") -> Path:
    """The cache file of a registry's ``kind`` of facts (``metadata``, ``auth``)."""
    safe = registry.replace(":", "_").replace("/", "_").replace("[", "").replace("]", "")
    return cache_dir / kind / f"{safe}.json"


def read_cached_metadata(cache_dir: Path, registry: str, ttl: int) -> MetadataResult | None:
    path = _cache_file(cache_dir, registry)
    try:
        data = load_json(path.read_bytes())
        if not isinstance(data, dict) or data.get("registry") != registry \
                or not time.time() - float(data["fetched_at"]) <= ttl:  # (a NaN time is stale too)
            return None
        meta = RegistryMetadata.from_json(data["metadata"]) if data.get("metadata") is not None else None
        if meta is not None and metadata_problem(meta) is not None:
            return None
        return MetadataResult(meta, f"cached {data.get('url', '')}".strip())
    except (OSError, ValueError, KeyError, TypeError):  # a damaged cache file is a miss
        return None


def write_cached_metadata(cache_dir: Path, registry: str, url: str, meta: RegistryMetadata | None) -> None:
    from ._fsutil import atomic_write_bytes

    path = _cache_file(cache_dir, registry)
    data = {"registry": registry, "url": url, "fetched_at": time.time(), "metadata": meta.to_json() if meta else None}
    try:
        atomic_write_bytes(path, json.dumps(data, sort_keys=True).encode(), durable=False)  # a cache
    except OSError as exc:  # a cache we cannot write is not fatal
        log.debug("cannot write metadata cache %s: %s", path, exc)


_PREFIX_RE = re.compile(r"[A-Za-z0-9._/-]*")


def _authority_problem(text: str) -> str | None:
    """Why ``text`` is not a ``host[:port]`` (None: it is one)."""
    if not text or any(c in text for c in "/?#@\\") or not text.isprintable() or " " in text:
        return "not a host[:port]"
    try:
        parts = urlsplit(f"//{text}")
        parts.port  # noqa: B018 - raises ValueError when out of range or not a number
    except ValueError as exc:
        return str(exc)
    return None if parts.hostname else "not a host[:port]"


def metadata_problem(meta: RegistryMetadata) -> str | None:
    """What makes registry metadata unusable (None: nothing): an OCI registry that is not a
    ``host[:port]``, a namespace prefix that is not a repository path, a warg URL that is
    not ``http(s)://host``. Checked where metadata comes from a registry (and its cache)."""
    host = meta.oci_registry
    if host is not None:
        problem = _authority_problem(host)
        if problem:
            return f"oci.registry {host[:100]!r} is {problem}"
    prefix = meta.oci_namespace_prefix
    if not _PREFIX_RE.fullmatch(prefix) or any(seg in (".", "..") for seg in prefix.split("/")):
        return f"oci.namespacePrefix {prefix[:100]!r} is not a repository path"
    url = meta.warg_url
    if url is not None:
        try:
            parts = urlsplit(url)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname) and url.isprintable() and " " not in url
            parts.port  # noqa: B018
        except ValueError:
            ok = False
        if not ok:
            return f"warg.url {url[:100]!r} is not an http(s) URL"
    return None


def discovery_flow(registry: str, scheme: str, timeout: float) -> Flow[MetadataResult]:
    """GET the well-known metadata (current path, then legacy). 404 on both = no metadata."""
    last_url = ""
    for path in (METADATA_PATH, LEGACY_METADATA_PATH):
        url = f"{scheme}://{registry}{path}"
        last_url = url
        try:
            resp: Response = yield Request("GET", url, headers={"Accept": "application/json"},
                                           max_body=METADATA_MAX_BYTES, timeout=timeout, retry=False)
        except BodyTooLarge:
            raise RegistryError(f"registry metadata at {redact_url(url)} is larger than "
                                f"{METADATA_MAX_BYTES >> 10} KiB; refusing to read it", code="answer-too-large") from None
        if resp.status in (404, 410):
            continue
        if resp.status != 200:
            raise RegistryError(f"registry metadata at {redact_url(url)} answered HTTP {resp.status}")
        try:
            meta = RegistryMetadata.from_json(load_json(resp.content, max_containers=MAX_ANSWER_CONTAINERS))
            problem = metadata_problem(meta)
            if problem:
                raise ValueError(problem)
        except ValueError as exc:
            raise RegistryError(f"registry metadata at {redact_url(url)} is invalid: {exc}") from None
        return MetadataResult(meta, f"fetched {url}")
    return MetadataResult(None, f"none (404 at {last_url.rsplit('/.well-known', 1)[0]}/.well-known/...)")


#: how long a failed registry-metadata discovery is remembered (per Config, in memory): the
#: operations of one command ask once, and warn once
FAILURE_MEMORY = 60.0


def _failures(config: Config) -> dict[str, tuple[float, MetadataResult]]:
    return vars(config).setdefault("_metadata_failures", {})


def _recent_failure(config: Config, registry: str) -> MetadataResult | None:
    seen = _failures(config).get(registry)
    if seen is None or time.monotonic() - seen[0] > FAILURE_MEMORY:
        return None
    return seen[1]


def _chosen_by(choice: Any) -> str:
    """How a registry was chosen, in words: 'the built-in default for namespace wasi', or the
    config rule and where it was set."""
    if choice.rule.startswith("built-in namespace "):
        return f"the built-in default for namespace {choice.rule.removeprefix('built-in namespace ')}"
    return f"{choice.rule} ({choice.origin})"


def source_flow(config: Config, package: PackageRef, *, offline: bool = False) -> Flow[Source]:
    """Resolve a package to its Source, discovering registry metadata only when needed."""
    choice = config.choose_registry(package)
    registry = choice.registry
    rc = config.registry_config(registry)
    rc.check_usable()  # a bad [registry."NAME"] entry fails its registry only (see _config)
    explicit = rc.default_backend()

    if choice.metadata is not None:
        problem = metadata_problem(choice.metadata)
        if problem:
            raise ConfigError(f"the inline metadata of registry {registry!r} is unusable: {problem}",
                              details=[f"set in {choice.origin}"],
                              hint="oci.registry is a host[:port], warg.url an http(s) URL")
        meta = MetadataResult(choice.metadata, "inline config")
    elif explicit in ("local", "oci-layout"):
        meta = MetadataResult(None, f"not fetched ({explicit} backend)")
    elif explicit == "warg" and rc.warg().url:
        meta = MetadataResult(None, "not fetched (warg url configured)")
    else:
        ttl = config.settings.metadata_ttl.value
        cached = read_cached_metadata(config.cache_dir, registry, ttl)
        if cached is not None:
            meta = cached
        elif offline:
            meta = MetadataResult(None, "not fetched (offline)")
        elif (failed := _recent_failure(config, registry)) is not None:
            meta = failed  # asked and failed moments ago: not again, and not a second warning
        else:
            scheme = metadata_scheme(registry, rc)
            try:
                meta = yield from discovery_flow(registry, scheme, config.settings.metadata_timeout.value)
                write_cached_metadata(config.cache_dir, registry, meta.how.removeprefix("fetched ").split(" ")[0], meta.metadata)
            except Exception as exc:  # noqa: BLE001 - mapped to a visible warning
                from ._errors import PkgLoaderError

                if not isinstance(exc, PkgLoaderError):
                    raise
                warning = (
                    f"could not read registry metadata for {registry} ({exc.message}); "
                    f"assuming {registry} is itself an OCI registry (registry chosen by {_chosen_by(choice)})"
                )
                log.warning("%s", warning)
                meta = MetadataResult(None, f"failed: {exc.message}", warning)
                _failures(config)[registry] = (time.monotonic(), meta)

    if explicit is not None:
        backend = explicit
        backend_rule = (f'registry."{registry}".default ({rc.default.origin})' if rc.default is not None
                        else f'only backend configured for registry "{registry}"')
    elif meta.metadata is not None and meta.metadata.protocol:
        backend = meta.metadata.protocol
        backend_rule = "registry metadata"
        if backend in ("local", "oci-layout"):
            raise RegistryError(f"registry metadata for {registry} asks for the {backend!r} protocol, which only config may choose")
    else:
        backend = "oci"
        backend_rule = "default (oci)"
    if backend not in ("oci", "local", "warg", "oci-layout"):
        raise RegistryError(
            f"registry {registry} prefers protocol {backend!r}, which pkgloader does not speak",
            hint=f'set default = "oci" under [registry."{registry}"] if it also serves OCI',
        )

    if backend == "oci":
        md = meta.metadata
        host = (md.oci_registry if md else None) or registry
        prefix = md.oci_namespace_prefix if md else ""
        repo = f"{prefix}{package.namespace}/{package.name}"
        return Source(package, choice, "oci", backend_rule, meta, rc, oci_registry=host, oci_repository=repo,
                      oci_scheme=oci_scheme(host, rc))
    if backend == "oci-layout":  # a read-only OCI image layout directory (_ocilayout)
        root = rc.backends.get("oci-layout", {}).get("root")
        if root is None:
            raise ConfigError(f'registry "{registry}" uses the oci-layout backend but has no root directory',
                              hint=f'add root = "/path/to/layout" under [registry."{registry}".oci-layout]')
        return Source(package, choice, "oci-layout", backend_rule, meta, rc, local_root=Path(root.value))
    if backend == "local":
        local = rc.local()
        if local is None:
            raise ConfigError(
                f'registry "{registry}" uses the local backend but has no root directory',
                hint=f'add root = "/path/to/dir" under [registry."{registry}".local]',
            )
        return Source(package, choice, "local", backend_rule, meta, rc, local_root=local.root)
    url = rc.warg().url or (meta.metadata.warg_url if meta.metadata else None)
    if not url:
        url = f"{'http' if is_loopback_host(split_host(registry)) else 'https'}://{registry}"
    return Source(package, choice, "warg", backend_rule, meta, rc, warg_url=url.rstrip("/"))



def http_settings(config: Config, registry: str) -> HttpSettings:
    """Timeouts, retries and TLS for talking to ``registry`` (its ``oci`` table's certificates
    apply to metadata discovery too)."""
    rc = config.registry_config(registry)
    oci = rc.oci() if "oci" in rc.backends else None
    st = config.settings
    client_cert = oci.client_certificate if oci else None
    client_key = oci.client_key if oci else None
    if client_cert is None:
        import os

        client_cert = os.environ.get("SSL_CLIENT_CERT") or None  # as uv reads it: certificate and key in one PEM
    return HttpSettings(
        timeout=st.timeout.value,
        connect_timeout=st.connect_timeout.value,
        retries=st.retries.value,
        extra_root_certificates=oci.extra_root_certificates if oci else (),
        accept_invalid_certificates=oci.accept_invalid_certificates if oci else False,
        max_connections=max(st.max_concurrency.value, 4),
        stall_timeout=st.stall_timeout.value,
        low_speed_limit=st.low_speed_limit.value,
        low_speed_time=st.low_speed_time.value,
        trust_store=st.trust_store.value,
        client_certificate=client_cert,
        client_key=client_key,
        proxies=proxy_settings(config),
    )


def proxy_settings(config: Config) -> Any:
    """The proxies the config and environment name (``None`` when there are none)."""
    st = config.settings
    if st.proxy is None and st.https_proxy is None and st.http_proxy is None:
        return None
    from ._proxy import ProxySettings, parse_proxy_url, split_no_proxy

    def pick(specific: Any) -> Any:
        chosen = specific if specific is not None else st.proxy
        if chosen is None:
            return None
        return parse_proxy_url(chosen.value, str(chosen.origin))

    return ProxySettings(http=pick(st.http_proxy), https=pick(st.https_proxy),
                         no_proxy=split_no_proxy(st.no_proxy.value) if st.no_proxy is not None else ())


def resolve_source(config: Config, package: PackageRef, *, offline: bool = False) -> Source:
    """Synchronous convenience: resolve one package's source, opening a connection only
    when metadata must be discovered."""
    from ._http import run_sync
    from ._stdhttp import StdTransport

    opened: list[StdTransport] = []

    def transport() -> StdTransport:
        opened.append(StdTransport(http_settings(config, config.choose_registry(package).registry)))
        return opened[0]

    try:
        return run_sync(source_flow(config, package, offline=offline), transport)
    finally:
        for t in opened:
            t.close()
