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


def _close_packages(source: Source) -> str | None:
    """The package of this namespace (or of the root) whose name is closest to the one asked
    for: a listing of a local registry is cheap (at most 1,000 entries are looked at)."""
    import difflib
    import itertools

    assert source.local_root is not None
    want = source.package
    try:
        ns_dir = source.local_root / want.namespace
        if ns_dir.is_dir():
            names = [p.name for p in itertools.islice(ns_dir.iterdir(), 1000) if p.is_dir()]
            close = difflib.get_close_matches(want.name, names, n=1, cutoff=0.6)
            if close:
                return f"{want.namespace}:{close[0]}"
        spaces = [p.name for p in itertools.islice(source.local_root.iterdir(), 1000) if p.is_dir()]
        for ns in difflib.get_close_matches(want.namespace, spaces, n=3, cutoff=0.6):
            if (source.local_root / ns / want.name).is_dir():
                return f"{ns}:{want.name}"
    except OSError:
        return None
    return None


def list_versions(source: Source) -> list[VersionInfo]:
    d = _dir(source)
    if not d.is_dir():
        close = _close_packages(source)
        raise PackageNotFound(
            f"package {source.package} not found in local registry {source.registry}",
            details=[f"looked in {d}"],
            hint=(f"did you mean {close}? " if close else "")
            + f"put releases there as <version>.wasm, e.g. {d / '0.1.0.wasm'}",
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
