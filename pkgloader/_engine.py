"""The operations behind both clients, written once as sans-I/O flows.

``Engine`` holds what one client shares across operations (config, cache, auth state) and
builds flows for: listing versions, resolving a spec to a release, fetching content into
the cache and to a file, and publishing. ``Client`` and ``AsyncClient`` only drive them.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ._frozen import Frozen, init_field
from ._cache import Cache, check_output
from ._config import Config
from ._errors import (
    InvalidContent,
    NoMatchingVersion,
    OfflineCacheMiss,
    OutputExists,
    PackageNotFound,
    UsageError,
    VersionYanked,
)
from ._log import get_logger
from ._ref import PackageRef, PackageSpec
from ._release import Release, VersionInfo
from ._semver import Version, VersionReq

if TYPE_CHECKING:  # pragma: no cover
    from ._auth import AuthSession
    from ._credentials import Credentials
    from ._http import Flow
    from ._source import Source

__all__ = ["Engine", "FetchResult", "as_spec", "as_ref", "is_wasm_preamble"]

log = get_logger()

#: downloads of at least this size are hard-linked to the output instead of copied
#: (one write to disk instead of two; see ``Cache.copy_blob``)
SHARE_MIN = 8 * 1024 * 1024

#: the way out when an output is not a regular file (a device, a directory, ...)
_OUTPUT_HINT = "choose another path with -o"

Progress = Callable[[str, int | None], Callable[[int], None]]


class FetchResult(Frozen):
    """One fetched package: the release, where it was written, whether its content came from
    the cache (nothing downloaded) and whether the output already held exactly these bytes
    (``up_to_date``: nothing downloaded, the file left untouched)."""

    __fields__ = ("release", "path", "from_cache", "up_to_date")
    release: Release
    path: Path | None
    from_cache: bool  # True when no content was downloaded
    up_to_date: bool = False

    def __init__(self, release: Release, path: Path | None, from_cache: bool, up_to_date: bool = False) -> None:
        init_field(self, "release", release)
        init_field(self, "path", path)
        init_field(self, "from_cache", from_cache)
        init_field(self, "up_to_date", up_to_date)

    def to_json(self) -> dict[str, Any]:
        return dict(self.release.to_json(), path=str(self.path) if self.path else None, from_cache=self.from_cache,
                    up_to_date=self.up_to_date)


class OutputStatus(Frozen):
    """What ``fetch`` would do to one output (``Client.check``; ``fetch --check``): ``state``
    is ``"up-to-date"`` (it holds the release's verified bytes), ``"missing"`` or
    ``"different"`` (it holds other bytes). Nothing is downloaded or written to find out."""

    __fields__ = ("release", "path", "state")
    release: Release
    path: Path
    state: str

    def __init__(self, release: Release, path: Path, state: str) -> None:
        init_field(self, "release", release)
        init_field(self, "path", path)
        init_field(self, "state", state)

    @property
    def up_to_date(self) -> bool:
        return self.state == "up-to-date"

    def to_json(self) -> dict[str, Any]:
        return dict(self.release.to_json(), path=str(self.path), state=self.state)


def holds_release(path: str | os.PathLike[str], rel: Release) -> bool:
    """Whether the regular file at ``path`` holds exactly ``rel``'s content (size first, then
    the digest of every byte). False when it cannot be read."""
    from ._warm import file_holds

    return rel.digest.algorithm == "sha256" and file_holds(path, rel.digest.hex, rel.size)


def as_spec(spec: PackageSpec | PackageRef | str) -> PackageSpec:
    if isinstance(spec, PackageSpec):
        return spec
    if isinstance(spec, PackageRef):
        return PackageSpec(spec, None)
    return PackageSpec.parse(spec)


def as_ref(ref: PackageRef | PackageSpec | str) -> PackageRef:
    if isinstance(ref, PackageRef):
        return ref
    if isinstance(ref, PackageSpec):
        return ref.package
    return as_spec(ref).package


def parse_publish_target(target: str | tuple[PackageRef, Version]) -> tuple[PackageRef, Version]:
    """``ns:name@1.2.3`` (an optional leading ``=`` is accepted) -> (PackageRef, Version).
    Build metadata is kept: it becomes the tag ``1.2.3_build``."""
    if isinstance(target, tuple):
        return target
    text = str(target)
    ref_text, sep, ver_text = text.partition("@")
    package = PackageRef.parse(ref_text)
    if not sep or not ver_text.strip():
        raise UsageError(f"publish needs an exact version, got {text!r}", hint=f"write {package}@1.2.3")
    try:
        version = Version.parse(ver_text.strip().removeprefix("=").strip())
    except ValueError:
        raise UsageError(f"publish needs an exact version such as {package}@1.2.3, got {text!r}",
                         hint="a requirement such as ^1.2 or 1.2 cannot be published") from None
    return package, version


def is_wasm_preamble(head: bytes) -> bool:
    """``\\0asm`` then a core module version (1) or a component (layer 1, any version)."""
    if len(head) < 8 or head[:4] != b"\0asm":
        return False
    return head[4:8] == b"\x01\x00\x00\x00" or head[6:8] == b"\x01\x00"


class _Ticking:
    """A sink that reports progress."""

    __slots__ = ("writer", "tick")

    def __init__(self, writer: Any, tick: Callable[[int], None]) -> None:
        self.writer = writer
        self.tick = tick

    def __call__(self, chunk: bytes) -> None:
        self.writer.write(chunk)
        self.tick(len(chunk))

    def local_error(self, exc: OSError) -> Exception:
        return self.writer.local_error(exc)

    # block mode (see VerifyingWriter.blocks): a drawn progress bar must not cost a large
    # download its way past the page cache
    def blocks(self) -> bool:
        return bool(self.writer.blocks())

    def next_block(self) -> Any:
        return self.writer.next_block()

    def commit_block(self, n: int) -> None:
        self.writer.commit_block(n)
        self.tick(n)


class Engine:
    def __init__(self, config: Config, *, offline: bool = False, strict: bool | None = None,
                 progress: Progress | None = None, verify: bool | None = None) -> None:
        #: provenance: None follows the policy, True/False is --verify/--no-verify; what was
        #: verified, by (package, version) (see _provenance._enforce)
        self.verify = verify
        self.verified: dict[tuple[str, str], Any] = {}
        self.unverified: dict[tuple[str, str], str] = {}  # checked in mode warn and failed: the code
        self.config = config
        self.cache = Cache(config.cache_dir, durable=config.settings.fsync.value)
        # what killed processes left in the cache's tmp/ goes now (one scan of a directory
        # that is normally empty; a live download's file is never touched)
        self.cache.tidy(self.cache.root / "tmp")
        self.offline = offline
        self.strict = config.settings.strict.value if strict is None else strict
        self._strict_flag = strict is True
        self._fingerprint: str | None = None  # of the config inputs, for warm-fetch memos
        self._chosen: dict[str, Any] = {}  # registry -> the RegistryChoice that picked it (for errors)
        self._auth: AuthSession | None = None
        self.progress = progress
        self._creds: dict[tuple[str, str], Credentials | None] = {}
        self._creds_lock = threading.Lock()
        self._oci_ctx: Any = None

    # --- plumbing -----------------------------------------------------------------------

    def registry_for(self, ref: PackageRef) -> str:
        registry = self.config.choose_registry(ref).registry
        self.config.registry_config(registry).check_usable()  # offline and cached paths too
        return registry

    def credentials(self, source: Source) -> Credentials | None:
        key = (source.registry, source.oci_registry or "")
        with self._creds_lock:
            if key not in self._creds:
                from ._credentials import find_credentials

                self._creds[key] = find_credentials(self.config, source.registry, source.oci_registry or source.registry)
            return self._creds[key]

    @property
    def auth(self) -> AuthSession:
        if self._auth is None:
            from ._auth import AuthSession, ChallengeMemo

            memo = None if self.offline else ChallengeMemo(self.cache.root, self.config.settings.metadata_ttl.value)
            self._auth = AuthSession(memo)
        return self._auth

    @property
    def oci(self) -> Any:
        if self._oci_ctx is None:
            from .backends.oci import OciContext

            self._oci_ctx = OciContext(self.auth, self.credentials, strict=self.strict)
        return self._oci_ctx

    def _source(self, ref: PackageRef) -> Flow[Source]:
        from ._source import source_flow

        source = yield from source_flow(self.config, ref, offline=self.offline)
        self._chosen[source.registry] = source.choice
        return source

    def explain_unreachable(self, registry: str, exc: Exception) -> None:
        """A registry that cannot be reached (connection refused, unknown host, timeout):
        say which config layer chose it (a built-in default included) and the ways out."""
        from ._errors import NetworkError, RegistryError, TLSError
        from ._source import _chosen_by

        if not isinstance(exc, NetworkError) or isinstance(exc, (RegistryError, TLSError)):
            return
        if not exc.message.startswith(("cannot connect to ", "timed out connecting to ")):
            return  # it answered (a broken connection, a slow answer): its own hint says what to do
        choice = self._chosen.get(registry)
        if choice is None:
            return
        line = f"registry {registry} chosen by {_chosen_by(choice)}"
        if line in exc.details:
            return  # explained already (an error passed up through two runs)
        exc.details.append(line)
        exc.hint = (f"check that {registry} is reachable (pkgloader config resolve {choice.package} shows how it "
                    "was chosen); --offline answers from the cache, and a registry mirror can serve when the "
                    "registry cannot (README: CI and fleets)")

    # --- versions -----------------------------------------------------------------------

    def versions_flow(self, ref: PackageRef) -> Flow[list[VersionInfo]]:
        registry = self.registry_for(ref)
        if self.offline:
            return self._cached_versions(ref, registry)
        source = yield from self._source(ref)
        from .backends import get_backend

        infos = yield from get_backend(source.backend).versions_flow(self, source)
        self.cache.put_versions(registry, ref, [(str(i.version), i.yanked) for i in infos])
        return infos

    def _cached_versions(self, ref: PackageRef, registry: str) -> list[VersionInfo]:
        found: dict[str, VersionInfo] = {}  # by text: 1.2.3 and 1.2.3+build.5 are two releases
        cached = self.cache.get_versions(registry, ref)
        if cached is not None:
            for text, yanked in cached[0]:
                v = Version.from_tag(text)
                if v is not None:
                    found[str(v)] = VersionInfo(v, yanked)
        for r in self.cache.releases(registry, ref):
            found.setdefault(str(r.version), VersionInfo(r.version, r.yanked))
        if not found:
            raise OfflineCacheMiss(
                f"no versions of {ref} from {registry} are in the cache (offline)",
                hint="run once without --offline to fill the cache",
            )
        return sorted(found.values(), key=lambda i: i.version.sort_key)

    # --- resolve ------------------------------------------------------------------------

    def select(self, ref: PackageRef, req: VersionReq | None, infos: list[VersionInfo], registry: str) -> Version:
        req = req if req is not None else VersionReq.STAR
        usable = [i.version for i in infos if not i.yanked]
        chosen = req.select(usable)
        if chosen is not None:
            return chosen
        yanked = [i.version for i in infos if i.yanked and req.matches(i.version)]
        stable = [str(i.version) for i in infos if not i.version.is_prerelease and not i.yanked]
        pre = [str(i.version) for i in infos if i.version.is_prerelease and not i.yanked]
        details = [f"registry: {registry}"]
        if infos:
            shown = stable[-15:]
            details.append("available: " + (", ".join(shown) if shown else "no stable versions")
                           + (f" (and {len(stable) - 15} older)" if len(stable) > 15 else ""))
            if pre:
                details.append("pre-releases: " + ", ".join(pre[-10:]))
            if yanked:
                details.append("yanked (never chosen by a requirement): " + ", ".join(str(v) for v in yanked))
        else:
            details.append("available: none (no version tags)")
        hint = None
        if pre and not stable:
            hint = f"only pre-releases exist; ask for one explicitly, e.g. {ref}@={pre[-1]}"
        elif infos:
            hint = f"pick one of the available versions, e.g. {ref}@={(stable or pre)[-1]}" if (stable or pre) else None
        raise NoMatchingVersion(
            f"no version of {ref} matches {str(req)!r}" if req is not VersionReq.STAR else f"{ref} has no stable version",
            details=details,
            hint=hint,
        )

    def resolve_flow(self, spec: PackageSpec) -> Flow[tuple[Release, Source | None]]:
        ref = spec.package
        registry = self.registry_for(ref)
        exact = spec.exact_version
        if exact is not None:
            cached = self.cache.get_release(registry, ref, exact)
            if cached is not None and self._cached_ok(cached):
                if cached.yanked:
                    raise self._yanked(cached)
                return cached, None
        if self.offline:
            if exact is not None:
                version = exact
            else:
                version = self.select(ref, spec.requirement, self._cached_versions(ref, registry), registry)
            rel = self.cache.get_release(registry, ref, version)
            if rel is None:
                raise OfflineCacheMiss(
                    f"{ref}@{version} from {registry} is not in the cache (offline)",
                    hint="run once without --offline to fill the cache",
                )
            return rel, None
        source = yield from self._source(ref)
        from .backends import get_backend

        if source.backend == "warg":
            # warg selects from the log it has just verified: one checkpoint per operation
            from .backends import warg_backend

            rel = yield from warg_backend.resolve_flow(self, source, spec)
            self.cache.put_release(rel)
            return rel, source
        backend = get_backend(source.backend)
        if exact is not None:
            # No version list needed for an exact version, unless the registry only has it
            # with build metadata (tag 1.0.0_build.5 for =1.0.0).
            try:
                rel = yield from backend.release_flow(self, source, exact)
            except PackageNotFound:
                if exact.build:
                    raise  # =1.2.3+build.5 names that one tag
                infos = yield from self.versions_flow(ref)
                same = [i.version for i in infos if i.version == exact and not i.yanked]
                if not same:
                    raise
                rel = yield from backend.release_flow(self, source, max(same, key=lambda v: v.selection_key))
        else:
            infos = yield from self.versions_flow(ref)
            version = self.select(ref, spec.requirement, infos, registry)
            rel = yield from backend.release_flow(self, source, version)
        self.cache.put_release(rel)
        if rel.yanked:
            raise self._yanked(rel)
        return rel, source

    def _cached_ok(self, rel: Release) -> bool:
        if rel.backend == "warg":
            return False  # a warg release can be yanked later: always ask the (verified) log
        if not self.strict or rel.backend != "oci":
            return True
        from .backends.oci import OCI_MANIFEST, WASM_CONFIG_TYPE

        return rel.manifest_media_type == OCI_MANIFEST and rel.config_media_type == WASM_CONFIG_TYPE

    def _yanked(self, rel: Release) -> VersionYanked:
        return VersionYanked(
            f"{rel.package}@{rel.version} has been yanked from {rel.registry}",
            hint=f"choose another version (pkgloader versions {rel.package} --all)",
        )

    # --- content ------------------------------------------------------------------------

    def _enforce_provenance(self, rel: Release, source: Source | None) -> Flow[None]:
        """The signature policy for ``rel`` (README: Provenance); OCI releases only."""
        if rel.backend == "oci" and self.verify is not False:
            if not self.verify:  # the policy decides: none may apply, nothing to import (~20 ms)
                from ._provenance import may_apply

                if not may_apply(self.config, rel.package):
                    return
            from ._provenance._enforce import enforce_flow

            yield from enforce_flow(self, rel, source)

    def ensure_content_flow(self, rel: Release, source: Source | None) -> Flow[bool]:
        """Make sure the release's verified content is in the cache. True when it already was."""
        yield from self._enforce_provenance(rel, source)  # signatures first, before any byte is used
        if self.cache.has_verified_blob(rel.digest, rel.size):
            return True
        if self.offline:
            raise OfflineCacheMiss(
                f"content of {rel.package}@{rel.version} is not in the cache (offline)",
                hint="run once without --offline to fill the cache",
            )
        if source is None:
            source = yield from self._source(rel.package)
        what = f"{rel.package}@{rel.version}"
        origin = source.oci_registry or source.registry if source.backend == "oci" else source.location
        tick = self.progress(what, rel.size) if self.progress else None
        with self.cache.ingest(rel.digest, rel.size, what=what, origin=origin or source.registry) as w:
            sink: Callable[[bytes], None] = w if tick is None else _Ticking(w, tick)
            from .backends import get_backend

            yield from get_backend(source.backend).content_flow(self, source, rel, sink, w.reset)
            w.verify()
            if not is_wasm_preamble(w.head):
                raise InvalidContent(
                    f"content of {what} is not WebAssembly",
                    details=[f"first bytes: {w.head.hex(' ') or '(empty)'}",
                             "expected \\0asm followed by a module or component version", "nothing was kept"],
                    hint="the registry holds something other than a wasm package under this tag",
                )
        return False

    def output_path(self, rel: Release, dest: str | os.PathLike[str] | None) -> Path:
        if dest is None:
            return Path.cwd() / rel.file_name
        text = os.fspath(dest)
        p = Path(text)
        if text.endswith(("/", os.sep)) or p.is_dir():
            return p / rel.file_name
        return p

    def fetch_flow(self, spec: PackageSpec, dest: str | os.PathLike[str] | None, overwrite: bool) -> Flow[FetchResult]:
        rel, source = yield from self.resolve_flow(spec)
        out = self.output_path(rel, dest)
        # before any download: an existing output needs --overwrite, and only a regular file
        # (or a link to one) is ever replaced (see check_output)
        would = [f"would write {rel.package}@{rel.version} ({rel.digest.short})"]
        # only a regular file (or a link to one) is ever replaced (see check_output); one that
        # already holds these very bytes is up to date: not downloaded, not touched
        target = check_output(out, overwrite=True, details=would, hint=_OUTPUT_HINT)
        if os.path.lexists(target):
            if holds_release(target, rel):
                yield from self._enforce_provenance(rel, source)  # up to date, but signed as the policy asks?
                if spec.exact_version is not None:
                    self._remember(spec, rel)
                return FetchResult(rel, out, True, up_to_date=True)
            if not overwrite:
                raise OutputExists.at(out, [*would, "it holds other content"])
        cached = yield from self.ensure_content_flow(rel, source)
        # a large download is linked, not copied, to the output: written to disk once
        share = not cached and rel.size is not None and rel.size >= SHARE_MIN
        self.cache.copy_blob(rel.digest, out, overwrite=overwrite, share=share, details=would, hint=_OUTPUT_HINT)
        if cached:  # a fresh download is recent already
            self.cache.touch(rel)
        if spec.exact_version is not None:
            self._remember(spec, rel)
        return FetchResult(rel, out, cached)

    def _remember(self, spec: PackageSpec, rel: Release) -> None:
        """Record the warm-fetch memo (see ``_warm``) for an exact-version fetch."""
        inputs = self.config.load_inputs
        if inputs is None or self.offline or rel.backend == "warg":
            return  # warg: a later yank must be seen, so no memo
        from . import _warm

        # once per engine: the inputs as they were when this engine's config was loaded
        fp = self._fingerprint
        if fp is None:
            fp = self._fingerprint = _warm.fingerprint(inputs[0], list(inputs[1]), inputs[2], self._strict_flag) or ""
        if not fp:
            return
        _warm.write_memo(str(self.cache.root), fp, str(spec), {
            "package": str(rel.package), "version": str(rel.version), "digest": str(rel.digest),
            "size": rel.size, "registry": rel.registry, "file_name": rel.file_name,
            "fsync": self.cache.durable,
        })

    def check_flow(self, spec: PackageSpec, dest: str | os.PathLike[str] | None) -> Flow[OutputStatus]:
        """What ``fetch_flow`` would do to its output, without downloading or writing."""
        rel, source = yield from self.resolve_flow(spec)
        yield from self._enforce_provenance(rel, source)  # an unsigned release is never "up to date"
        out = self.output_path(rel, dest)
        target = check_output(out, overwrite=True, details=[], hint=_OUTPUT_HINT)
        if not os.path.lexists(target):
            return OutputStatus(rel, out, "missing")
        return OutputStatus(rel, out, "up-to-date" if holds_release(target, rel) else "different")

    def content_flow(self, spec: PackageSpec) -> Flow[tuple[Release, Path]]:
        """Resolve and cache; return the verified cache path (read-only; do not modify)."""
        rel, source = yield from self.resolve_flow(spec)
        yield from self.ensure_content_flow(rel, source)
        self.cache.touch(rel)
        return rel, self.cache.blob_path(rel.digest)

    # --- publish ------------------------------------------------------------------------

    def publish_flow(self, path: Path, target: str | tuple[PackageRef, Version], *, annotations: dict[str, str],
                     force: bool, sign_key: str | os.PathLike[str] | None = None, dry_run: bool = False,
                     skip_dupes: bool = False) -> Flow[Any]:
        package, version = parse_publish_target(target)
        spec = PackageSpec(package, VersionReq.parse(f"={version}"))
        with open(path, "rb") as f:
            head = f.read(8)
        if not is_wasm_preamble(head):
            raise InvalidContent(
                f"{str(path)!r} is not a WebAssembly module or component",
                details=[f"first bytes: {head.hex(' ') or '(empty)'}"],
                hint="build it first, e.g. wasm-tools component wit DIR --wasm -o FILE",
            )
        source = yield from self._source(package)
        if dry_run or source.backend == "local":  # issue 15: as wkg publish --dry-run / to a local registry
            from ._publishmeta import publish_dry_or_local

            return publish_dry_or_local(source, path, version, annotations, dry_run=dry_run, force=force,
                                        skip_dupes=skip_dupes)
        if source.backend != "oci":
            raise UsageError(f"publishing to a {source.backend} registry is not supported ({source.registry})",
                             hint="publish to an OCI registry or a local one")
        from .backends import oci

        signing = None
        if sign_key is not None:  # read before anything is pushed (see _provenance._publish)
            from ._provenance._publish import load_signing_key

            signing = load_signing_key(sign_key)
        size = path.stat().st_size
        tick = self.progress(f"upload {spec.package}@{version}", size) if self.progress else None
        result = yield from oci.publish_flow(self.oci, source, path, version, annotations=annotations, force=force,
                                             progress=tick, skip_dupes=skip_dupes)
        if signing is not None and not result.skipped:
            from ._provenance._publish import sign_published_flow

            result = yield from sign_published_flow(self.oci, source, result, signing)
        return result
