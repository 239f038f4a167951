"""``Client`` (sync) and ``AsyncClient`` (async): thin drivers over the Engine's flows.

Both are configured exactly as the CLI is (``Config.load()``) unless given a ``Config``.
One connection pool per registry per client (HTTP/1.1 keep-alive).
"""

from __future__ import annotations

import os
import threading
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, TypeVar

from ._config import Config
from ._engine import Engine, FetchResult, OutputStatus, Progress, as_ref, as_spec, parse_publish_target
from ._errors import PackageNotFound
from ._ref import PackageRef, PackageSpec
from ._release import Release, VersionInfo
from ._semver import Version

if TYPE_CHECKING:  # pragma: no cover
    from ._http import AsyncTransport, Flow, Observer
    from ._project import Project, ProjectResult, Provider
    from ._stdhttp import StdTransport
    from .backends.oci import PublishResult

__all__ = ["Client", "AsyncClient", "FetchResult", "OutputStatus"]

T = TypeVar("T")
SpecLike = PackageSpec | PackageRef | str
PathLike = str | os.PathLike[str]


def _distinct(specs: Iterable[SpecLike]) -> list[PackageSpec]:
    """The specs in order, each once (``fetch a a`` fetches ``a`` once)."""
    out: dict[str, PackageSpec] = {}
    for s in specs:
        spec = as_spec(s)
        out.setdefault(str(spec), spec)
    return list(out.values())


def _outcome(call: Any) -> Any:
    from ._errors import PkgLoaderError

    try:
        return call()
    except PkgLoaderError as exc:
        return exc


def _results(specs: list[PackageSpec], outcomes: list[Any]) -> list[FetchResult]:
    from ._errors import FetchManyError, PkgLoaderError

    if any(isinstance(o, PkgLoaderError) for o in outcomes):
        raise FetchManyError([(str(s), o) for s, o in zip(specs, outcomes)])
    return outcomes


def _synced(specs: list[Any], outcomes: list[Any]) -> list[Path]:
    """The paths a sync wrote; when any package failed, one ``FetchManyError`` carrying every
    package's outcome (its paths, or its error), the successes included."""
    from ._errors import FetchManyError, PkgLoaderError

    if any(isinstance(o, PkgLoaderError) for o in outcomes):
        if len(outcomes) == 1:
            raise outcomes[0]  # one package: its error, as fetch of one REF
        raise FetchManyError([(f"{r.package}@{r.version}", o) for (r, _dest), o in zip(specs, outcomes)])
    return [p for paths in outcomes for p in paths]


def _config(config: Config | None, cache_dir: PathLike | None) -> Config:
    cfg = config if config is not None else Config.load()
    if cache_dir is not None:
        from ._frozen import replace

        from ._config import Origin, Setting

        cfg.settings = replace(cfg.settings, cache_dir=Setting(Path(cache_dir), Origin("flag", "cache_dir argument")))
    return cfg


_INIT_DOC = """
    Args:
        config: the configuration; default ``Config.load()``, every layer exactly as the
            CLI reads it (global file, project file, environment).
        cache_dir: the cache directory, overriding the config's (like ``--cache-dir``).
        offline: answer from the cache alone; a release that is not cached is an
            ``OfflineCacheMiss`` (like ``--offline``).
        strict: require the CNCF Wasm artifact layout (``--strict``); default: the
            config's ``strict`` setting.
        observer: called with every (request, response) pair, for build tools that
            count or record traffic.
        progress: ``progress(what, size)`` returns a callable that is given each number
            of bytes downloaded (the CLI draws its progress bar this way).
        verify: provenance (README, Provenance): None follows the config's policy, True
            requires a valid signature by an accepted signer (``--verify``), False skips
            the check (``--no-verify``).
    """


class _Base:
    def __init__(self, config: Config | None = None, *, cache_dir: PathLike | None = None, offline: bool = False,
                 strict: bool | None = None, observer: Observer | None = None, progress: Progress | None = None,
                 verify: bool | None = None) -> None:
        self.config = _config(config, cache_dir)
        self.engine = Engine(self.config, offline=offline, strict=strict, progress=progress, verify=verify)
        self._observer = observer

    @property
    def cache_dir(self) -> Path:
        return self.engine.cache.root

    def _registry(self, spec: SpecLike) -> str:
        return self.engine.registry_for(as_ref(spec))


class Client(_Base):
    """Synchronous client. Thread-safe; ``fetch_many`` fetches in parallel.

    >>> with Client() as client:                       # doctest: +SKIP
    ...     result = client.fetch("wasi:http@0.2", "wit/deps/")
    """

    def __init__(self, config: Config | None = None, *, cache_dir: PathLike | None = None, offline: bool = False,
                 strict: bool | None = None, observer: Observer | None = None, progress: Progress | None = None,
                 verify: bool | None = None) -> None:
        super().__init__(config, cache_dir=cache_dir, offline=offline, strict=strict, observer=observer,
                         progress=progress, verify=verify)
        self._transports: dict[str, StdTransport] = {}
        self._lock = threading.Lock()

    def _transport(self, registry: str) -> StdTransport:
        with self._lock:
            t = self._transports.get(registry)
            if t is None:
                from ._source import http_settings
                from ._stdhttp import StdTransport

                t = StdTransport(http_settings(self.config, registry), observer=self._observer)
                self._transports[registry] = t
            return t

    def _run(self, registry: str, flow: Flow[T]) -> T:
        from ._errors import NetworkError
        from ._http import run_sync

        try:
            return run_sync(flow, lambda: self._transport(registry))
        except NetworkError as exc:
            self.engine.explain_unreachable(registry, exc)
            raise

    def close(self) -> None:
        with self._lock:
            for t in self._transports.values():
                t.close()
            self._transports.clear()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- operations -----------------------------------------------------------------------

    def versions(self, ref: SpecLike) -> list[VersionInfo]:
        """Every version of a package (pre-releases and yanked ones included, marked)."""
        r = as_ref(ref)
        return self._run(self._registry(r), self.engine.versions_flow(r))

    def resolve(self, spec: SpecLike) -> Release:
        """The release a spec selects (version, digest, size, where it comes from)."""
        s = as_spec(spec)
        return self._run(self._registry(s), self.engine.resolve_flow(s))[0]

    def fetch(self, spec: SpecLike, dest: PathLike | None = None, *, overwrite: bool = False) -> FetchResult:
        """Resolve, download (or reuse the verified cache) and write the wasm atomically to
        ``dest`` (a file, or a directory ending in ``/``; default ``./<ns>_<name>@<version>.wasm``)."""
        s = as_spec(spec)
        return self._run(self._registry(s), self.engine.fetch_flow(s, dest, overwrite))

    def check(self, spec: SpecLike, dest: PathLike | None = None) -> OutputStatus:
        """What :meth:`fetch` would do to its output, without downloading or writing anything:
        ``OutputStatus.state`` is ``"up-to-date"``, ``"missing"`` or ``"different"``."""
        s = as_spec(spec)
        return self._run(self._registry(s), self.engine.check_flow(s, dest))

    def fetch_many(self, specs: Iterable[SpecLike], dest_dir: PathLike | None = None, *,
                   overwrite: bool = False) -> list[FetchResult]:
        """Fetch several packages concurrently (bounded by ``max_concurrency``); the same
        spec given twice is fetched once. Returns one result per distinct spec, in order.
        Every package is attempted: when any fails, :class:`FetchManyError` is raised after
        all have finished, carrying every outcome (the successes too)."""
        parsed = _distinct(specs)
        dest = None if dest_dir is None else os.path.join(os.fspath(dest_dir), "")
        if len(parsed) <= 1:
            outcomes = [_outcome(lambda: self.fetch(s, dest, overwrite=overwrite)) for s in parsed]
        else:
            from concurrent.futures import ThreadPoolExecutor

            workers = min(self.config.settings.max_concurrency.value, len(parsed))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pkgloader") as pool:
                futures = [pool.submit(_outcome, partial(self.fetch, s, dest, overwrite=overwrite)) for s in parsed]
                outcomes = [f.result() for f in futures]
        return _results(parsed, outcomes)

    def path(self, spec: SpecLike) -> Path:
        """The verified cache file holding a release's content (treat it as read-only)."""
        s = as_spec(spec)
        return self._run(self._registry(s), self.engine.content_flow(s))[1]

    def read_bytes(self, spec: SpecLike) -> bytes:
        return self.path(spec).read_bytes()

    # --- projects -------------------------------------------------------------------------

    def lock(self, project: Project | None = None, *, locked: bool = False) -> ProjectResult:
        """Resolve the project's dependencies (preferring the current lock) and write the lock."""
        return self._resolve_project(project or self.project(), unlock=(), locked=locked)

    def update(self, refs: Iterable[SpecLike] = (), *, project: Project | None = None,
               locked: bool = False) -> ProjectResult:
        """Re-resolve ``refs`` (all packages when empty) within the requirements."""
        unlock: Any = [as_ref(r) for r in refs] or True
        return self._resolve_project(project or self.project(), unlock=unlock, locked=locked)

    def sync(self, project: Project | None = None, *, locked: bool = False, replace_deps: bool = False,
             deps_format: str | None = None) -> ProjectResult:
        """Lock (unless ``locked`` forbids a change), then write every locked package into
        ``wit/deps/`` as ``ns-name-X.Y.Z.wasm`` (``deps_format="wit"``: as WIT text
        directories; default: the ``deps_format`` setting), fetching in parallel; components go
        to ``deps/``. ``replace_deps`` replaces a package present in another form."""
        from ._project import SyncPlan, finish_sync, locked_spec, sync_targets

        proj = project or self.project()
        plan = SyncPlan(proj, self.engine, replace=replace_deps, format=deps_format)
        result = self._resolve_project(proj, unlock=(), locked=locked)
        targets = sync_targets(proj, result.resolution)
        plan.precheck(targets)
        specs = [(r, dest) for r, dest in targets if r.version is not None]

        def one(item: Any) -> list[Path]:
            r, _dest = item
            spec = locked_spec(r)
            rel, blob = self._run(self._registry(spec), self.engine.content_flow(spec))
            return plan.write(r, blob, rel.digest)

        # every package is attempted; one failure does not hide the others (FetchManyError)
        fetched = _synced(specs, self._parallel(lambda item: _outcome(partial(one, item)), specs))
        return finish_sync(proj, result, targets, fetched, plan)

    def project(self, *, lock: PathLike | None = None, wit_dir: PathLike | None = None) -> Project:
        from ._project import Project

        return Project.discover(self.config, lock=lock, wit_dir=wit_dir)

    def _parallel(self, func: Any, items: list[Any]) -> list[Any]:
        if len(items) <= 1:
            return [func(i) for i in items]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(self.config.settings.max_concurrency.value, len(items))) as pool:
            futures = [pool.submit(func, i) for i in items]
            errors = [f.exception() for f in futures]
        for e in errors:
            if e is not None:
                raise e
        return [f.result() for f in futures]

    def _answer(self, provider: Provider, request: Any) -> Any:
        registry, make = provider.flow_for(request)
        try:
            if registry is None:
                from ._http import run_sync

                return run_sync(make(), lambda: None)
            return self._run(registry, make())
        except PackageNotFound as exc:
            from ._resolver import VersionsRequest

            if isinstance(request, VersionsRequest):
                return exc
            raise

    def _resolve_project(self, project: Project, *, unlock: Any, locked: bool) -> ProjectResult:
        from ._project import Provider, finish, missing_digests, resolver_for

        resolver, old = resolver_for(self.engine, project, unlock=unlock, locked=locked)
        provider = Provider(self.engine, project)
        flow = resolver.flow()
        try:
            batch = next(flow)
            while True:
                answers = self._parallel(lambda req: self._answer(provider, req), list(batch))
                batch = flow.send(dict(zip(batch, answers)))
        except StopIteration as stop:
            resolution = stop.value
        for spec in missing_digests(provider, resolution):
            rel, _ = self._run(self._registry(spec), self.engine.resolve_flow(spec))
            assert spec.exact_version is not None
            provider.digests[(spec.package, spec.exact_version)] = rel.digest
        return finish(provider, project, resolution, old, locked=locked)

    def publish(self, path: PathLike, package: str | tuple[PackageRef, Version], *,
                annotations: dict[str, str] | None = None, force: bool = False,
                sign_key: PathLike | None = None, dry_run: bool = False, skip_dupes: bool = False) -> PublishResult:
        """Push a wasm file as the CNCF Wasm OCI artifact ``package`` (``ns:name@1.2.3``);
        with ``sign_key`` (a PEM private key), also attach a keyed Sigstore bundle signing it.
        ``dry_run``: build the manifest and config (``result.manifest``/``config``), push
        nothing; ``skip_dupes``: an existing version is skipped (``result.skipped``), not an
        error. A ``local`` registry gets the file under its root."""
        ref, version = parse_publish_target(package)
        return self._run(self._registry(ref),
                         self.engine.publish_flow(Path(path), (ref, version), annotations=annotations or {},
                                                  force=force, sign_key=sign_key, dry_run=dry_run,
                                                  skip_dupes=skip_dupes))


class AsyncClient(_Base):
    """The same operations as :class:`Client`, as coroutines (``async with AsyncClient() as c``).
    """

    def __init__(self, config: Config | None = None, *, cache_dir: PathLike | None = None, offline: bool = False,
                 strict: bool | None = None, observer: Observer | None = None, progress: Progress | None = None,
                 verify: bool | None = None) -> None:
        super().__init__(config, cache_dir=cache_dir, offline=offline, strict=strict, observer=observer,
                         progress=progress, verify=verify)
        self._transports: dict[str, AsyncTransport] = {}

    def _transport(self, registry: str) -> AsyncTransport:
        t = self._transports.get(registry)
        if t is None:
            from ._http import AsyncTransport
            from ._source import http_settings

            t = AsyncTransport(http_settings(self.config, registry), observer=self._observer)
            self._transports[registry] = t
        return t

    async def _run(self, registry: str, flow: Flow[T]) -> T:
        from ._errors import NetworkError
        from ._http import run_async

        try:
            return await run_async(flow, lambda: self._transport(registry))
        except NetworkError as exc:
            self.engine.explain_unreachable(registry, exc)
            raise

    async def aclose(self) -> None:
        for t in self._transports.values():
            await t.aclose()
        self._transports.clear()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def versions(self, ref: SpecLike) -> list[VersionInfo]:
        r = as_ref(ref)
        return await self._run(self._registry(r), self.engine.versions_flow(r))

    async def resolve(self, spec: SpecLike) -> Release:
        s = as_spec(spec)
        return (await self._run(self._registry(s), self.engine.resolve_flow(s)))[0]

    async def fetch(self, spec: SpecLike, dest: PathLike | None = None, *, overwrite: bool = False) -> FetchResult:
        s = as_spec(spec)
        return await self._run(self._registry(s), self.engine.fetch_flow(s, dest, overwrite))

    async def check(self, spec: SpecLike, dest: PathLike | None = None) -> OutputStatus:
        """The async twin of :meth:`Client.check`."""
        s = as_spec(spec)
        return await self._run(self._registry(s), self.engine.check_flow(s, dest))

    async def fetch_many(self, specs: Iterable[SpecLike], dest_dir: PathLike | None = None, *,
                         overwrite: bool = False) -> list[FetchResult]:
        """The async twin of :meth:`Client.fetch_many` (same merging, same ``FetchManyError``)."""
        import asyncio

        from ._errors import PkgLoaderError

        parsed = _distinct(specs)
        dest = None if dest_dir is None else os.path.join(os.fspath(dest_dir), "")
        sem = asyncio.Semaphore(self.config.settings.max_concurrency.value)

        async def one(s: PackageSpec) -> FetchResult | PkgLoaderError:
            async with sem:
                try:
                    return await self.fetch(s, dest, overwrite=overwrite)
                except PkgLoaderError as exc:
                    return exc

        return _results(parsed, list(await asyncio.gather(*(one(s) for s in parsed))))

    async def path(self, spec: SpecLike) -> Path:
        s = as_spec(spec)
        return (await self._run(self._registry(s), self.engine.content_flow(s)))[1]

    async def read_bytes(self, spec: SpecLike) -> bytes:
        return (await self.path(spec)).read_bytes()

    # --- projects (same shared pieces as Client; batches answered with asyncio.gather) ---

    def project(self, *, lock: PathLike | None = None, wit_dir: PathLike | None = None) -> Project:
        from ._project import Project

        return Project.discover(self.config, lock=lock, wit_dir=wit_dir)

    async def lock(self, project: Project | None = None, *, locked: bool = False) -> ProjectResult:
        return await self._resolve_project(project or self.project(), unlock=(), locked=locked)

    async def update(self, refs: Iterable[SpecLike] = (), *, project: Project | None = None,
                     locked: bool = False) -> ProjectResult:
        unlock: Any = [as_ref(r) for r in refs] or True
        return await self._resolve_project(project or self.project(), unlock=unlock, locked=locked)

    async def sync(self, project: Project | None = None, *, locked: bool = False, replace_deps: bool = False,
                   deps_format: str | None = None) -> ProjectResult:
        import asyncio

        from ._project import SyncPlan, finish_sync, locked_spec, sync_targets

        proj = project or self.project()
        plan = SyncPlan(proj, self.engine, replace=replace_deps, format=deps_format)
        result = await self._resolve_project(proj, unlock=(), locked=locked)
        targets = sync_targets(proj, result.resolution)
        plan.precheck(targets)
        sem = asyncio.Semaphore(self.config.settings.max_concurrency.value)

        from ._errors import PkgLoaderError

        async def one(r: Any, dest: Path) -> list[Path] | PkgLoaderError:
            async with sem:
                try:
                    spec = locked_spec(r)
                    rel, blob = await self._run(self._registry(spec), self.engine.content_flow(spec))
                    return plan.write(r, blob, rel.digest)
                except PkgLoaderError as exc:
                    return exc

        specs = [(r, d) for r, d in targets if r.version is not None]
        fetched = _synced(specs, list(await asyncio.gather(*(one(r, d) for r, d in specs))))
        return finish_sync(proj, result, targets, fetched, plan)

    async def _answer(self, provider: Provider, request: Any) -> Any:
        registry, make = provider.flow_for(request)
        try:
            if registry is None:
                from ._http import run_sync

                return run_sync(make(), lambda: None)
            return await self._run(registry, make())
        except PackageNotFound as exc:
            from ._resolver import VersionsRequest

            if isinstance(request, VersionsRequest):
                return exc
            raise

    async def _resolve_project(self, project: Project, *, unlock: Any, locked: bool) -> ProjectResult:
        import asyncio

        from ._project import Provider, finish, missing_digests, resolver_for

        resolver, old = resolver_for(self.engine, project, unlock=unlock, locked=locked)
        provider = Provider(self.engine, project)
        flow = resolver.flow()
        sem = asyncio.Semaphore(self.config.settings.max_concurrency.value)

        async def ask(req: Any) -> Any:
            async with sem:
                return await self._answer(provider, req)

        try:
            batch = next(flow)
            while True:
                answers = await asyncio.gather(*(ask(r) for r in batch))
                batch = flow.send(dict(zip(batch, answers)))
        except StopIteration as stop:
            resolution = stop.value
        for spec in missing_digests(provider, resolution):
            rel, _ = await self._run(self._registry(spec), self.engine.resolve_flow(spec))
            assert spec.exact_version is not None
            provider.digests[(spec.package, spec.exact_version)] = rel.digest
        return finish(provider, project, resolution, old, locked=locked)

    async def publish(self, path: PathLike, package: str | tuple[PackageRef, Version], *,
                      annotations: dict[str, str] | None = None, force: bool = False,
                      sign_key: PathLike | None = None, dry_run: bool = False,
                      skip_dupes: bool = False) -> PublishResult:
        ref, version = parse_publish_target(package)
        return await self._run(self._registry(ref),
                               self.engine.publish_flow(Path(path), (ref, version), annotations=annotations or {},
                                                        force=force, sign_key=sign_key, dry_run=dry_run,
                                                        skip_dupes=skip_dupes))


Client.__doc__ = (Client.__doc__ or "") + _INIT_DOC
AsyncClient.__doc__ = (AsyncClient.__doc__ or "") + _INIT_DOC
