"""Projects: dependencies from ``pkgloader.toml`` / ``[tool.pkgloader]`` and the WIT directory,
resolved (transitively, by reading each fetched component) into a ``pkgloader.lock`` in the
``wkg.lock`` format, and synced into ``wit/deps/``.

The resolver itself is pure (``_resolver``); this module is its provider: version lists come
from the engine's flows, a package's dependencies from the component binary in the verified
cache. Each batch of questions the resolver asks is answered concurrently.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from ._config import Config, RegistryMapping, Setting
from ._digest import Digest
from ._errors import ConfigError, LocalIOError
from ._lockfile import CARGO_COMPONENT_LOCK_FILE_NAME, LockFile, verify_locked_digest
from ._ref import PackageRef, PackageSpec
from ._release import VersionInfo
from ._resolver import DependenciesRequest, Requirement, Resolution, Resolver, VersionsRequest
from ._semver import Version, VersionReq

if TYPE_CHECKING:  # pragma: no cover
    from ._engine import Engine
    from ._http import Flow

__all__ = ["Project", "ProjectResult", "deps_file_name"]

PROJECT_LOCK_NAME = "pkgloader.lock"


def deps_file_name(package: PackageRef, version: Version) -> str:
    """wkg's name for a WIT dependency in ``deps/``: ``ns:name@1.2.3`` -> ``ns-name-1.2.3.wasm``."""
    return f"{package.namespace}-{package.name}-{version}.wasm"


_MANAGED_RE = re.compile(r"^[a-z][a-z0-9-]*-\d+\.\d+\.\d+[0-9A-Za-z.+-]*\.wasm$")


@dataclass
class ProjectResult:
    """What lock / update / sync did."""

    resolution: Resolution
    lock: LockFile
    lock_path: Path
    lock_written: bool
    changes: list[str]
    synced: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        digests = {str(p.name): str(p.versions[0].digest) for p in self.lock if p.versions}
        packages = []
        for r in self.resolution.values():
            entry = r.to_json()
            entry["digest"] = digests.get(str(r.package), entry["digest"])
            packages.append(entry)
        return {
            "lock_file": str(self.lock_path),
            "lock_written": self.lock_written,
            "changes": self.changes,
            "packages": packages,
            "synced": [str(p) for p in self.synced],
            "removed": [str(p) for p in self.removed],
            # as for fetch: what was written (sync) and every failure (none, on success)
            "fetched": [str(p) for p in self.synced],
            "errors": [],
        }


@dataclass
class Project:
    root: Path
    wit_dir: Path
    lock_read: Path  # where the current lock is read from
    lock_write: Path  # where the new lock is written
    config: Config
    #: lock (and sync) the direct dependencies only, as wkg and cargo-component do: true when
    #: the lock read is a ``wkg.lock`` or a ``Cargo-component.lock`` (see README, "Projects")
    direct_only: bool = False

    @classmethod
    def discover(cls, config: Config, *, lock: str | os.PathLike[str] | None = None,
                 wit_dir: str | os.PathLike[str] | None = None, cwd: Path | None = None) -> Project:
        root = config.project_root or find_project_root(cwd or Path.cwd(), wit_dir=wit_dir, lock=lock)
        wit = Path(wit_dir) if wit_dir is not None else root / "wit"
        if lock is None and not (root / PROJECT_LOCK_NAME).is_file() and (root / WKG_LOCK_NAME).is_file():
            lock = root / WKG_LOCK_NAME  # a project wkg manages: its lock is the project's lock
        if lock is not None:
            read = Path(lock)
            if not read.is_file():
                from ._config import _path_kind

                kind = _path_kind(read)
                if kind == "missing":
                    raise ConfigError(f"lock file {str(read)!r} given with --lock does not exist",
                                      hint="check the path, or leave out --lock to use the project's pkgloader.lock")
                raise ConfigError(f"lock file {str(read)!r} given with --lock is not a regular file (it is a {kind})",
                                  hint="--lock names a lock file (pkgloader.lock, wkg.lock or Cargo-component.lock)")
            # cargo-component's lock is read, never rewritten in another format
            write = root / PROJECT_LOCK_NAME if read.name == CARGO_COMPONENT_LOCK_FILE_NAME else read
        else:
            read = write = root / PROJECT_LOCK_NAME
        direct_only = read.name in (WKG_LOCK_NAME, CARGO_COMPONENT_LOCK_FILE_NAME)
        return cls(root, wit, read, write, config, direct_only)

    @property
    def label(self) -> str:
        return self.root.name or str(self.root)

    # --- requirements -----------------------------------------------------------------

    def requirements(self) -> list[Requirement]:
        """``[dependencies]`` entries, then every foreign package the WIT files use."""
        reqs: list[Requirement] = []
        for key, setting in sorted(self.config.dependencies.items()):
            reqs.append(self._dependency(key, setting))
        if self.wit_dir.is_dir():
            from ._witdeps import scan_wit_dir

            scan = scan_wit_dir(self.wit_dir)
            reqs.extend(scan.requirements(self.label))
        return reqs

    def _dependency(self, key: str, setting: Setting[Any]) -> Requirement:
        value = setting.value
        who = f"{setting.origin.source or 'pkgloader.toml'} [dependencies]"
        where = f"[dependencies] \"{key}\" in {setting.origin.source}" + (f":{setting.origin.line}" if setting.origin.line else "")
        pkg = PackageRef.parse(key)
        if isinstance(value, str):
            return Requirement(pkg, _req(value, where), who)
        unknown = set(value) - {"version", "registry", "path"}
        if unknown:
            raise ConfigError(f"unknown key {sorted(unknown)[0]!r} in {where}",
                              hint="a dependency table takes version, registry and path")
        version = value.get("version")
        registry = value.get("registry")
        path = value.get("path")
        if path is not None:
            if not isinstance(path, str):
                raise ConfigError(f"path must be a string in {where}")
            p = Path(path).expanduser()
            if not p.is_absolute():
                p = self.root / p
            if not p.exists():
                raise ConfigError(f"local override {str(p)!r} for {key} does not exist ({where})")
            return Requirement(pkg, _req(version, where) if version else VersionReq.STAR, who, path=str(p))
        if registry is not None:
            if not isinstance(registry, str):
                raise ConfigError(f"registry must be a string in {where}")
            from ._config import validate_registry_name

            validate_registry_name(registry, setting.origin)
            # the dependency's registry acts as a package override for this project
            self.config.package_registry_overrides[key] = Setting(RegistryMapping(registry), setting.origin)
        if version is None and registry is None:
            raise ConfigError(f"{where} needs a version (or a path)", hint=f'write "{key}" = {{ version = "0.2" }}')
        return Requirement(pkg, _req(version, where) if version else VersionReq.STAR, who, registry=registry)


#: wkg's lock file name; used (read and written) when the project has no pkgloader.lock
WKG_LOCK_NAME = "wkg.lock"
#: what makes a directory a project root without a project file
_ROOT_MARKERS = (PROJECT_LOCK_NAME, WKG_LOCK_NAME, "wkg.toml")


def find_project_root(start: Path, *, wit_dir: Any = None, lock: Any = None) -> Path:
    """The project root when there is no project file: the nearest directory, from
    ``start`` up, holding a lock file (``pkgloader.lock``, ``wkg.lock``), ``wkg.toml`` or a
    ``wit/`` directory (so that a command run inside ``wit/`` or deeper finds the same root).
    With ``--wit`` or ``--lock`` given, ``start`` itself. Otherwise a ``UsageError`` saying
    how to start a project."""
    start = start.resolve()
    if wit_dir is not None or lock is not None:
        return start
    for directory in (start, *start.parents):
        if any((directory / m).is_file() for m in _ROOT_MARKERS) or (directory / "wit").is_dir():
            return directory
    from ._errors import UsageError

    raise UsageError(
        f"no project in {start} or above: lock, sync and update need a pkgloader.toml, a [tool.pkgloader] "
        "table in pyproject.toml, a lock file or a wit/ directory",
        hint="run 'pkgloader init' to start one here (it detects wit/), or pass --wit DIR",
    )


def _req(text: Any, where: str) -> VersionReq:
    if not isinstance(text, str):
        raise ConfigError(f"version must be a string in {where}", hint='write e.g. version = "0.2"')
    try:
        return VersionReq.parse(text)
    except ValueError as exc:
        raise ConfigError(f"invalid version requirement {text!r} in {where}: {exc}") from None


# --- the engine as resolver provider ---------------------------------------------------------


class Provider:
    """Answers the resolver's questions with engine flows; remembers digests it saw."""

    def __init__(self, engine: Engine, project: Project) -> None:
        self.engine = engine
        self.project = project
        self.digests: dict[tuple[PackageRef, Version], Digest] = {}

    def flow_for(self, request: Any) -> tuple[str | None, Callable[[], Flow[Any]]]:
        """(registry to route through, flow factory) for one resolver request."""
        if isinstance(request, VersionsRequest):
            ref = request.package
            return self.engine.registry_for(ref), lambda: self._versions(ref)
        assert isinstance(request, DependenciesRequest)
        if request.path is not None:
            return None, lambda: self._local_deps(request.path)
        if self.project.direct_only:
            # a binary WIT package embeds what it uses: wkg locks and writes direct dependencies only
            return None, self._no_deps
        return self.engine.registry_for(request.package), lambda: self._deps(request.package, request.version)

    def _versions(self, ref: PackageRef) -> Flow[list[VersionInfo]]:
        return (yield from self.engine.versions_flow(ref))

    def _deps(self, ref: PackageRef, version: Version | None) -> Flow[list[tuple[PackageRef, VersionReq]]]:
        assert version is not None
        spec = PackageSpec(ref, VersionReq.parse(f"={version}"))
        rel, path = yield from self.engine.content_flow(spec)
        self.digests[(ref, version)] = rel.digest
        from ._component import read_component_file

        info = read_component_file(path)
        return [(f.package, f.requirement) for f in info.foreign if f.package != ref]

    def _no_deps(self) -> Flow[list[Any]]:
        return []
        yield  # pragma: no cover - a flow without requests

    def _local_deps(self, path: str) -> Flow[list[Any]]:
        p = Path(path)
        if p.is_dir():
            from ._witdeps import scan_wit_dir

            return scan_wit_dir(p).requirements(str(p))
        from ._component import read_component_file

        return [(f.package, f.requirement) for f in read_component_file(p).foreign]
        yield  # pragma: no cover - a flow without requests


def resolver_for(engine: Engine, project: Project, *, unlock: bool | Iterable[PackageRef] = (),
                 locked: bool = False) -> tuple[Resolver, LockFile]:
    lock = LockFile.load(project.lock_read, missing_ok=True)
    # for registry mirrors (backends/_mirrors): the locked digests let a mirror resolve a
    # locked version (its answer is checked against the lock); under --locked the lock's
    # versions are the version lists, so a locked build needs no tag list from the origin
    unlock = unlock if isinstance(unlock, bool) else list(unlock)
    skip = None if unlock is True else set() if unlock is False else {str(r) for r in unlock}
    engine.lock_pins = {} if skip is None else {  # type: ignore[attr-defined]
        (p.name, v.version): v.digest for p in lock.packages for v in p.versions if str(p.name) not in skip}
    engine.lock_only = locked  # type: ignore[attr-defined]
    reqs = project.requirements()
    if not isinstance(unlock, bool):
        unlock = list(unlock)
        known = {str(r.package) for r in reqs} | {str(p.name) for p in lock.packages}
        for ref in unlock:
            if str(ref) not in known:
                from ._errors import UsageError

                raise UsageError(
                    f"{ref} is not a dependency of project {project.label}",
                    details=[f"dependencies: {', '.join(sorted(known)) or '(none)'}"],
                    hint=f'add it to [dependencies] in pkgloader.toml ("{ref}" = "VERSION"), or run pkgloader update '
                         "with no REF to update every package",
                )
    resolver = Resolver(reqs, registry_of=engine.registry_for, locked=lock.pins(), unlock=unlock)
    return resolver, lock


def missing_digests(provider: Provider, resolution: Resolution) -> list[PackageSpec]:
    """Resolved packages whose content digest the provider has not seen (their releases
    must be resolved before the lock can be written)."""
    return [PackageSpec(r.package, VersionReq.parse(f"={r.version}")) for r in resolution.values()
            if r.version is not None and (r.package, r.version) not in provider.digests]


def finish(provider: Provider, project: Project, resolution: Resolution, old: LockFile, *,
           locked: bool) -> ProjectResult:
    """Check locked digests against the registry's, build the new lock, write it (unless
    ``locked``)."""
    digests: dict[PackageRef, Digest] = {}
    for resolved in resolution.values():
        if resolved.version is None:
            continue
        digest = provider.digests[(resolved.package, resolved.version)]
        verify_locked_digest(resolved, digest, origin=resolved.registry)
        digests[resolved.package] = digest
    from ._provenance._lock import lock_signers  # provenance: who signed each locked package

    signed = lock_signers(provider.engine, resolution, old, locked=locked)
    new = LockFile.from_resolution(resolution, digests, path=project.lock_write, signed=signed)
    if locked:
        old.ensure_unchanged(new)
    changes = old.changes(new)
    written = False
    if not locked:
        # a lock that already says the same (entries in another order, upper-case digests: a
        # lock wkg wrote) is left as it is
        if not project.lock_write.is_file():
            current: LockFile | None = None
        elif project.lock_write == project.lock_read:
            current = old
        else:
            current = LockFile.load(project.lock_write)
        if current is None or not current.same_as(new):
            try:
                new.write(project.lock_write)
            except OSError as exc:
                raise LocalIOError(f"cannot write {str(project.lock_write)!r}: {exc.strerror or exc}") from None
            written = True
    return ProjectResult(resolution, new, project.lock_write, written, changes)


def sync_targets(project: Project, resolution: Resolution) -> list[tuple[Any, Path]]:
    deps = project.wit_dir / "deps"
    out = []
    for resolved in resolution.values():
        if resolved.version is not None:
            out.append((resolved, deps / deps_file_name(resolved.package, resolved.version)))
        elif resolved.path is not None:
            src = Path(resolved.path)
            name = f"{resolved.package.namespace}-{resolved.package.name}"
            out.append((resolved, deps / (name if src.is_dir() else name + ".wasm")))
    return out


def locked_spec(resolved: Any) -> PackageSpec:
    """The exact-version spec of a resolved registry package."""
    return PackageSpec(resolved.package, VersionReq.parse(f"={resolved.version}"))


class SyncPlan:
    """How one sync writes its packages (issue 15):

    * a **component** never goes into ``wit/deps/`` (wasm-tools refuses it there: "found an
      actual component"): it is written to ``deps/<ns>-<name>-<version>.wasm`` at the
      project root;
    * a WIT package is written as ``wit/deps/<ns>-<name>-<version>.wasm`` (``format`` "wasm")
      or as text, ``wit/deps/<ns>-<name>-<version>/package.wit`` for it and for every package
      it uses (``format`` "wit", as wkg writes them; needs the ``wit`` extra);
    * a package already present in ``wit/deps/`` in another form (a wkg text directory beside
      the ``.wasm`` sync would write, a ``.wasm`` under another name) is refused naming both
      (``deps-conflict``, exit 7), or, with ``replace``, the other entry is removed once the
      sync has written its own. What pkgloader wrote itself (``ns-name-X.Y.Z.wasm``, text
      directories holding its marker) is simply replaced or pruned."""

    def __init__(self, project: Project, engine: Any, *, replace: bool = False, format: str | None = None) -> None:
        import threading

        from ._witdeps import deps_inventory

        self.project = project
        self.engine = engine
        self.format = format or project.config.settings.deps_format.value
        if self.format not in ("wasm", "wit"):
            from ._errors import UsageError

            raise UsageError(f"unknown deps format {self.format!r}", hint="use wasm or wit")
        if self.format == "wit":
            from ._wittext import wasm_tools

            wasm_tools("sync with deps_format = \"wit\"")  # fail before anything is fetched
        self.replace = replace
        self.deps = project.wit_dir / "deps"
        self.inventory = deps_inventory(self.deps) if self.deps.is_dir() else []
        self.replaced: dict[Path, None] = {}
        self._lock = threading.Lock()
        self._text_dirs: set[Path] = set()

    def precheck(self, targets: list[tuple[Any, Path]]) -> None:
        """Refuse conflicts of the packages named by the lock before anything is fetched."""
        for r, dest in targets:
            if r.version is None:
                continue
            if self.format == "wit":
                from ._wittext import dir_name

                dest = self.deps / dir_name(r.package, r.version)
            self.check(r.package, r.version, dest)

    def check(self, package: PackageRef, version: Version | None, dest: Path) -> None:
        for entry in self.inventory:
            if entry.path == dest or not entry.holds(package, version):
                continue
            if entry.form == "wasm" and _MANAGED_RE.match(entry.path.name) or entry.managed_dir:
                continue  # pkgloader's own earlier output: replaced or pruned
            if self.replace:
                self.replaced[entry.path] = None
                continue
            from ._errors import ConflictError

            shown = f"{package}@{version}" if version is not None else str(package)
            raise ConflictError(
                f"{shown} is already in {entry.describe()}; sync would also write it as {dest}",
                details=["wasm-tools and wit-parser refuse a package that wit/deps/ defines twice "
                         "(\"attempting to re-add package\")"],
                hint=f"remove {entry.path}, or run 'pkgloader sync --replace-deps' to replace it with what the lock "
                     "names (or sync --format to match the form already there)",
                code="deps-conflict",
            )

    def write(self, resolved: Any, blob: Path, digest: Digest) -> list[Path]:
        """Write one fetched registry package (its verified cache entry ``blob``)."""
        from ._component import read_component_file

        name = deps_file_name(resolved.package, resolved.version)
        try:
            kind = read_component_file(blob).kind
        except Exception:  # noqa: BLE001 - not readable as a component: written as it is
            kind = "wit-package"
        if kind == "component":
            dest = self.project.root / "deps" / name
            self.engine.cache.copy_blob(digest, dest, overwrite=True)
            return [dest]
        if self.format == "wit":
            return self._write_text(blob)
        dest = self.deps / name
        self.check(resolved.package, resolved.version, dest)
        self.engine.cache.copy_blob(digest, dest, overwrite=True)
        return [dest]

    def _write_text(self, blob: Path) -> list[Path]:
        from ._cache import output_error
        from ._fsutil import atomic_write_bytes
        from ._witdeps import MANAGED_MARKER
        from ._wittext import decode_packages, dir_name

        out = []
        for package, version, text in decode_packages(blob):
            dest = self.deps / dir_name(package, version)
            with self._lock:
                if dest in self._text_dirs:
                    continue  # another package of this sync holds it too
                self._text_dirs.add(dest)
                self.check(package, version, dest)
                try:
                    dest.mkdir(parents=True, exist_ok=True)
                    for stale in dest.glob("*.wit"):
                        if stale.name != "package.wit":
                            stale.unlink()  # one package per directory, as wkg writes it
                    atomic_write_bytes(dest / "package.wit", text.encode("utf-8"))
                    marker = dest / MANAGED_MARKER
                    if not marker.is_file():
                        atomic_write_bytes(marker, b"written by pkgloader sync; removed with its package\n")
                except OSError as exc:
                    raise output_error(exc, dest) from None
            out.append(dest)
        return out

    def place_local(self, src: Path, dest: Path) -> Path:
        if src.is_file() and src.suffix == ".wasm":
            from ._component import read_component_file

            try:
                if read_component_file(src).kind == "component":
                    dest = self.project.root / "deps" / dest.name
            except Exception:  # noqa: BLE001
                pass
        place_local(src, dest)
        return dest


def finish_sync(project: Project, result: ProjectResult, targets: list[tuple[Any, Path]],
                fetched: list[Path], plan: SyncPlan | None = None) -> ProjectResult:
    """After the registry packages are written to ``fetched``: place the local overrides,
    and remove the dependency files the resolution no longer needs."""
    result.synced = list(fetched)
    for r, dest in targets:
        if r.version is None:
            if plan is not None:
                dest = plan.place_local(Path(r.path), dest)
            else:
                place_local(Path(r.path), dest)
            result.synced.append(dest)
    keep = set(result.synced)
    result.removed = prune(project, keep)
    if plan is not None:
        for path in plan.replaced:
            if path in keep or not (path.exists() or path.is_symlink()):
                continue
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            except OSError as exc:
                from ._fsutil import explain_os_error

                reason, hint = explain_os_error(exc, path)
                raise LocalIOError(f"cannot remove {str(path)!r}: {reason}", hint=hint) from None
            result.removed.append(path)
    return result


def place_local(src: Path, dest: Path) -> None:
    """Copy a local override into deps/ (a WIT directory as a directory, a file as a file).
    Never replaces anything but what it would write: a directory for a directory (not a
    link to one), a regular file (or a link to one, whose target is written) for a file."""
    from ._cache import output_error
    from ._fsutil import NotRegularFile, atomic_write_bytes, kind_of

    try:
        if src.is_dir():
            try:
                st = dest.lstat()
            except FileNotFoundError:
                pass
            else:
                if not stat.S_ISDIR(st.st_mode):
                    raise NotRegularFile(dest, f"{kind_of(st.st_mode)}, not a directory; not replacing it")
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("deps"))
            shutil.rmtree(dest, ignore_errors=True)
            os.replace(tmp, dest)
        else:
            atomic_write_bytes(dest, src.read_bytes())
    except OSError as exc:
        raise output_error(exc, dest) from None


def prune(project: Project, keep: set[Path]) -> list[Path]:
    """Remove dependency files pkgloader wrote earlier that the resolution no longer needs
    (only ``ns-name-X.Y.Z.wasm`` files and text directories holding pkgloader's marker;
    anything else in deps/ is the user's)."""
    deps = project.wit_dir / "deps"
    removed = []
    if deps.is_dir():
        from ._witdeps import MANAGED_MARKER

        for p in sorted(deps.iterdir()):
            if p.is_dir() and not p.is_symlink() and (p / MANAGED_MARKER).is_file() and p not in keep:
                shutil.rmtree(p, ignore_errors=True)  # a text directory pkgloader wrote
                removed.append(p)
                continue
            if p.is_file() and _MANAGED_RE.match(p.name) and p not in keep:
                try:
                    p.unlink()
                except OSError as exc:
                    from ._fsutil import explain_os_error

                    reason, hint = explain_os_error(exc, p)
                    raise LocalIOError(f"cannot remove {str(p)!r}: {reason}", hint=hint) from None
                removed.append(p)
    return removed
