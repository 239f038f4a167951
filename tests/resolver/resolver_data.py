"""A provider built from a case description (see tests/data/resolver/README.md)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Iterable, Mapping

from pkgloader._digest import Digest
from pkgloader._errors import PackageNotFound
from pkgloader._ref import PackageRef
from pkgloader._release import VersionInfo
from pkgloader._resolver import Locked, Requirement
from pkgloader._semver import Version, VersionReq

DATA = Path(__file__).resolve().parent.parent / "data" / "resolver"


class DataProvider:
    """``packages``: {"ns:name": {"versions": {"1.0.0": {"dep:x": "^1"}}, "yanked": [...]}};
    ``paths``: {"../x": {"dep:y": "*"}}. Records every call in ``calls``."""

    def __init__(self, packages: Mapping[str, Any], paths: Mapping[str, Any] | None = None) -> None:
        self.packages = packages
        self.paths = paths or {}
        self.calls: list[tuple] = []

    def versions(self, package: PackageRef, registry: str | None) -> list[VersionInfo]:
        self.calls.append(("versions", str(package), registry))
        entry = self.packages.get(str(package))
        if entry is None:
            where = registry or "the default registry"
            raise PackageNotFound(f"{package} not found", details=[f"registry {where} has no package {package}"])
        yanked = set(entry.get("yanked", ()))
        return [VersionInfo(Version.parse(v), v in yanked) for v in entry.get("versions", {})]

    def dependencies(
        self, package: PackageRef, version: Version | None, registry: str | None, path: str | None
    ) -> list[tuple[PackageRef, VersionReq]]:
        self.calls.append(("dependencies", str(package), None if version is None else str(version), path))
        if path is not None:
            deps = self.paths[path]
        else:
            deps = self.packages[str(package)]["versions"][str(version)]
        return [(PackageRef.parse(p), VersionReq.parse(r)) for p, r in deps.items()]


class AsyncDataProvider:
    def __init__(self, sync: DataProvider) -> None:
        self.sync = sync

    async def versions(self, package: PackageRef, registry: str | None) -> list[VersionInfo]:
        await asyncio.sleep(0)
        return self.sync.versions(package, registry)

    async def dependencies(self, package, version, registry, path):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0)
        return self.sync.dependencies(package, version, registry, path)


def roots_of(case: Mapping[str, Any]) -> list[Requirement]:
    return [
        Requirement(
            r["package"],
            r.get("requirement", "*"),
            r.get("requested_by", "my-app"),
            registry=r.get("registry"),
            path=r.get("path"),
        )
        for r in case.get("root", [])
    ]


def options_of(case: Mapping[str, Any]) -> dict[str, Any]:
    opts = dict(case.get("options", {}))
    out: dict[str, Any] = {}
    if "registries" in opts:
        out["registry_of"] = {PackageRef.parse(k): v for k, v in opts.pop("registries").items()}
    out.update(opts)
    locked = [
        Locked(
            e["package"],
            e["version"],
            e.get("registry"),
            Digest.parse(e["digest"]) if "digest" in e else None,
        )
        for e in case.get("locked", [])
    ]
    if locked:
        out["locked"] = locked
    return out


def summary(resolution: Iterable[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for r in resolution:  # Resolved objects
        out[str(r.package)] = {"path": r.path} if r.path is not None else str(r.version)
    return out
