"""Dependency resolution: which version of every package to use. Pure and synchronous.

Terminology (used in code, docs and messages):

* a **requirement** is a package, a ``VersionReq`` and who asked for it (``requested_by``:
  ``my-app wit/world.wit:3``, or ``wasi:http@0.2.3`` for a dependency of a package);
  a *root* requirement may also name the registry and a local path override;
* a **candidate** is a version of a package that satisfies every requirement on it;
* a **pin** is the candidate chosen for a package during the search; the result of a
  successful search is a ``Resolution``: one ``Resolved`` entry per package.

The resolver never does I/O. It learns what it needs (the version list of a package, the
dependencies of one version of a package) through **requests** answered by the caller.
There are two ways to drive it:

* ``Resolver(...).resolve(provider)`` (or ``resolve(requirements, provider)``) with a
  ``Provider``: an object with ``versions()`` and ``dependencies()`` methods; the
  ``AsyncProvider`` twin is driven by ``resolve_async`` and answers each batch concurrently;
* ``Resolver(...).flow()``: a generator (sans-I/O, like httpx's auth flows) that yields
  **batches** of ``VersionsRequest`` / ``DependenciesRequest`` and receives a mapping from
  each request of the batch to its answer; its return value is the ``Resolution``. A
  caller can answer a batch any way it likes: in parallel, from a cache, from a lock file.

Batches are as wide as the search allows: the version lists of every package that is
known to be needed, then the dependencies of the preferred candidate of each of them
(``prefetch=True``), so a dependency graph is fetched layer by layer, not one package
at a time.

Rules:

* one version per package; a package is needed while a root requirement or a pinned
  package requires it;
* candidates must satisfy every requirement on the package (Cargo rules, so a pre-release
  is only a candidate when a requirement names a pre-release of that ``major.minor.patch``);
  among them a version locked for the package comes first (when ``locked`` has one for the
  package's registry and the package is not unlocked), then stable versions, highest first,
  then pre-releases, highest first; yanked versions are never candidates unless locked;
* a root requirement with ``path`` is a local override: that package resolves to the path
  for every requirement on it (their versions are not checked, as wkg does), without
  asking for its versions; its dependencies are asked for with ``version=None`` and the
  path, and may be empty;
* the search is depth-first with conflict-directed backjumping: when a package has no
  candidate, it goes back to the most recent pinned package that contributed a requirement
  to the conflict, trying its next candidate; packages that had nothing to do with the
  conflict are not retried. The work is bounded by ``max_steps`` candidates tried.

Errors (all ``PkgLoaderError``): ``PackageNotFound`` (a needed package does not exist),
``NoMatchingVersion`` (no version satisfies one requirement on its own),
``ResolutionConflict`` (requirements that cannot all hold; the message lists each one and
who asked, e.g. ``conflicting requirements for wasi:io: ^0.2 (required by
wasi:http@0.2.3), =0.3.0 (required by my-app wit/world.wit:3)``), and ``UsageError`` for
contradictory root requirements (two registries or two paths for one package). The
error reported is the one that made the preferred search path fail, once the whole
search has failed. ``ResolutionConflict``, ``NoMatchingVersion`` and ``PackageNotFound``
raised by the resolver carry ``package`` and ``requirements`` attributes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import (
    Any,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Protocol,
    Sequence,
    Union,
    cast,
    runtime_checkable,
)

from ._digest import Digest
from ._errors import InputError, NoMatchingVersion, PackageNotFound, PkgLoaderError, ResolutionConflict, UsageError
from ._ref import PackageRef
from ._release import VersionInfo
from ._semver import Version, VersionReq

__all__ = [
    "Requirement",
    "Locked",
    "Resolved",
    "Resolution",
    "VersionsRequest",
    "DependenciesRequest",
    "Request",
    "Provider",
    "AsyncProvider",
    "Resolver",
    "resolve",
    "resolve_async",
]

_LIST_LIMIT = 12  # versions shown in an error detail line


# --- values ---------------------------------------------------------------------------


def _as_ref(value: PackageRef | str) -> PackageRef:
    if isinstance(value, PackageRef):
        return value
    if isinstance(value, str):
        return PackageRef.parse(value)
    raise TypeError(f"expected a PackageRef or str, not {type(value).__name__}")


def _as_req(value: VersionReq | str | None) -> VersionReq:
    if value is None:
        return VersionReq.STAR
    if isinstance(value, VersionReq):
        return value
    if isinstance(value, str):
        return VersionReq.parse(value)
    raise TypeError(f"expected a VersionReq or str, not {type(value).__name__}")


@dataclass(frozen=True)
class Requirement:
    """``package`` must satisfy ``requirement``, because ``requested_by`` said so.

    ``registry`` (roots only) names the registry to use for the package; ``path`` (roots
    only) overrides the package with a local file or directory. ``package`` and
    ``requirement`` may be given as strings."""

    package: PackageRef
    requirement: VersionReq = VersionReq.STAR
    requested_by: str = ""
    registry: str | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "package", _as_ref(self.package))
        object.__setattr__(self, "requirement", _as_req(self.requirement))
        if self.path is not None:
            object.__setattr__(self, "path", os.fspath(self.path))

    def describe(self) -> str:
        """``^0.2 (required by wasi:http@0.2.3)``."""
        who = self.requested_by or "the command line"
        if self.path is not None:
            return f"path {self.path} (required by {who})"
        return f"{self.requirement} (required by {who})"

    def __str__(self) -> str:
        return f"{self.package}: {self.describe()}"


@dataclass(frozen=True)
class Locked:
    """A version recorded for a package (from a lock file): preferred while it satisfies
    every requirement, even when yanked. ``registry`` must equal the package's registry."""

    package: PackageRef
    version: Version
    registry: str | None = None
    digest: Digest | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "package", _as_ref(self.package))
        if isinstance(self.version, str):
            object.__setattr__(self, "version", Version.parse(self.version))


@dataclass(frozen=True)
class Resolved:
    """The resolution of one package.

    ``version`` is None for a local override (then ``path`` is set). ``requirements`` are
    all the requirements on the package in the final resolution, in the order they were
    found. ``locked`` tells that the version came from ``locked`` (``digest`` is then the
    locked digest, which the caller must compare with the registry's). ``dependencies``
    are the packages this one requires directly."""

    package: PackageRef
    version: Version | None
    registry: str | None
    requirements: tuple[Requirement, ...]
    path: str | None = None
    locked: bool = False
    digest: Digest | None = None
    yanked: bool = False
    dependencies: tuple[PackageRef, ...] = ()

    @property
    def is_local(self) -> bool:
        return self.path is not None

    def __str__(self) -> str:
        if self.path is not None:
            return f"{self.package} ({self.path})"
        return f"{self.package}@{self.version}"

    def to_json(self) -> dict[str, Any]:
        return {
            "package": str(self.package),
            "version": None if self.version is None else str(self.version),
            "registry": self.registry,
            "path": self.path,
            "locked": self.locked,
            "digest": None if self.digest is None else str(self.digest),
            "yanked": self.yanked,
            "requirements": [
                {"requirement": str(r.requirement), "requested_by": r.requested_by} for r in self.requirements
            ],
            "dependencies": [str(d) for d in self.dependencies],
        }


class Resolution(Mapping[PackageRef, Resolved]):
    """The resolved packages, iterated in package order (deterministic)."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[Resolved] = ()) -> None:
        self._items: dict[PackageRef, Resolved] = {r.package: r for r in sorted(items, key=lambda r: r.package)}

    def __getitem__(self, key: PackageRef | str) -> Resolved:
        return self._items[_as_ref(key)]

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            try:
                key = PackageRef.parse(key)
            except InputError:
                return False
        return key in self._items

    def __iter__(self) -> Iterator[PackageRef]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Resolution):
            return self._items == other._items
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Resolution {', '.join(str(r) for r in self._items.values())}>"

    def topological(self) -> list[Resolved]:
        """Dependencies before their dependents; ties (and cycles) broken by package name."""
        order: list[Resolved] = []
        state: dict[PackageRef, int] = {}

        def visit(ref: PackageRef) -> None:
            stack = [(ref, iter(sorted(self._items[ref].dependencies)))]
            state[ref] = 1
            while stack:
                node, deps = stack[-1]
                for dep in deps:
                    if dep in self._items and dep not in state:
                        state[dep] = 1
                        stack.append((dep, iter(sorted(self._items[dep].dependencies))))
                        break
                else:
                    stack.pop()
                    state[node] = 2
                    order.append(self._items[node])

        for ref in self._items:
            if ref not in state:
                visit(ref)
        return order

    def to_json(self) -> list[dict[str, Any]]:
        return [r.to_json() for r in self._items.values()]


# --- requests and providers -------------------------------------------------------------


@dataclass(frozen=True)
class VersionsRequest:
    """Answer with every version of ``package`` (yanked ones flagged): a sequence of
    ``VersionInfo`` (or ``Version``), or a ``PackageNotFound`` instance / None when the
    package does not exist."""

    package: PackageRef
    registry: str | None

    def _key(self) -> tuple[Any, ...]:
        return (0, self.package, self.registry or "", ())


@dataclass(frozen=True)
class DependenciesRequest:
    """Answer with the packages that ``package`` at ``version`` requires: a sequence of
    ``(PackageRef | str, VersionReq | str)`` pairs (or ``Requirement``). For a local
    override ``version`` is None and ``path`` is set."""

    package: PackageRef
    version: Version | None
    registry: str | None
    path: str | None = None

    def _key(self) -> tuple[Any, ...]:
        return (1, self.package, self.registry or "", self.version.sort_key if self.version else ())


Request = Union[VersionsRequest, DependenciesRequest]


@runtime_checkable
class Provider(Protocol):
    """Where the resolver's data comes from (all the I/O lives here).

    ``versions(package, registry)``: every version of the package, yanked ones included
    and flagged (``VersionInfo``); raise ``PackageNotFound`` when it does not exist.

    ``dependencies(package, version, registry, path)``: the ``(PackageRef, VersionReq)``
    pairs that this version requires (for a WIT package: its foreign packages, see
    ``_component.read_component``). ``version`` is None and ``path`` set for a local
    override."""

    def versions(self, package: PackageRef, registry: str | None) -> Sequence[VersionInfo]: ...

    def dependencies(
        self, package: PackageRef, version: Version | None, registry: str | None, path: str | None
    ) -> Iterable[tuple[PackageRef, VersionReq]]: ...


class AsyncProvider(Protocol):
    """``Provider`` with coroutine methods (``resolve_async`` runs each batch concurrently)."""

    def versions(self, package: PackageRef, registry: str | None) -> Awaitable[Sequence[VersionInfo]]: ...

    def dependencies(
        self, package: PackageRef, version: Version | None, registry: str | None, path: str | None
    ) -> Awaitable[Iterable[tuple[PackageRef, VersionReq]]]: ...


# --- search state ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Constraint:
    req: Requirement
    source: PackageRef | None  # the pinned package that added it; None for roots and local overrides


@dataclass(frozen=True)
class _Candidate:
    version: Version
    yanked: bool
    locked: Locked | None


@dataclass
class _Failure:
    """Why a package could not be pinned: the requirements on it at that moment."""

    package: PackageRef
    constraints: tuple[Requirement, ...]
    versions: tuple[VersionInfo, ...] | None  # None: the package does not exist
    registry: str | None


@dataclass
class _Frame:
    package: PackageRef
    candidates: list[_Candidate]
    index: int = 0
    pinned: _Candidate | None = None
    conflict: set[PackageRef] = field(default_factory=set)
    reason: _Failure | None = None


class Resolver:
    """One resolution problem: root requirements plus options. See the module docs.

    ``registry_of`` maps a package to its registry name (a function or a mapping; no I/O:
    typically the config's registry resolution); a root requirement's ``registry`` wins.
    ``locked`` are preferred versions; ``unlock`` is True (ignore every lock) or the
    packages whose locked versions to ignore (``update REF...``). ``prefetch`` widens
    batches with the dependencies of each needed package's preferred candidate."""

    def __init__(
        self,
        requirements: Iterable[Requirement],
        *,
        registry_of: Callable[[PackageRef], str | None] | Mapping[PackageRef, str] | None = None,
        locked: Iterable[Locked] = (),
        unlock: bool | Iterable[PackageRef | str] = (),
        prefetch: bool = True,
        max_steps: int = 10_000,
    ) -> None:
        self.requirements = tuple(requirements)
        for r in self.requirements:
            if not isinstance(r, Requirement):
                raise TypeError(f"requirements must be Requirement objects, not {type(r).__name__}")
        if registry_of is None:
            self._registry_of: Callable[[PackageRef], str | None] = lambda _p: None
        elif isinstance(registry_of, Mapping):
            mapping = {_as_ref(k): v for k, v in registry_of.items()}
            self._registry_of = mapping.get
        else:
            self._registry_of = registry_of
        if unlock is True:
            self._unlock_all = True
            self._unlocked: frozenset[PackageRef] = frozenset()
        elif unlock is False:
            self._unlock_all = False
            self._unlocked = frozenset()
        else:
            self._unlock_all = False
            if isinstance(unlock, (str, PackageRef)):
                unlock = [unlock]
            self._unlocked = frozenset(_as_ref(p) for p in unlock)
        self._locked: dict[PackageRef, list[Locked]] = {}
        for entry in locked:
            self._locked.setdefault(entry.package, []).append(entry)
        self.prefetch = prefetch
        self.max_steps = max_steps
        self._root_registry: dict[PackageRef, str] = {}
        self._local: dict[PackageRef, str] = {}
        self._check_roots()

    # -- roots ----------------------------------------------------------------------

    def _check_roots(self) -> None:
        registry_by: dict[PackageRef, Requirement] = {}
        path_by: dict[PackageRef, Requirement] = {}
        for r in self.requirements:
            if r.registry is not None:
                prev = registry_by.setdefault(r.package, r)
                if prev.registry != r.registry:
                    raise UsageError(
                        f"{r.package} is required from two registries: {prev.registry} "
                        f"(by {prev.requested_by or 'the command line'}) and {r.registry} "
                        f"(by {r.requested_by or 'the command line'})",
                        hint="name one registry for the package",
                    )
                self._root_registry[r.package] = r.registry
            if r.path is not None:
                prev = path_by.setdefault(r.package, r)
                if prev.path != r.path:
                    raise UsageError(
                        f"{r.package} is overridden by two paths: {prev.path} and {r.path}",
                        hint="keep one local override per package",
                    )
                self._local[r.package] = r.path

    def registry(self, package: PackageRef) -> str | None:
        """The registry a package is resolved from."""
        found = self._root_registry.get(package)
        return found if found is not None else self._registry_of(package)

    def _locked_for(self, package: PackageRef, registry: str | None) -> list[Locked]:
        if self._unlock_all or package in self._unlocked:
            return []
        # an entry without a registry (Cargo-component.lock records none) pins the package
        # from whichever registry it resolves from; one naming a registry pins it there only
        return [e for e in self._locked.get(package, ()) if e.registry is None or e.registry == registry]

    # -- drivers --------------------------------------------------------------------

    def resolve(self, provider: Provider) -> Resolution:
        """Resolve with a synchronous provider."""
        flow = self.flow()
        try:
            batch = next(flow)
            while True:
                answers: dict[Request, Any] = {}
                for request in batch:
                    answers[request] = _ask(provider, request)
                batch = flow.send(answers)
        except StopIteration as done:
            return cast(Resolution, done.value)

    async def resolve_async(self, provider: AsyncProvider) -> Resolution:
        """Resolve with an asynchronous provider; each batch is answered concurrently."""
        import asyncio

        flow = self.flow()
        try:
            batch = next(flow)
            while True:
                results = await asyncio.gather(*(_ask_async(provider, r) for r in batch))
                batch = flow.send(dict(zip(batch, results)))
        except StopIteration as done:
            return cast(Resolution, done.value)

    def flow(self) -> Generator[list[Request], Mapping[Request, Any], Resolution]:
        """The resolution as a generator of request batches (see the module docs)."""
        return _Search(self).run()


def _ask(provider: Provider, request: Request) -> Any:
    if isinstance(request, VersionsRequest):
        try:
            return provider.versions(request.package, request.registry)
        except PackageNotFound as exc:
            return exc
    return provider.dependencies(request.package, request.version, request.registry, request.path)


async def _ask_async(provider: AsyncProvider, request: Request) -> Any:
    if isinstance(request, VersionsRequest):
        try:
            return await provider.versions(request.package, request.registry)
        except PackageNotFound as exc:
            return exc
    return await provider.dependencies(request.package, request.version, request.registry, request.path)


def resolve(requirements: Iterable[Requirement], provider: Provider, **options: Any) -> Resolution:
    """``Resolver(requirements, **options).resolve(provider)``."""
    return Resolver(requirements, **options).resolve(provider)


async def resolve_async(requirements: Iterable[Requirement], provider: AsyncProvider, **options: Any) -> Resolution:
    """``await Resolver(requirements, **options).resolve_async(provider)``."""
    return await Resolver(requirements, **options).resolve_async(provider)


# --- the search ---------------------------------------------------------------------------


class _Search:
    def __init__(self, resolver: Resolver) -> None:
        self.r = resolver
        self.versions: dict[PackageRef, tuple[VersionInfo, ...] | None] = {}
        self.not_found: dict[PackageRef, PackageNotFound] = {}
        self.deps: dict[tuple[PackageRef, Version | None], tuple[tuple[PackageRef, VersionReq], ...]] = {}
        self.constraints: dict[PackageRef, list[_Constraint]] = {}
        self.pins: dict[PackageRef, _Candidate] = {}
        self.frames: list[_Frame] = []
        self.discovered: dict[PackageRef, int] = {}
        self.registries: dict[PackageRef, str | None] = {}
        self.steps = 0
        self.first_failure: _Failure | None = None

    # -- bookkeeping --------------------------------------------------------------------

    def registry(self, package: PackageRef) -> str | None:
        if package not in self.registries:
            self.registries[package] = self.r.registry(package)
        return self.registries[package]

    def add_constraint(self, package: PackageRef, constraint: _Constraint) -> None:
        self.constraints.setdefault(package, []).append(constraint)
        if package not in self.discovered:
            self.discovered[package] = len(self.discovered)

    def needed(self) -> list[PackageRef]:
        """Packages required but neither pinned nor local, in discovery order."""
        out = [p for p in self.constraints if p not in self.pins and p not in self.r._local]
        out.sort(key=self.discovered.__getitem__)
        return out

    def candidates(self, package: PackageRef) -> list[_Candidate]:
        infos = self.versions.get(package)
        if not infos:
            return []
        reqs = [c.req.requirement for c in self.constraints.get(package, ())]
        locked = {e.version: e for e in self.r._locked_for(package, self.registry(package))}
        out = []
        for info in infos:
            v = info.version
            if not all(req.matches(v) for req in reqs):
                continue
            lock = locked.get(v)
            if info.yanked and lock is None:
                continue
            out.append(_Candidate(v, info.yanked, lock))
        # locked first, then stable, then pre-releases; highest first within each group
        out.sort(key=lambda c: (c.locked is not None, not c.version.is_prerelease, c.version.selection_key), reverse=True)
        return out

    # -- answers ----------------------------------------------------------------------------

    def absorb(self, batch: list[Request], answers: Mapping[Request, Any]) -> None:
        if not isinstance(answers, Mapping):
            raise TypeError(f"send() a mapping from each request to its answer, not {type(answers).__name__}")
        for request in batch:
            if request not in answers:
                raise ValueError(f"no answer for {request!r}")
            answer = answers[request]
            if isinstance(request, VersionsRequest):
                if answer is None or isinstance(answer, PackageNotFound):
                    self.versions[request.package] = None
                    if isinstance(answer, PackageNotFound):
                        self.not_found[request.package] = answer
                    continue
                if isinstance(answer, PkgLoaderError):
                    raise answer
                infos = []
                for item in answer:
                    if isinstance(item, Version):
                        item = VersionInfo(item)
                    elif not isinstance(item, VersionInfo):
                        raise TypeError(f"versions must be VersionInfo or Version, not {type(item).__name__}")
                    infos.append(item)
                self.versions[request.package] = tuple(infos)
            else:
                if isinstance(answer, PkgLoaderError):
                    raise answer
                pairs = []
                for item in answer:
                    if isinstance(item, Requirement):
                        pairs.append((item.package, item.requirement))
                    else:
                        package, req = item
                        pairs.append((_as_ref(package), _as_req(req)))
                self.deps[(request.package, request.version)] = tuple(pairs)

    def _request(self, batch: list[Request]) -> Generator[list[Request], Mapping[Request, Any], None]:
        unique = sorted(set(batch), key=lambda r: r._key())
        answers = yield unique
        self.absorb(unique, answers)

    def frontier_requests(self) -> list[Request]:
        """Version lists of every needed package not fetched yet."""
        return [VersionsRequest(p, self.registry(p)) for p in self.needed() if p not in self.versions]

    def prefetch_requests(self) -> list[Request]:
        """Dependencies of the preferred candidate of every needed package; nothing when
        some needed package has no candidate (the search is about to go back)."""
        out: list[Request] = []
        for p in self.needed():
            cands = self.candidates(p)
            if not cands:
                return []
            if (p, cands[0].version) not in self.deps:
                out.append(DependenciesRequest(p, cands[0].version, self.registry(p)))
        return out

    # -- the algorithm ------------------------------------------------------------------------

    def run(self) -> Generator[list[Request], Mapping[Request, Any], Resolution]:
        for root in self.r.requirements:
            self.add_constraint(root.package, _Constraint(root, None))
        # local overrides: their dependencies first, then they are fixed for good
        local_requests: list[Request] = [
            DependenciesRequest(p, None, self.registry(p), path) for p, path in sorted(self.r._local.items())
        ]
        if local_requests:
            yield from self._request(local_requests)
        for package in sorted(self.r._local):
            for dep, dep_req in self.deps[(package, None)]:
                who = f"{package} ({self.r._local[package]})"
                self.add_constraint(dep, _Constraint(Requirement(dep, dep_req, who), None))

        while True:
            # Descend: make sure the frontier is known, then pick the next package.
            missing = self.frontier_requests()
            if missing:
                yield from self._request(missing)
            if self.r.prefetch:
                ahead = self.prefetch_requests()
                if ahead:
                    yield from self._request(ahead)
            needed = self.needed()
            if not needed:
                return self.result()
            counts = {p: len(self.candidates(p)) for p in needed}
            package = min(needed, key=lambda p: (min(counts[p], 2), self.discovered[p]))
            frame = _Frame(package, self.candidates(package))
            self.frames.append(frame)
            if not frame.candidates:
                failure = self.failure(package)
                self.note(failure)
                conflict = {c.source for c in self.constraints[package] if c.source is not None}
                self.frames.pop()
                if not self.backjump(conflict - {package}, failure):
                    self.raise_for(failure)
                frame = self.frames[-1]
            # Advance: pin the top frame's next candidate whose dependencies fit.
            while True:
                pinned = yield from self.advance(frame)
                if pinned:
                    break
                failure = frame.reason or self.failure(frame.package)
                conflict = frame.conflict | {c.source for c in self.constraints[frame.package] if c.source is not None}
                self.frames.pop()
                if not self.backjump(conflict - {frame.package}, failure):
                    self.raise_for(failure)
                frame = self.frames[-1]

    def advance(self, frame: _Frame) -> Generator[list[Request], Mapping[Request, Any], bool]:
        package = frame.package
        registry = self.registry(package)
        while frame.index < len(frame.candidates):
            cand = frame.candidates[frame.index]
            frame.index += 1
            self.steps += 1
            if self.steps > self.r.max_steps:
                self.give_up()
            key = (package, cand.version)
            if key not in self.deps:
                yield from self._request([DependenciesRequest(package, cand.version, registry)])
            deps = self.deps[key]
            clash = self.clash(package, cand, deps)
            if clash is not None:
                culprit, failure = clash
                self.note(failure)
                if culprit is not None:
                    frame.conflict.add(culprit)
                if frame.reason is None:
                    frame.reason = failure
                continue
            frame.pinned = cand
            self.pins[package] = cand
            who = f"{package}@{cand.version}"
            for dep, req in deps:
                self.add_constraint(dep, _Constraint(Requirement(dep, req, who), package))
            return True
        return False

    def clash(
        self, package: PackageRef, cand: _Candidate, deps: Sequence[tuple[PackageRef, VersionReq]]
    ) -> tuple[PackageRef | None, _Failure] | None:
        """A dependency of ``cand`` that a pinned package (or ``cand`` itself) does not
        satisfy: (the pinned package, the failure to report)."""
        who = f"{package}@{cand.version}"
        for dep, req in deps:
            if dep in self.r._local:
                continue
            if dep == package:
                pinned_version = cand.version
            elif dep in self.pins:
                pinned_version = self.pins[dep].version
            else:
                continue
            if req.matches(pinned_version):
                continue
            constraints = tuple(c.req for c in self.constraints.get(dep, ()))
            if dep == package:
                constraints = (*constraints, Requirement(dep, VersionReq.parse(f"={cand.version}"), "the candidate being tried"))
            failure = _Failure(dep, (*constraints, Requirement(dep, req, who)), self.versions.get(dep), self.registry(dep))
            return (None if dep == package else dep), failure
        return None

    def backjump(self, conflict: set[PackageRef], failure: _Failure) -> bool:
        """Undo pins down to the most recent frame in ``conflict``; False when none is."""
        while self.frames:
            top = self.frames[-1]
            self.unpin(top)
            if top.package in conflict:
                top.conflict |= conflict - {top.package}
                if top.reason is None:
                    top.reason = failure
                return True
            self.frames.pop()
        return False

    def unpin(self, frame: _Frame) -> None:
        if frame.pinned is None:
            return
        package = frame.package
        del self.pins[package]
        frame.pinned = None
        for dep in list(self.constraints):
            kept = [c for c in self.constraints[dep] if c.source != package]
            if kept:
                self.constraints[dep] = kept
            else:
                del self.constraints[dep]

    def failure(self, package: PackageRef) -> _Failure:
        return _Failure(
            package,
            tuple(c.req for c in self.constraints.get(package, ())),
            self.versions.get(package),
            self.registry(package),
        )

    def note(self, failure: _Failure) -> None:
        if self.first_failure is None:
            self.first_failure = failure

    def result(self) -> Resolution:
        items = []
        for package, constraints in self.constraints.items():
            reqs = tuple(c.req for c in constraints)
            registry = self.registry(package)
            if package in self.r._local:
                path = self.r._local[package]
                deps = tuple(sorted({d for d, _ in self.deps.get((package, None), ())}))
                items.append(Resolved(package, None, registry, reqs, path=path, dependencies=deps))
                continue
            cand = self.pins[package]
            deps = tuple(sorted({d for d, _ in self.deps[(package, cand.version)]}))
            items.append(
                Resolved(
                    package,
                    cand.version,
                    registry,
                    reqs,
                    locked=cand.locked is not None,
                    digest=cand.locked.digest if cand.locked is not None else None,
                    yanked=cand.yanked,
                    dependencies=deps,
                )
            )
        return Resolution(items)

    # -- errors -------------------------------------------------------------------------------

    def give_up(self) -> None:
        failure = self.first_failure
        details = []
        if failure is not None:
            details.append(f"first conflict: {failure.package}: " + ", ".join(r.describe() for r in failure.constraints))
        err = ResolutionConflict(
            f"gave up resolving after trying {self.r.max_steps} candidate versions",
            details=details,
            hint="pin the packages named above to exact versions to narrow the search",
            code="resolution-too-complex",
        )
        if failure is not None:
            _annotate(err, failure.package, failure.constraints)
        raise err

    def raise_for(self, failure: _Failure) -> None:
        raise _error_for(failure, self.not_found.get(failure.package))


def _versions_text(versions: Iterable[Version]) -> str:
    shown = sorted(set(versions), key=lambda v: v.sort_key)
    if not shown:
        return "none"
    if len(shown) > _LIST_LIMIT:
        return ", ".join(str(v) for v in shown[-_LIST_LIMIT:]) + f" (and {len(shown) - _LIST_LIMIT} older)"
    return ", ".join(str(v) for v in shown)


def _error_for(failure: _Failure, not_found: PackageNotFound | None) -> PkgLoaderError:
    package = failure.package
    constraints = failure.constraints
    where = f" in registry {failure.registry}" if failure.registry else ""
    err: PkgLoaderError
    if failure.versions is None:
        who = ", ".join(r.requested_by or "the command line" for r in constraints)
        details = list(not_found.details) if not_found is not None else []
        err = PackageNotFound(
            f"package {package} was not found{where} (required by {who})",
            details=details,
            hint=not_found.hint if not_found is not None else None,
        )
    else:
        versions = failure.versions
        usable = [i.version for i in versions if not i.yanked]
        yanked = [i.version for i in versions if i.yanked]
        # A requirement that no usable version satisfies on its own is the whole story.
        alone = [r for r in constraints if not any(r.requirement.matches(v) for v in usable)]
        if alone or len(constraints) <= 1:
            req = alone[0] if alone else constraints[0]
            details = [f"available{where}: {_versions_text(usable)}"]
            yanked_match = [v for v in yanked if req.requirement.matches(v)]
            if yanked_match:
                details.append(f"yanked: {_versions_text(yanked_match)}")
            hint: str | None
            if usable:
                hint = f"use a requirement that an available version satisfies, e.g. {package}@{_latest(usable)}"
            else:
                hint = None if yanked_match else "the package has no releases yet"
            err = NoMatchingVersion(
                f"no version of {package} matches {req.describe()}",
                details=details,
                hint=hint,
            )
        else:
            listed = ", ".join(r.describe() for r in constraints)
            details = [f"{r.requirement} matches {_versions_text(v for v in usable if r.requirement.matches(v))}" for r in constraints]
            details.append(f"available{where}: {_versions_text(usable)}")
            err = ResolutionConflict(
                f"conflicting requirements for {package}: {listed}",
                details=_dedupe(details),
                hint="relax one of these requirements so that a single version satisfies all of them",
            )
    _annotate(err, package, constraints)
    return err


def _annotate(err: PkgLoaderError, package: PackageRef, requirements: tuple[Requirement, ...]) -> None:
    """The structured facts of a resolution error, for callers: ``err.package`` and
    ``err.requirements``."""
    setattr(err, "package", package)
    setattr(err, "requirements", requirements)


def _latest(versions: Sequence[Version]) -> Version:
    stable = [v for v in versions if not v.is_prerelease]
    return max(stable or versions, key=lambda v: v.selection_key)


def _dedupe(lines: list[str]) -> list[str]:
    return list(dict.fromkeys(lines))
