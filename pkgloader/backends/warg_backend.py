"""The warg backend: verified package logs -> versions, releases and content.

Everything here is a sans-I/O flow (see ``pkgloader._http``) around the pure verification
core in ``backends/warg`` (an :class:`~pkgloader.backends.warg.Update` per registry domain):

* ``GET v1/fetch/checkpoint``, ``POST v1/fetch/logs`` (paged, from the stored fetch tokens),
  ``POST v1/proof/inclusion`` and ``POST v1/proof/consistency`` (only when something changed)
  bring the :class:`~pkgloader.backends.warg.VerifiedState` of the registry up to date;
* versions and releases come from the verified package log only;
* content is found with ``GET v1/content/<digest>`` and streamed from the first ``httpGet``
  source that answers 2xx into the Engine's verifying writer (digest checked at the end; a
  mismatch is final, it never falls back to another source, spec §9.8).

**Persisted state.** One file per registry domain, ``<cache>/warg/<safe name>.json``, holding
``VerifiedState.to_json()`` (format ``pkgloader-warg-state/1``): the last verified checkpoint,
the operator log state and the state of every package fetched so far, each with its head's
registry index and fetch token. A later update fetches only the records after those heads and
proves the new checkpoint consistent with the stored one, so a registry can neither rewind nor
fork without being caught. Learned namespace hints (``Warg-Registry-Hint``) are kept next to it
in ``<cache>/warg/<safe name>.namespaces.json``.

**Concurrency.** The state of a domain is updated optimistically: load (remember the file's
content hash) -> fetch and verify -> under an exclusive lock file
(``<cache>/locks/warg-<safe name>.lock``, the ``Cache.lock`` pattern) compare the hash again
and write atomically only if nobody stored in between. If someone did, their newer state is
taken as the new base: at the same checkpoint the package states are merged locally (both were
proven against the same roots); otherwise the update is redone from their state, which costs
only the records after their heads. The lock is never held while a request is in flight: a
flow is suspended at every request, and holding an ``flock`` across that would let two flows
of one ``AsyncClient`` (one thread, two file descriptions) deadlock, and would let one slow
registry stall every other process. No update is lost, and the stored checkpoint only moves
forward.

**In memory.** Each ``Engine`` (one client) keeps the states it loaded or stored, keyed by
domain and tagged with the file's content hash: an operation re-reads the file only if another
process replaced it. A version listing or a release lookup asks for the checkpoint once per
domain it touches, so a long-lived client sees new releases and yanks; when the checkpoint is
unchanged and the package was proven at it, that single request is all (no logs, no proofs).
A release lookup that follows a version listing of the same package within
``LISTING_REUSE_SECONDS`` takes that listing's verified log (once) instead of asking again, so
an operation that lists and then resolves (or ``versions`` then ``fetch``) makes one checkpoint
request, not two. Content is downloaded by the verified digest without asking again.

**Federation (spec §8.4).** The registry domain of a namespace comes from the home registry's
verified operator log (``import_namespace`` -> that domain, ``define_namespace`` -> home), else
from a learned hint. A 404 ``log`` answer with ``Warg-Registry-Hint: <ns>=<domain>`` is
remembered and the package is retried with ``Warg-Registry: <domain>`` on every API call, with
its own verified state. Anything this client cannot follow (the home registry refusing
``Warg-Registry`` with 501, a federated registry pointing further by hint or by its own operator
log) is a :class:`~pkgloader.WargUnsupported` error, never a guess. A hint is ignored (with a
warning) when the home operator log defines the namespace itself or it names another namespace.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Iterator
from urllib.parse import urljoin, urlsplit

from .._json import MAX_ANSWER_CONTAINERS, load_json
from .._digest import Digest
from .._errors import (
    AuthError,
    SizeMismatch,
    NetworkError,
    NoMatchingVersion,
    PackageNotFound,
    PkgLoaderError,
    RegistryError,
    WargFork,
    WargInvalidRecord,
    WargProofError,
    WargRewind,
    WargRootMismatch,
    WargUnsupported,
    WargVerificationError,
)
from .._http import BodyTooLarge, Flow, Request, Response, printable, redact_url
from .._log import get_logger
from .._release import Release, VersionInfo
from .._semver import Version
from .warg import PackageState, SignedCheckpoint, Update, VerifiedState
from .warg import Release as WargRelease

if TYPE_CHECKING:  # pragma: no cover
    from .._engine import Engine
    from .._ref import PackageSpec
    from .._source import Source

__all__ = ["list_versions_flow", "resolve_flow", "content_flow", "FETCH_LOGS_LIMIT", "state_path"]

log = get_logger()

#: records per log and ``fetch/logs`` page (the protocol allows 1..1000; its default is 100)
FETCH_LOGS_LIMIT = 100
#: cap on API response bodies read into memory (a page of 100 records is ~100 KiB)
MAX_API_BODY = 64 << 20
MAX_ERROR_BODY = 64 << 10
#: how often an update is redone because another process stored a newer state meanwhile
MAX_STORE_ATTEMPTS = 4
#: a release lookup this soon after a version listing of the same package (same client)
#: reuses the listing's verification instead of asking for the checkpoint again
LISTING_REUSE_SECONDS = 30.0
NAMESPACES_FORMAT = "pkgloader-warg-namespaces/1"
HINT_HEADER = "warg-registry-hint"
REGISTRY_HEADER = "Warg-Registry"

_DOMAIN_RE = re.compile(r"^[A-Za-z0-9._~:\[\]-]{1,253}$")  # an authority-like, header-safe label


# ---------------------------------------------------------------------------------------
# per-engine context and persisted state


@dataclass
class _Entry:
    state: VerifiedState | None
    token: str | None  # sha256 of the file the state was read from / written as; None: no file


@dataclass
class _Context:
    root: Path
    lock: threading.Lock = field(default_factory=threading.Lock)
    entries: dict[str, _Entry] = field(default_factory=dict)
    #: (home registry, package) -> federated domain, learned by resolve for content_flow
    domains: dict[tuple[str, str], str | None] = field(default_factory=dict)
    #: (home registry, package) -> (monotonic time, verified log, api) of the last version
    #: listing, taken (once) by the release lookup that follows it
    listed: dict[tuple[str, str], tuple[float, PackageState, _Api]] = field(default_factory=dict)


_contexts: weakref.WeakKeyDictionary[Any, _Context] = weakref.WeakKeyDictionary()
_contexts_lock = threading.Lock()


def _context(engine: Engine) -> _Context:
    root = Path(engine.cache.root)
    with _contexts_lock:
        ctx = _contexts.get(engine)
        if ctx is None or ctx.root != root:
            ctx = _Context(root)
            _contexts[engine] = ctx
        return ctx


def _safe(name: str) -> str:
    """A file name for a registry name: ``host:port`` -> ``host_port`` (as the rest of the
    cache does); anything unusual (federated domains come from the registry) is replaced and
    disambiguated with a hash, so no name can leave the directory or collide."""
    plain = name.replace(":", "_").replace("/", "_").replace("[", "").replace("]", "")
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", plain)[:100]
    if safe != plain or safe.startswith(".") or not safe:
        safe = f"{safe.lstrip('.')[:80]}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"
    return safe


def state_path(cache_root: Path, domain: str) -> Path:
    """Where the verified state of registry ``domain`` is kept."""
    return Path(cache_root) / "warg" / f"{_safe(domain)}.json"


def _namespaces_path(root: Path, home: str) -> Path:
    return root / "warg" / f"{_safe(home)}.namespaces.json"


@contextmanager
def _locked(root: Path, domain: str) -> Iterator[None]:
    """Exclusive inter-process lock for one domain's state (``Cache.lock`` pattern). Held only
    around short sections without requests."""
    lock_dir = root / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_dir / f"warg-{_safe(domain)}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if sys.platform == "win32":  # pragma: no cover - msvcrt locks a byte range
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _read(path: Path) -> tuple[bytes | None, str | None]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        log.warning("cannot read warg state %s: %s; starting from scratch", path, exc)
        return None, None
    return data, hashlib.sha256(data).hexdigest()


def _load(ctx: _Context, domain: str) -> _Entry:
    """The stored state of ``domain`` (from memory when the file did not change)."""
    path = state_path(ctx.root, domain)
    data, token = _read(path)
    with ctx.lock:
        entry = ctx.entries.get(domain)
        if entry is not None and entry.token == token:
            return entry
    state: VerifiedState | None = None
    if data is not None:
        try:
            obj = load_json(data)
            state = VerifiedState.from_json(obj)
            if state.registry != domain:
                raise WargInvalidRecord(f"it belongs to registry {state.registry!r}")
        except (ValueError, WargVerificationError) as exc:
            # The file is not ours or no longer verifies; the next store replaces it.
            log.warning("ignoring the stored warg state %s (%s); it will be rebuilt from the registry", path,
                        getattr(exc, "message", exc))
            state = None
    entry = _Entry(state, token)
    with ctx.lock:
        ctx.entries[domain] = entry
    return entry


def _store(ctx: _Context, domain: str, base_token: str | None, state: VerifiedState) -> bool | None:
    """Write ``state`` if the file still is what the update started from. True: written;
    False: someone else stored in between (nothing written); None: could not write."""
    from .._fsutil import atomic_write_bytes

    path = state_path(ctx.root, domain)
    data = json.dumps(state.to_json(), sort_keys=True, separators=(",", ":")).encode()
    try:
        with _locked(ctx.root, domain):
            _, current = _read(path)
            if current != base_token:
                return False
            atomic_write_bytes(path, data)
    except OSError as exc:
        log.warning("cannot store the verified warg state of %s in %s: %s", domain, path, exc.strerror or exc)
        with ctx.lock:
            ctx.entries.pop(domain, None)
        return None
    with ctx.lock:
        ctx.entries[domain] = _Entry(state, hashlib.sha256(data).hexdigest())
    return True


def _load_hints(root: Path, home: str) -> dict[str, str]:
    try:
        obj = load_json(_namespaces_path(root, home).read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(obj, dict) or obj.get("format") != NAMESPACES_FORMAT or obj.get("registry") != home:
        return {}
    raw = obj.get("namespaces")
    if not isinstance(raw, dict):
        return {}
    return {ns: d for ns, d in raw.items() if isinstance(ns, str) and isinstance(d, str) and _DOMAIN_RE.match(d)}


def _save_hint(root: Path, home: str, namespace: str, domain: str) -> None:
    from .._fsutil import atomic_write_bytes

    path = _namespaces_path(root, home)
    try:
        with _locked(root, home):
            hints = _load_hints(root, home)
            hints[namespace] = domain
            data = {"format": NAMESPACES_FORMAT, "registry": home, "namespaces": dict(sorted(hints.items()))}
            atomic_write_bytes(path, json.dumps(data, sort_keys=True).encode())
    except OSError as exc:
        log.warning("cannot store the namespace mapping %s=%s in %s: %s", namespace, domain, path, exc.strerror or exc)


# ---------------------------------------------------------------------------------------
# the HTTP API of one registry domain


@dataclass(frozen=True)
class _Api:
    """Requests to the warg API at ``source.warg_url``, on behalf of ``domain`` (None: the
    home registry itself; else sent as ``Warg-Registry``)."""

    source: Source
    domain: str | None

    @property
    def key(self) -> str:
        """The registry domain whose state this is."""
        return self.domain or self.source.registry

    @property
    def base(self) -> str:
        return (self.source.warg_url or "").rstrip("/") + "/"

    @property
    def label(self) -> str:
        if self.domain is None:
            return f"warg registry {self.source.registry}"
        return f"warg registry {self.domain} (via {self.source.registry})"

    def url(self, path: str) -> str:
        return urljoin(self.base, path)

    def request(self, method: str, path: str, body: Any = None) -> Request:
        headers = {"Accept": "application/json"}
        content = None
        if body is not None:
            content = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        token = self.source.registry_config.warg().auth_token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if self.domain is not None:
            headers[REGISTRY_HEADER] = self.domain
        return Request(method, self.url(path), headers, content, max_body=MAX_API_BODY)

    def call(self, method: str, path: str, body: Any = None) -> Flow[Response]:
        req = self.request(method, path, body)
        try:
            return (yield req)
        except BodyTooLarge:
            raise RegistryError(
                f"{self.label} sent more than {MAX_API_BODY >> 20} MiB in answer to {method} {path.split('/sha256:')[0]}",
                details=[f"url: {redact_url(req.url)}"],
                hint="the URL may not point at a warg registry API",
            ) from None

    def json(self, resp: Response, what: str) -> Any:
        try:
            return load_json(resp.content, max_containers=MAX_ANSWER_CONTAINERS)
        except ValueError as exc:
            raise RegistryError(
                f"{self.label} sent a response to {what} that is not valid JSON ({printable(str(exc), 120)})",
                details=[f"url: {redact_url(resp.url)}", f"content-type: {resp.header('content-type') or '-'}"],
                hint="check that the URL points at a warg registry API",
            ) from None

    def error(self, resp: Response, what: str) -> PkgLoaderError:
        """A pkgloader error for a non-2xx answer to ``what``."""
        details = [f"url: {redact_url(resp.url)}"]
        message = _error_message(resp)
        if message:
            details.append(f"registry says: {message}")
        name = self.source.registry
        if resp.status in (401, 403):
            configured = bool(self.source.registry_config.warg().auth_token)
            return AuthError(
                f"{self.label} refused {what} (HTTP {resp.status})",
                details=details,
                hint=(f'the auth_token under [registry."{name}".warg] was refused; check it' if configured
                      else f'set auth_token under [registry."{name}".warg] if the registry needs one'),
            )
        if resp.status == 501 and self.domain is not None:
            return WargUnsupported(
                f"warg registry {name} does not serve other registries: it answered HTTP 501 to {what} "
                f"with {REGISTRY_HEADER}: {self.domain}",
                details=details,
                hint=f"configure a warg registry that hosts {self.domain}'s packages directly",
            )
        return RegistryError(
            f"{self.label} answered HTTP {resp.status} to {what}",
            details=details,
            hint="retry later; if it persists the registry is failing" if resp.status >= 500 else None,
        )


def _error_message(resp: Response) -> str:
    """What the registry says in an error answer, safe to print on one line."""
    try:
        body = load_json(resp.content[:MAX_ERROR_BODY])
    except ValueError:
        return printable(resp.content[:200].decode("utf-8", "replace").strip())
    if isinstance(body, dict):
        parts = [f"{k}={printable(str(body[k]), 100)}" for k in ("type", "id", "reason") if k in body]
        msg = body.get("message")
        return (printable(str(msg), 300) if msg else "") + (f" ({', '.join(parts)})" if parts else "")
    return printable(str(body))


def _parse_hint(value: str | None, namespace: str) -> str | None:
    """``Warg-Registry-Hint: <namespace>=<domain>`` -> domain, when it is for ``namespace``."""
    if not value:
        return None
    ns, sep, domain = value.strip().partition("=")
    ns, domain = ns.strip(), domain.strip()
    if not sep or ns != namespace or not _DOMAIN_RE.match(domain):
        log.warning("ignoring Warg-Registry-Hint %r (expected %s=<registry domain>)", value[:200], namespace)
        return None
    return domain


# ---------------------------------------------------------------------------------------
# bringing one domain's state up to date


def _checkpoint_flow(api: _Api) -> Flow[SignedCheckpoint]:
    resp = yield from api.call("GET", "v1/fetch/checkpoint")
    if resp.status != 200:
        raise api.error(resp, "the checkpoint request")
    cp = SignedCheckpoint.from_json(api.json(resp, "the checkpoint request"))
    log.debug("%s: checkpoint at log length %d", api.label, cp.checkpoint.log_length)
    return cp


def _update_flow(api: _Api, checkpoint: SignedCheckpoint, packages: list[str],
                 previous: VerifiedState | None) -> Flow[tuple[VerifiedState, dict[str, str | None]]]:
    """One verification round (spec §9 steps 3-6). Packages the registry does not know are
    dropped and returned with their ``Warg-Registry-Hint`` (or None)."""
    update = Update(checkpoint, packages, previous, registry=api.key)
    missing: dict[str, str | None] = {}
    pages = 0
    while True:
        body = update.fetch_logs_request(limit=FETCH_LOGS_LIMIT)
        resp = yield from api.call("POST", "v1/fetch/logs", body)
        pages += 1
        if resp.status == 404:
            err = _json_or_none(resp)
            is_log = isinstance(err, dict) and err.get("type") == "log"
            name = update.package_log_ids().get(str(err.get("id"))) if is_log else None
            if name is None:
                if isinstance(err, dict) and err.get("type") == "fetchToken":
                    raise (yield from _lost_token_flow(api, update, resp, str(err.get("id"))))
                raise api.error(resp, "the fetch/logs request")
            missing[name] = _parse_hint(resp.header(HINT_HEADER), name.split(":", 1)[0])
            try:
                update.drop_package(name)
            except PkgLoaderError:
                raise RegistryError(f"{api.label} answered 404 for the log of {name} after serving records of it") from None
            continue
        if resp.status != 200:
            raise api.error(resp, "the fetch/logs request")
        if not update.add_fetch_logs_response(api.json(resp, "the fetch/logs request")):
            break
    inclusion = update.inclusion_request()
    consistency = update.consistency_request()
    proofs: list[Any] = []
    for path, req_body in (("v1/proof/inclusion", inclusion), ("v1/proof/consistency", consistency)):
        if req_body is None:
            proofs.append(None)
            continue
        resp = yield from api.call("POST", path, req_body)
        if resp.status == 422:
            raise WargProofError(
                f"{api.label} cannot prove {'its log heads' if path.endswith('inclusion') else 'its log consistent'} "
                f"at log length {checkpoint.checkpoint.log_length}",
                details=[f"request: {json.dumps(req_body)}", f"registry says: {_error_message(resp)}"],
                hint="the registry may be compromised or broken; nothing was updated",
            )
        if resp.status != 200:
            raise api.error(resp, f"the {path.rsplit('/', 1)[-1]} proof request")
        proofs.append(api.json(resp, f"the {path.rsplit('/', 1)[-1]} proof request"))
    state = update.finish(proofs[0], proofs[1])
    log.debug("%s: verified at log length %d (%d fetch/logs page(s))", api.label, state.log_length, pages)
    return state, missing


def _lost_token_flow(api: _Api, update: Update, resp: Response, token: str) -> Flow[RegistryError]:
    """The registry no longer knows a record verified earlier: a fork (``WargFork``, raised by
    the consistency check) or lost tokens (the returned error)?"""
    checkpoint = update.checkpoint.checkpoint
    details = [f"url: {redact_url(resp.url)}", f"checkpoint log length {checkpoint.log_length}"]
    consistency = update.consistency_request()
    if consistency is not None:
        proof = yield from api.call("POST", "v1/proof/consistency", consistency)
        if proof.status == 200:
            update.verify_consistency(api.json(proof, "the consistency proof request"))
            details.append(f"its log is consistent with length {consistency['from']} verified earlier")
        else:
            details.append(f"it cannot prove its log consistent with length {consistency['from']} "
                           f"verified earlier either (HTTP {proof.status})")
    return RegistryError(
        f"{api.label} does not know the record {token[:80]} that was verified earlier",
        details=details,
        hint="the registry may have been reset or replaced; if that is intended, delete the cached "
             "warg state (pkgloader cache clean)",
    )


def _json_or_none(resp: Response) -> Any:
    try:
        return load_json(resp.content[:MAX_ERROR_BODY])
    except ValueError:
        return None


def _is_current(state: VerifiedState, checkpoint: SignedCheckpoint, packages: list[str]) -> bool:
    """Nothing to fetch: the same signed checkpoint, and every package proven at it (its head
    was shown to be the latest record by the map proof at this very checkpoint)."""
    if state.checkpoint != checkpoint:
        return False
    length = state.log_length
    return all((p := state.packages.get(name)) is not None and p.verified_at == length for name in packages)


def _merge(theirs: VerifiedState, ours: VerifiedState, packages: list[str]) -> VerifiedState | None:
    """Both verified at the same checkpoint: their state plus our packages."""
    if theirs.checkpoint != ours.checkpoint:
        return None
    merged = dict(theirs.packages)
    for name in packages:
        if name in ours.packages:
            merged[name] = ours.packages[name]
    return VerifiedState(theirs.checkpoint, theirs.operator, MappingProxyType(merged), theirs.registry)


def _with_state_path(exc: WargVerificationError, ctx: _Context, domain: str) -> WargVerificationError:
    """Rewind, fork and changed roots are judged against the stored state: say where it is."""
    if isinstance(exc, (WargRewind, WargFork, WargRootMismatch)):
        exc.details.append(f"earlier verified state: {state_path(ctx.root, domain)}")
    return exc


def _refresh_flow(ctx: _Context, api: _Api,
                  packages: list[str]) -> Flow[tuple[VerifiedState, dict[str, str | None]]]:
    """The domain's state, verified at its current checkpoint for ``packages`` (one checkpoint
    request), and the packages it does not have. Stores the new state (see module docstring)."""
    domain = api.key
    entry = _load(ctx, domain)
    checkpoint = yield from _checkpoint_flow(api)
    state: VerifiedState | None = None
    missing: dict[str, str | None] = {}
    for _attempt in range(MAX_STORE_ATTEMPTS):
        base = entry.state
        if base is not None and _is_current(base, checkpoint, packages):
            return base, {}
        try:
            state, missing = yield from _update_flow(api, checkpoint, packages, base)
        except WargVerificationError as exc:
            raise _with_state_path(exc, ctx, domain) from None
        stored = _store(ctx, domain, entry.token, state)
        if stored is not False:
            return state, missing
        # Another process (or flow) stored a state meanwhile: build on theirs, never overwrite it.
        entry = _load(ctx, domain)
        if entry.state is not None:
            merged = _merge(entry.state, state, [p for p in packages if p not in missing])
            if merged is not None:
                if _store(ctx, domain, entry.token, merged) is not False:
                    return merged, missing
                entry = _load(ctx, domain)
            if entry.state is not None and entry.state.log_length > checkpoint.checkpoint.log_length:
                checkpoint = yield from _checkpoint_flow(api)  # theirs is newer than what we were served
        log.debug("%s: state stored concurrently; updating again from it", api.label)
    assert state is not None
    log.warning("%s: the stored warg state kept changing; using this verification without storing it", api.label)
    return state, missing


# ---------------------------------------------------------------------------------------
# from a package to its verified log (with federation)


_UNSET = object()


def _known_domain(ctx: _Context, source: Source) -> str | None:
    """The federated domain of the package's namespace from what is already verified (home
    operator log) or learned (hints); None: ask the home registry."""
    ns = source.package.namespace
    home = _load(ctx, source.registry).state
    if home is not None:
        imported = home.operator.namespaces.get(ns, _UNSET)
        if imported is None:
            return None  # defined by the home registry
        if isinstance(imported, str):
            return imported
    return _load_hints(ctx.root, source.registry).get(ns)


def _not_found(api: _Api, source: Source, length: int) -> PackageNotFound:
    return PackageNotFound(
        f"package {source.package} does not exist in {api.label}",
        details=[f"url: {redact_url(api.base)}", f"checked up to log length {length}",
                 f"registry {source.registry} chosen by {source.choice.rule} ({source.choice.origin})"],
        hint="check the package name and the registry mapping (pkgloader config resolve REF)",
    )


def _package_flow(engine: Engine, source: Source) -> Flow[tuple[PackageState, _Api]]:
    """The verified log of ``source.package`` and the API (domain) it came from."""
    ctx = _context(engine)
    name = str(source.package)
    ns = source.package.namespace
    home_api = _Api(source, None)
    domain = _known_domain(ctx, source)
    if domain is None:
        state, missing = yield from _refresh_flow(ctx, home_api, [name])
        imported = state.operator.namespaces.get(ns, _UNSET)
        if name not in missing and not isinstance(imported, str):
            ctx.domains[(source.registry, name)] = None
            return state.packages[name], home_api
        hint = missing.get(name)
        if isinstance(imported, str):
            domain = imported
            log.info("%s imports namespace %r from %s", home_api.label, ns, domain)
        elif imported is None:
            if hint is not None:
                log.warning("%s defines namespace %r itself; ignoring its hint %s=%s", home_api.label, ns, ns, hint)
            raise _not_found(home_api, source, state.log_length)
        elif hint is not None:
            domain = hint
            log.info("%s: namespace %r lives in registry %s (Warg-Registry-Hint); retrying there", home_api.label, ns, hint)
            _save_hint(ctx.root, source.registry, ns, hint)
        else:
            raise _not_found(home_api, source, state.log_length)
    if domain == source.registry:
        raise WargUnsupported(f"{home_api.label} says namespace {ns!r} lives in {domain}, which is itself")
    api = _Api(source, domain)
    state, missing = yield from _refresh_flow(ctx, api, [name])
    further = state.operator.namespaces.get(ns)
    if isinstance(further, str):
        raise WargUnsupported(
            f"{api.label} imports namespace {ns!r} from {further}; pkgloader follows one level of federation only",
            hint=f"map namespace {ns!r} to a registry that hosts it directly",
        )
    if name in missing:
        if missing[name] is not None:
            raise WargUnsupported(
                f"{api.label} points {source.package} on to registry {missing[name]}; "
                f"pkgloader follows one level of federation only",
                hint=f"map namespace {ns!r} to a registry that hosts it directly",
            )
        raise _not_found(api, source, state.log_length)
    ctx.domains[(source.registry, name)] = domain
    return state.packages[name], api


def _version(text: str, source: Source) -> Version | None:
    try:
        return Version.parse(text)
    except ValueError:
        log.info("ignored release %r of %s: not a SemVer version", text, source.package)
        return None


def _infos(pkg: PackageState, source: Source) -> list[tuple[VersionInfo, WargRelease]]:
    out = []
    for rel in pkg.releases:
        v = _version(rel.version, source)
        if v is not None:
            out.append((VersionInfo(v, rel.yanked), rel))
    out.sort(key=lambda p: p[0].version.sort_key)
    return out


def list_versions_flow(engine: Engine, source: Source) -> Flow[list[VersionInfo]]:
    """Every release in the verified log (yanked ones marked), sorted by version."""
    pkg, api = yield from _package_flow(engine, source)
    ctx = _context(engine)
    with ctx.lock:
        ctx.listed[(source.registry, str(source.package))] = (time.monotonic(), pkg, api)
    return [info for info, _ in _infos(pkg, source)]


def _listed(engine: Engine, source: Source) -> tuple[PackageState, _Api] | None:
    """What the version listing just before verified, if it is recent (taken once)."""
    ctx = _context(engine)
    with ctx.lock:
        found = ctx.listed.pop((source.registry, str(source.package)), None)
    if found is None or time.monotonic() - found[0] > LISTING_REUSE_SECONDS:
        return None
    return found[1], found[2]


def _release(source: Source, api: _Api, version: Version, rel: WargRelease) -> Release:
    location = source.warg_url or api.base
    if api.domain is not None:
        location = f"{location} ({REGISTRY_HEADER}: {api.domain})"
    return Release(
        package=source.package,
        version=version,
        digest=Digest.parse(rel.content, what=f"content digest of {source.package}@{rel.version}"),
        size=None,
        registry=source.registry,
        backend="warg",
        location=location,
        yanked=rel.yanked,
    )


def _when(ts: Any) -> str:
    return "?" if ts is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts.seconds))


def resolve_flow(engine: Engine, source: Source, spec: PackageSpec) -> Flow[Release]:
    """The release ``spec`` selects from the verified log. Yanked releases are never chosen;
    asking for one exactly is a ``VersionYanked`` error."""
    listed = _listed(engine, source)
    if listed is None:
        pkg, api = yield from _package_flow(engine, source)
    else:
        pkg, api = listed  # the listing of this operation (or the one just before) verified it
    pairs = _infos(pkg, source)
    infos = [info for info, _ in pairs]
    try:
        version = engine.select(spec.package, spec.requirement, infos, source.registry)
    except NoMatchingVersion:
        exact = spec.exact_version
        yanked = [(i, r) for i, r in pairs if exact is not None and i.yanked and spec.requirement is not None
                  and spec.requirement.matches(i.version)]
        if yanked:
            info, rel = max(yanked, key=lambda p: p[0].version.sort_key)
            err = engine._yanked(_release(source, api, info.version, rel))
            err.details.extend([
                f"released at {_when(rel.timestamp)} by key {rel.by}",
                f"yanked at   {_when(rel.yanked_at)} by key {rel.yanked_by}",
            ] + ([f"served by {api.label}"] if api.domain is not None else []))
            raise err from None
        raise
    text = str(version)
    matches = [(i, r) for i, r in pairs if r.version == text] or [(i, r) for i, r in pairs if i.version == version and not i.yanked]
    info, rel = max(matches, key=lambda p: p[0].version.selection_key)
    return _release(source, api, info.version, rel)


# ---------------------------------------------------------------------------------------
# content


def _content_api(engine: Engine, source: Source, release: Release) -> _Api:
    ctx = _context(engine)
    key = (source.registry, str(release.package))
    with ctx.lock:
        known = key in ctx.domains
        domain = ctx.domains.get(key)
    if not known:  # a release from the cache: use what is stored about the namespace
        domain = _known_domain(ctx, source)
    return _Api(source, domain)


#: the most read of content whose content source announces no ``size``: a release record
#: carries no size, and a never-ending answer must not fill the disk
MAX_UNSIZED_CONTENT = 2 << 30


def _source_url(api: _Api, src: Any) -> str | None:
    """The URL of an ``httpGet`` content source (relative to the API), or None."""
    if not isinstance(src, dict) or src.get("type") != "httpGet" or not isinstance(src.get("url"), str):
        return None
    try:
        url = urljoin(api.base, src["url"])
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError:  # e.g. "Invalid IPv6 URL"
        return None
    return url if parts.scheme in ("http", "https") and parts.hostname and url.isprintable() else None


class _Bounded:
    """The content sink, refusing more bytes than the content source announced (``size``)
    or, when it announced none, than :data:`MAX_UNSIZED_CONTENT`. Passes the writer's
    block mode through (see ``VerifyingWriter.blocks``)."""

    __slots__ = ("sink", "_reset", "size", "what", "url", "got")

    def __init__(self, sink: Callable[[bytes], None], reset: Callable[[], None], size: int | None, what: str,
                 url: str) -> None:
        self.sink, self._reset, self.size, self.what, self.url = sink, reset, size, what, url
        self.got = 0

    def _count(self, n: int) -> None:
        self.got += n
        if self.size is not None and self.got > self.size:
            raise SizeMismatch(
                f"content of {self.what} is larger than its content source says",
                details=[f"expected {self.size} bytes (content source)",
                         f"got      more than {self.size} bytes from {redact_url(self.url)}", "nothing was kept"],
                hint="retry; if it persists the registry is serving corrupted content",
            )
        if self.got > MAX_UNSIZED_CONTENT:
            raise RegistryError(
                f"content of {self.what} from {redact_url(self.url)} is larger than {MAX_UNSIZED_CONTENT >> 30} GiB, "
                "the most pkgloader reads when the content source announces no size; refusing to read on",
                code="answer-too-large",
                details=["nothing was kept"],
            )

    def __call__(self, chunk: bytes) -> None:
        self._count(len(chunk))
        self.sink(chunk)

    def reset(self) -> None:
        self.got = 0
        self._reset()

    def blocks(self) -> bool:
        blocks = getattr(self.sink, "blocks", None)
        return bool(blocks()) if blocks is not None else False

    def next_block(self) -> Any:
        return self.sink.next_block()  # type: ignore[attr-defined]

    def commit_block(self, n: int) -> None:
        self._count(n)
        self.sink.commit_block(n)  # type: ignore[attr-defined]

    def local_error(self, exc: OSError) -> Exception:
        return self.sink.local_error(exc)  # type: ignore[attr-defined]


def content_flow(engine: Engine, source: Source, release: Release, sink: Callable[[bytes], None],
                 reset: Callable[[], None]) -> Flow[None]:
    """Stream the release's content into ``sink`` from the first of its content sources that
    answers 2xx. The caller's writer verifies the digest; a mismatch is never retried elsewhere."""
    api = _content_api(engine, source, release)
    what = f"{release.package}@{release.version}"
    digest = str(release.digest)
    resp = yield from api.call("GET", f"v1/content/{digest}")
    if resp.status == 404:
        raise PackageNotFound(
            f"content of {what} ({release.digest.short}) is not available from {api.label}",
            details=[f"url: {redact_url(resp.url)}", f"registry says: {_error_message(resp)}"],
            hint="the release is in the log but the registry has no content for it; ask its operator",
        )
    if resp.status != 200:
        raise api.error(resp, f"the content-source request for {what}")
    body = api.json(resp, f"the content-source request for {what}")
    sources = body.get("contentSources") if isinstance(body, dict) else None
    entries = sources.get(digest) if isinstance(sources, dict) else None
    if not isinstance(entries, list):
        raise RegistryError(
            f"{api.label} sent no content sources for {what}",
            details=[f"url: {redact_url(resp.url)}", f"expected contentSources[{digest!r}] to be a list"],
        )
    urls: list[tuple[str, int | None]] = []
    for src in entries:
        url = _source_url(api, src)
        if url is not None:
            size = src.get("size")
            urls.append((url, size if type(size) is int and size >= 0 else None))
            continue
        log.info("%s: ignored content source %r for %s", api.label, str(src)[:200], what)
    if not urls:
        raise RegistryError(f"{api.label} offers no usable (httpGet) content source for {what}",
                            details=[f"url: {redact_url(resp.url)}"])
    failures: list[str] = []
    for url, size in urls:
        bounded = _Bounded(sink, reset, size, what, url)
        req = Request("GET", url, {"Accept-Encoding": "identity"}, sink=bounded, on_retry=bounded.reset,
                      max_body=MAX_ERROR_BODY)
        try:
            got = yield req
        except (NetworkError, BodyTooLarge) as exc:
            bounded.reset()
            failures.append(f"{redact_url(url)}: {getattr(exc, 'message', None) or type(exc).__name__}")
            log.info("content source %s of %s failed: %s", redact_url(url), what, failures[-1])
            continue
        if 200 <= got.status < 300:
            log.debug("content of %s from %s", what, redact_url(url))
            return
        failures.append(f"{redact_url(url)}: HTTP {got.status}")
        log.info("content source %s of %s answered HTTP %d", redact_url(url), what, got.status)
    raise RegistryError(
        f"none of the {len(urls)} content source(s) of {what} from {api.label} could be downloaded",
        details=failures,
        hint="retry later; if it persists the registry's content storage is failing",
    )

