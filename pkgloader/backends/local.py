"""The local-directory backend: ``<root>/<namespace>/<name>/<version>.wasm``.

Versions come from file stems (other files are skipped); a release's digest is the sha256 of
its file. No network, so these are plain functions, not flows.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from .._digest import Digest
from .._errors import PackageNotFound
from .._release import Release, VersionInfo
from .._semver import Version

if TYPE_CHECKING:  # pragma: no cover
    from .._source import Source


def _dir(source: Source) -> Path:
    assert source.local_root is not None
    return source.local_root / source.package.namespace / source.package.name


def list_versions(source: Source) -> list[VersionInfo]:
    d = _dir(source)
    if not d.is_dir():
        raise PackageNotFound(
            f"package {source.package} not found in local registry {source.registry}",
            details=[f"looked in {d}"],
            hint=f"put releases there as <version>.wasm, e.g. {d / '0.1.0.wasm'}",
        )
    out = []
    for p in d.iterdir():
        if p.suffix == ".wasm" and p.is_file():
            v = Version.from_tag(p.stem)
            if v is not None:
                out.append(VersionInfo(v))
    return sorted(out, key=lambda i: i.version.sort_key)


def file_for(source: Source, version: Version) -> Path:
    d = _dir(source)
    for name in (f"{version}.wasm", f"{version.to_tag()}.wasm"):
        if (d / name).is_file():
            return d / name
    raise PackageNotFound(f"{source.package}@{version} not found in local registry {source.registry}",
                          details=[f"looked for {d / f'{version}.wasm'}"])


def release(source: Source, version: Version) -> Release:
    path = file_for(source, version)
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return Release(source.package, version, Digest("sha256", h.hexdigest()), size, source.registry, "local", str(path),
                   media_type="application/wasm")
