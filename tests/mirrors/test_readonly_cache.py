"""A cache directory shared read-only (README, "A cache shared by many runners": not
supported): what only reads cached entries works, anything that must write to the cache is
a clear io-error (exit 8) naming the directory and the alternatives, with nothing written."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from pkgloader import Client
from support.wit import WitSpec, build_spec

BASE = WitSpec("test", "base", "1.0.0")
MID = WitSpec("test", "mid", "2.0.0")


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def read_only() -> Iterator[Callable[[Path], None]]:
    """``read_only(dir)``: the whole tree unwritable (chmod for a user; ``chattr +i`` for
    root, whom permission bits do not stop), undone afterwards."""
    made: list[Path] = []

    def make(d: Path) -> None:
        made.append(d)
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-R", "+i", str(d)], check=True, capture_output=True)
        else:
            subprocess.run(["chmod", "-R", "a-w", str(d)], check=True)
        probe = d / "probe"
        with pytest.raises(OSError):
            probe.mkdir()

    yield make
    for d in made:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-R", "-i", str(d)], check=True, capture_output=True)
        subprocess.run(["chmod", "-R", "u+w", str(d)], check=True)


def test_a_read_only_cache_is_refused_clearly(registry: Any, registry_config: Callable[..., Path], tmp_path: Path,
                                             run_cli: Callable[..., Any], read_only: Callable[[Path], None]) -> None:
    registry_config(registry)
    with Client() as c:
        for spec in (BASE, MID):
            c.publish(build_spec(tmp_path / "built", spec), spec.package_id)
    r = run_cli("fetch", "test:base@=1.0.0", "-o", tmp_path / "first.wasm")
    assert r.code == 0, r.err
    cache = tmp_path / "cache"
    before = _tree(cache)
    read_only(cache)

    # an exact fetch of a cached release only reads the cache: it works
    r = run_cli("fetch", "test:base@=1.0.0", "-o", tmp_path / "again.wasm")
    assert r.code == 0, r.err
    assert (tmp_path / "again.wasm").read_bytes() == (tmp_path / "first.wasm").read_bytes()

    # anything the cache does not hold yet must be written to it: refused, clearly
    for args in (["fetch", "test:mid@=2.0.0", "-o", tmp_path / "mid.wasm"],
                 ["fetch", "test:base@1", "-o", tmp_path / "base.wasm"]):
        r = run_cli(*args)
        assert r.code == 8, r.err
        first, *rest = r.err.splitlines()
        assert first == (f"error[io-error]: the cache directory {str(cache)!r} is read-only, and pkgloader writes "
                         "to its cache (a cache shared read-only is not supported)"), r.err
        assert rest[-1] == ("  hint: give each runner a writable cache (--cache-dir or PKGLOADER_CACHE_DIR), or share "
                            "packages read-only as an OCI layout: 'pkgloader export DIR', then 'pkgloader import DIR' "
                            "or an oci-layout registry (see README, CI and fleets)"), r.err
        assert "Traceback" not in r.err
    assert not (tmp_path / "mid.wasm").exists() and not (tmp_path / "base.wasm").exists()
    assert _tree(cache) == before

    # import into it: the same error
    r = run_cli("export", tmp_path / "layout", "test:mid@=2.0.0", "--cache-dir", tmp_path / "export-cache")
    assert r.code == 0, r.err
    r = run_cli("import", tmp_path / "layout")
    assert r.code == 8 and "is read-only, and pkgloader writes to its cache" in r.err, r.err
    assert _tree(cache) == before
