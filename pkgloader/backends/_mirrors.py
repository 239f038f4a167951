"""Registry mirrors for the OCI backend (``mirrors`` under ``[registry."NAME".oci]``).

The habits are containers' ``registries.conf`` (``pull-from-mirror = "digest-only"``, the
origin last) and containerd's ``hosts.toml`` (``capabilities = ["pull", "resolve"]``):

- content and manifests *by digest* come from the first mirror whose bytes verify; a
  digest needs no trust in the mirror;
- tag lists and tag -> manifest resolution come from the origin, unless the mirror has
  ``resolve = true``, or the lock file pins the content digest of that version (then a
  mirror's answer is checked against the lock, which is the trust anchor);
- under ``--locked`` a locked package's version list is the lock's own (no tag list at
  all), so a locked build can be served by mirrors alone;
- a mirror that fails (connection, 5xx, 404 for content, a digest mismatch, a lock mismatch)
  is skipped for the rest of the engine's life (a CLI command; a ``Client``) with one
  warning; a *tag* it does not know (404 for a manifest by tag: a pull-through cache that
  has not seen it while its upstream is down) only sends that one request on;
- when every mirror has failed the origin is asked, unless ``mirror_fallback = false``;
- credentials: a mirror gets its own (its table's ``auth``, else what the environment,
  docker's config.json, ... hold for the mirror's host), never the origin's.

Requests to a mirror are not retried (a failing mirror is skipped instead).
"""

from __future__ import annotations

import base64
import hashlib
import threading
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable

from .._errors import AuthError, IntegrityError, NetworkError, NotFoundError, PkgLoaderError, RegistryError
from .._http import Request, TlsSettings, is_loopback_host, split_host
from .._log import get_logger

if TYPE_CHECKING:  # pragma: no cover
    from .._config import Config, Origin
    from .._credentials import Credentials
    from .._digest import Digest
    from .._engine import Engine
    from .._http import Flow
    from .._ref import PackageRef
    from .._release import Release, VersionInfo
    from .._semver import Version
    from .._source import Source

__all__ = ["Mirror", "MirrorPlan", "mirror_plan", "served_by"]

log = get_logger()


@dataclass(frozen=True)
class Mirror:
    """One configured mirror of a registry."""

    host: str  # host[:port]
    prefix: str  # repository path prefix, '' or ending in '/'
    scheme: str
    resolve: bool
    auth: Any  # the config's auth value (table or base64), or None
    origin: str  # where it was configured
    #: the TLS settings the mirror is reached with; None: the transport's (the registry's)
    tls: TlsSettings | None = None

    @property
    def label(self) -> str:
        return f"{self.host}/{self.prefix}".rstrip("/")


@dataclass(frozen=True)
class MirrorPlan:
    """The mirrors of one registry and whether the origin may be asked when all fail."""

    registry: str
    mirrors: tuple[Mirror, ...]
    fallback: bool
    configured_in: str  # the registry entry that holds them ("ghcr.io", "*")


@dataclass
class _State:
    """Per engine: failed mirrors, mirror credentials, contexts, who served what."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    failed: dict[str, str] = field(default_factory=dict)  # mirror label -> why
    contexts: dict[str, Any] = field(default_factory=dict)  # mirror label -> OciContext
    served: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)  # (package, version) -> what -> endpoint


def _state(engine: Engine) -> _State:
    st = engine.__dict__.get("_mirror_state")
    if st is None:
        st = engine.__dict__.setdefault("_mirror_state", _State())
    return st


def mirror_plan(config: Config, source: Source) -> MirrorPlan | None:
    """The mirrors that apply to ``source`` (None when there are none): the registry's own
    ``mirrors``, else those of its OCI host's entry, else those of ``"*"``."""
    names = [source.registry]
    if source.oci_registry and source.oci_registry != source.registry:
        names.append(source.oci_registry)
    names.append("*")
    for name in names:
        rc = config.registries.get(name)
        if rc is not None and rc.problems:
            rc.check_usable()  # broken mirrors are an error, never a silent trip to the origin
        table = rc.backends.get("oci", {}) if rc is not None else {}
        setting = table.get("mirrors")
        if setting is None:
            continue
        if not setting.value:
            return None  # mirrors = [] turns the "*" mirrors off for this registry
        fb = table.get("mirror_fallback")
        if fb is None and name != "*":
            star = config.registries.get("*")
            fb = star.backends.get("oci", {}).get("mirror_fallback") if star is not None else None
        mirrors = []
        for m in setting.value:
            from .._mirrorconfig import split_location

            host, prefix = split_location(m["location"])
            scheme = m.get("protocol") or ("http" if is_loopback_host(split_host(host)) else "https")
            mirrors.append(Mirror(host, prefix, scheme, bool(m.get("resolve", False)), m.get("auth"), str(setting.origin),
                                  _mirror_tls(config, source, m, host)))
        return MirrorPlan(source.registry, tuple(mirrors), True if fb is None else bool(fb.value), name)
    return None


def _mirror_tls(config: Config, source: Source, m: dict[str, Any], host: str) -> TlsSettings | None:
    """How a mirror is reached over TLS: its table's TLS keys when it has any (those alone);
    else the TLS keys of the config's entry for the mirror's host; else the trust settings of
    the registry it mirrors (None: the transport's), without that registry's client
    certificate (a credential of the origin; ``SSL_CLIENT_CERT`` still applies)."""
    import os

    from .._mirrorconfig import TLS_KEYS

    env_cert = os.environ.get("SSL_CLIENT_CERT") or None
    if any(k in m for k in TLS_KEYS):
        certs = tuple(base64.b64decode(c["data"]) if c.get("encoding", "pem") == "der" else c["data"].encode()
                      for c in m.get("extra_root_certificates", ()))
        cert = m.get("client_certificate") or env_cert
        return TlsSettings(certs, bool(m.get("accept_invalid_certificates", False)), cert,
                           m.get("client_key") if m.get("client_certificate") else None)
    own = config.registries.get(host)
    if own is not None and not own.problems and any(k in own.backends.get("oci", {}) for k in TLS_KEYS):
        oci = own.oci()
        return TlsSettings(oci.extra_root_certificates, oci.accept_invalid_certificates,
                           oci.client_certificate or env_cert, oci.client_key if oci.client_certificate else None)
    rc = config.registries.get(source.registry)
    table = rc.backends.get("oci", {}) if rc is not None else {}
    if "client_certificate" in table:
        oci = rc.oci()  # type: ignore[union-attr]
        return TlsSettings(oci.extra_root_certificates, oci.accept_invalid_certificates, env_cert, None)
    return None


def served_by(engine: Engine, package: Any, version: Any) -> dict[str, str]:
    """Which endpoint served the manifest and the content of a release in this engine
    (``{"manifest": "mirror HOST/PREFIX", "content": "origin HOST"}``); empty when unknown."""
    st = engine.__dict__.get("_mirror_state")
    if st is None:
        return {}
    return dict(st.served.get((str(package), str(version)), {}))


def _record(engine: Engine, package: Any, version: Any, what: str, endpoint: str) -> None:
    st = _state(engine)
    with st.lock:
        st.served.setdefault((str(package), str(version)), {})[what] = endpoint
    log.info("%s@%s: %s from %s", package, version, what, endpoint)


def _mirror_source(source: Source, mirror: Mirror) -> Source:
    return replace(source, oci_registry=mirror.host, oci_repository=f"{mirror.prefix}{source.oci_repository}",
                   oci_scheme=mirror.scheme)


def _context(engine: Engine, mirror: Mirror) -> Any:
    """An OciContext for the mirror: the engine's token session, the mirror's credentials."""
    st = _state(engine)
    with st.lock:
        ctx = st.contexts.get(mirror.label)
        if ctx is not None:
            return ctx
    from .oci import OciContext

    creds = _credentials(engine, mirror)
    ctx = OciContext(engine.auth, lambda _source: creds, strict=engine.strict)
    with st.lock:
        return st.contexts.setdefault(mirror.label, ctx)


def _credentials(engine: Engine, mirror: Mirror) -> Credentials | None:
    """The mirror's own credentials: its table's ``auth``, else those the environment, the
    config's entry for the mirror's host, docker's config.json ... hold for its host."""
    from .._credentials import Credentials, find_credentials

    if mirror.auth is not None:
        from .._config import _decode_auth

        auth = _decode_auth(mirror.auth)
        return Credentials("basic", auth.username, auth.password, f"the mirror's auth ({mirror.origin})")
    return find_credentials(engine.config, mirror.host, mirror.host)


def _usable(engine: Engine, plan: MirrorPlan) -> list[Mirror]:
    st = _state(engine)
    with st.lock:
        return [m for m in plan.mirrors if m.label not in st.failed]


def _fail(engine: Engine, mirror: Mirror, why: str) -> None:
    st = _state(engine)
    with st.lock:
        if mirror.label in st.failed:
            return
        st.failed[mirror.label] = why
    log.warning("mirror %s failed (%s); skipping it from now on", mirror.label, why)


def _no_retry(flow: Flow[Any], tls: TlsSettings | None = None) -> Flow[Any]:
    """Run ``flow`` with every request marked not to be retried (a failing mirror is skipped)
    and sent with the mirror's TLS settings (``tls``, when it has its own)."""
    try:
        req = next(flow)
        while True:
            if isinstance(req, Request) and (req.retry or tls is not None):
                req = replace(req, retry=False, tls=tls if tls is not None else req.tls)
            try:
                resp = yield req
            except BaseException as exc:  # noqa: BLE001 - handed to the inner flow
                req = flow.throw(exc)
                continue
            req = flow.send(resp)
    except StopIteration as stop:
        return stop.value


def _why(exc: PkgLoaderError) -> str:
    return f"{exc.code}: {exc.message}"


def _all_failed(plan: MirrorPlan, what: str, engine: Engine) -> RegistryError:
    st = _state(engine)
    details = [f"{m.label}: {st.failed.get(m.label, 'not tried')}" for m in plan.mirrors]
    return RegistryError(
        f"every mirror of {plan.registry} failed for {what}, and mirror_fallback is false",
        code="mirrors-failed",
        details=details + [f"mirrors configured for {plan.configured_in!r} ({plan.mirrors[0].origin})"],
        hint="check the mirrors, or set mirror_fallback = true to let pkgloader go to the origin",
    )


_MIRROR_ERRORS = (NetworkError, NotFoundError, IntegrityError, AuthError)


# --- the three backend flows ---------------------------------------------------------------


def versions_flow(engine: Engine, source: Source, plan: MirrorPlan) -> Flow[list[VersionInfo]]:
    from . import oci

    pinned = _lock_versions(engine, source.package)
    if pinned is not None:
        log.debug("versions of %s: the lock's (--locked with mirrors: no tag list)", source.package)
        from .._release import VersionInfo

        return [VersionInfo(v) for v in sorted(pinned, key=lambda v: v.sort_key)]
    for mirror in _usable(engine, plan):
        if not mirror.resolve:
            continue
        try:
            infos = yield from _no_retry(oci.list_versions_flow(_context(engine, mirror), _mirror_source(source, mirror)), mirror.tls)
        except _MIRROR_ERRORS as exc:
            _fail(engine, mirror, _why(exc))
            continue
        log.info("%s: version list from mirror %s", source.package, mirror.label)
        return infos
    if any(m.resolve for m in plan.mirrors) and not plan.fallback:
        raise _all_failed(plan, f"the version list of {source.package}", engine)
    return (yield from oci.list_versions_flow(engine.oci, source))


def release_flow(engine: Engine, source: Source, version: Version, plan: MirrorPlan) -> Flow[Release]:
    from . import oci

    locked = _locked_digest(engine, source.package, version)
    tried = False
    for mirror in _usable(engine, plan):
        if not (mirror.resolve or locked is not None):
            continue
        tried = True
        try:
            rel = yield from _no_retry(oci.release_flow(_context(engine, mirror), _mirror_source(source, mirror), version), mirror.tls)
        except NotFoundError as exc:
            # a tag the mirror does not know (a pull-through cache that has not seen it, its
            # upstream unreachable) is no fault of the mirror: the next one, or the origin
            log.debug("mirror %s does not know %s@%s (%s)", mirror.label, source.package, version, exc.message)
            continue
        except _MIRROR_ERRORS as exc:
            _fail(engine, mirror, _why(exc))
            continue
        if locked is not None and rel.digest != locked:
            _fail(engine, mirror, f"serves {rel.digest} for {source.package}@{version}, the lock file says {locked}")
            continue
        _record(engine, source.package, version, "manifest", f"mirror {mirror.label}")
        return replace(rel, location=f"{source.oci_registry}/{source.oci_repository}:{version.to_tag()}")
    if tried and not plan.fallback:
        raise _all_failed(plan, f"the manifest of {source.package}@{version}", engine)
    rel = yield from oci.release_flow(engine.oci, source, version)
    _record(engine, source.package, version, "manifest", f"origin {source.oci_registry}")
    return rel


class _Hashing:
    """A sink that hashes and counts what it passes on (the mirror's bytes are checked
    before the next mirror or the origin is asked)."""

    def __init__(self, sink: Callable[[bytes], None]) -> None:
        self.sink = sink
        self.h = hashlib.sha256()
        self.n = 0

    def __call__(self, chunk: bytes) -> None:
        self.h.update(chunk)
        self.n += len(chunk)
        self.sink(chunk)

    def local_error(self, exc: OSError) -> Exception:
        return self.sink.local_error(exc)  # type: ignore[attr-defined]

    def reset(self) -> None:
        self.h = hashlib.sha256()
        self.n = 0


def content_flow(engine: Engine, source: Source, release: Release, sink: Callable[[bytes], None],
                 reset: Callable[[], None], plan: MirrorPlan) -> Flow[None]:
    from . import oci

    what = f"{release.package}@{release.version}"
    tried = False
    for mirror in _usable(engine, plan):
        tried = True
        hashing = _Hashing(sink)

        def again(hashing: _Hashing = hashing) -> None:
            hashing.reset()
            reset()

        try:
            yield from _no_retry(oci.blob_flow(_context(engine, mirror), _mirror_source(source, mirror), release,
                                               hashing, again), mirror.tls)
        except _MIRROR_ERRORS as exc:
            again()
            _fail(engine, mirror, _why(exc))
            continue
        got = "sha256:" + hashing.h.hexdigest()
        if got != str(release.digest) or (release.size is not None and hashing.n != release.size):
            again()
            _fail(engine, mirror, f"served {hashing.n} bytes with digest {got} for {what}, expected {release.digest}")
            continue
        _record(engine, release.package, release.version, "content", f"mirror {mirror.label}")
        return
    if tried and not plan.fallback:
        raise _all_failed(plan, f"the content of {what}", engine)
    yield from oci.blob_flow(engine.oci, source, release, sink, reset)
    _record(engine, release.package, release.version, "content", f"origin {source.oci_registry}")


# --- what the lock file says ---------------------------------------------------------------


def _locked_digest(engine: Engine, package: PackageRef, version: Version) -> Digest | None:
    pins = getattr(engine, "lock_pins", None)
    if not pins:
        return None
    found: Digest | None = pins.get((package, version))
    return found


def _lock_versions(engine: Engine, package: PackageRef) -> list[Version] | None:
    if not getattr(engine, "lock_only", False):
        return None
    pins = getattr(engine, "lock_pins", None) or {}
    versions = [v for (p, v) in pins if p == package]
    return versions or None


# --- any object by digest (export) ---------------------------------------------------------


def _get_by_digest(ctx: Any, source: Source, kind: str, digest: str, max_body: int) -> Flow[bytes]:
    from .._digest import sha256_digest
    from .._errors import DigestMismatch
    from . import oci

    headers = {"Accept": oci.ACCEPT} if kind == "manifests" else {"Accept-Encoding": "identity"}
    url = f"{oci._base(source)}/{kind}/{digest}"
    resp = yield from oci._send(ctx, source, Request("GET", url, headers, max_body=max_body))
    if resp.status in (401, 403, 404):
        raise oci._not_found(source, f"{kind[:-1]} {digest} of", resp)
    if resp.status != 200:
        raise oci._unexpected(source, f"the request for {kind[:-1]} {digest}", resp)
    got = sha256_digest(resp.content)
    if got != digest:
        raise DigestMismatch(f"{kind[:-1]} {digest} of {source.package} from {source.oci_registry} does not match its digest",
                             details=[f"expected {digest}", f"got      {got}  ({len(resp.content)} bytes)"],
                             hint="retry; if it persists the registry is serving corrupted content")
    return resp.content


def by_digest_flow(engine: Engine, source: Source, kind: str, digest: str, max_body: int) -> Flow[bytes]:
    """A manifest or blob (``kind``: ``manifests`` | ``blobs``) by digest, read into memory
    and verified: from the first mirror that serves it, else the origin."""
    from . import oci

    plan = mirror_plan(engine.config, source) if source.backend == "oci" else None
    tried = False
    for mirror in _usable(engine, plan) if plan is not None else []:
        tried = True
        try:
            return (yield from _no_retry(_get_by_digest(_context(engine, mirror), _mirror_source(source, mirror), kind,
                                                        digest, max_body), mirror.tls))
        except _MIRROR_ERRORS as exc:
            _fail(engine, mirror, _why(exc))
    if plan is not None and tried and not plan.fallback:
        raise _all_failed(plan, f"{kind[:-1]} {digest} of {source.package}", engine)
    return (yield from _get_by_digest(engine.oci, source, kind, digest, max_body))
