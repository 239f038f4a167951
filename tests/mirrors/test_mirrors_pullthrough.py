"""Registry mirrors against a real pull-through cache: a second docker-registry in proxy mode
in front of the test registry (support/pullthrough.py).

pkgloader reaches the origin through a FaultProxy ("front"), so every request pkgloader
makes to the origin is counted there; the pull-through mirror talks to the origin directly.
"""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from pkgloader import Client
from support.config import write_config
from support.proxy import FaultProxy
from support.pullthrough import PullThroughRegistry, restart
from support.wit import WitSpec, build_spec

BASE = WitSpec("test", "base", "1.0.0")
MID = WitSpec("test", "mid", "2.0.0", deps=(BASE,))


@pytest.fixture
def origin(registry_factory: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The origin registry with test:base@1.0.0 and test:mid@2.0.0 (which uses base)."""
    reg = registry_factory()
    cfg = write_config(tmp_path / "publish", reg) if (tmp_path / "publish").mkdir() is None else None
    monkeypatch.setenv("PKGLOADER_CONFIG", str(cfg))
    monkeypatch.setenv("PKGLOADER_CACHE_DIR", str(tmp_path / "publish-cache"))
    with Client() as c:
        for spec in (BASE, MID):
            c.publish(build_spec(tmp_path / "built", spec), spec.package_id)
    return reg


@pytest.fixture
def mirror(origin: Any, registry_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PullThroughRegistry]:
    m = PullThroughRegistry(tmp_path_factory.mktemp("mirror"), binary=registry_binary, remote_url=origin.url)
    with m:
        yield m


@pytest.fixture
def front(origin: Any) -> Iterator[FaultProxy]:
    with FaultProxy(origin) as proxy:
        yield proxy


def _project(root: Path) -> Path:
    wit = root / "wit"
    wit.mkdir(parents=True)
    (wit / "world.wit").write_text("package my:app@0.1.0;\n\nworld app {\n  import test:mid/api@2.0.0;\n}\n")
    return root


def _config(tmp_path: Path, front: FaultProxy, mirrors: list[str], extra: str = "") -> Path:
    d = tmp_path / f"cfg{len(list(tmp_path.glob('cfg*')))}"
    d.mkdir()
    lines = "mirrors = [" + ", ".join(json.dumps(m) for m in mirrors) + "]\n"
    return write_config(d, front, extra=lines + textwrap.dedent(extra))


def _sync(run_cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, cfg: Path, cache: Path, *args: str) -> Any:
    monkeypatch.setenv("PKGLOADER_CONFIG", str(cfg))
    monkeypatch.setenv("PKGLOADER_CACHE_DIR", str(cache))
    return run_cli("sync", *args)


def _deps_ok(proj: Path) -> None:
    deps = proj / "wit" / "deps"
    names = sorted(p.name for p in deps.iterdir())
    assert names == ["test-base-1.0.0.wasm", "test-mid-2.0.0.wasm"]
    lock = (proj / "pkgloader.lock").read_text()
    for name in names:
        digest = "sha256:" + hashlib.sha256((deps / name).read_bytes()).hexdigest()
        assert digest in lock


def test_pull_through_cold_then_origin_down_then_mirror_down_then_corrupt_mirror(
        origin: Any, mirror: PullThroughRegistry, front: FaultProxy, run_cli: Callable[..., Any], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, fault_proxy: Callable[..., FaultProxy]) -> None:
    proj = _project(tmp_path / "proj")
    monkeypatch.chdir(proj)
    cfg = _config(tmp_path, front, [mirror.host])

    # 1. cold sync through the mirror: tags and manifests by tag from the origin, content from the mirror
    front.mark()
    mirror.mark()
    r = _sync(run_cli, monkeypatch, cfg, tmp_path / "cache1", "-v")
    assert r.code == 0, r.err
    _deps_ok(proj)
    assert not [p for _, p in front.requests() if "/blobs/" in p]  # no content from the origin
    assert sorted(p for m, p in mirror.requests() if "/blobs/" in p and m == "GET") != []
    assert f"test:base@1.0.0: content from mirror {mirror.host}" in r.err
    assert f"test:mid@2.0.0: content from mirror {mirror.host}" in r.err

    # 2. with the lock, an empty cache: zero requests to the origin. The mirror resolves the
    # locked versions (checked against the lock's digests) and so caches their tags too
    for f in (proj / "wit" / "deps").iterdir():
        f.unlink()
    front.mark()
    r = _sync(run_cli, monkeypatch, cfg, tmp_path / "cache1b", "--locked")
    assert r.code == 0, r.err
    assert front.requests() == []
    _deps_ok(proj)

    # 3. the origin is down: a locked sync with an empty cache is served by the mirror alone
    origin.stop()
    for f in (proj / "wit" / "deps").iterdir():
        f.unlink()
    front.mark()
    r = _sync(run_cli, monkeypatch, cfg, tmp_path / "cache2", "--locked", "--json")
    assert r.code == 0, r.err
    assert front.requests() == []  # zero requests to the origin
    _deps_ok(proj)
    packages = {p["package"]: p for p in r.json()["packages"]}  # type: ignore[attr-defined]
    assert packages["test:base"]["served_by"] == {"manifest": f"mirror {mirror.host}", "content": f"mirror {mirror.host}"}
    assert packages["test:mid"]["served_by"] == {"manifest": f"mirror {mirror.host}", "content": f"mirror {mirror.host}"}
    # and --frozen (locked and offline) from that cache, no network at all
    r = _sync(run_cli, monkeypatch, cfg, tmp_path / "cache2", "--frozen")
    assert r.code == 0, r.err

    # 4. the mirror is down, the origin back: the origin serves (fallback), one warning for the mirror
    mirror.stop()
    restart(origin)
    front.mark()
    r = _sync(run_cli, monkeypatch, cfg, tmp_path / "cache3", "--locked", "--json")
    assert r.code == 0, r.err
    warnings = [line for line in r.err.splitlines() if line.startswith("warning: mirror")]
    assert len(warnings) == 1, r.err
    assert warnings[0].startswith(f"warning: mirror {mirror.host} failed (network-error: ")
    assert warnings[0].endswith("; skipping it from now on")
    assert [p for _, p in front.requests() if "/blobs/" in p] != []  # the origin served the content
    packages = {p["package"]: p for p in r.json()["packages"]}  # type: ignore[attr-defined]
    assert packages["test:base"]["served_by"]["content"] == f"origin {front.host}"
    _deps_ok(proj)

    # mirror_fallback = false: every mirror down is an error, not a quiet trip to the origin
    nofb = _config(tmp_path, front, [mirror.host], "mirror_fallback = false\n")
    r = _sync(run_cli, monkeypatch, nofb, tmp_path / "cache4", "--locked")
    assert r.code == 6, r.err
    assert "error[mirrors-failed]: every mirror of " in r.err and "mirror_fallback is false" in r.err

    # 5. a mirror serving corrupted content is rejected and skipped; the next mirror serves
    restart(mirror)
    with fault_proxy(mirror) as bad:
        bad.corrupt(r"/blobs/sha256:", offset=20)
        cfg2 = _config(tmp_path, front, [bad.host, mirror.host])
        front.mark()
        r = _sync(run_cli, monkeypatch, cfg2, tmp_path / "cache5", "--locked", "--json")
        assert r.code == 0, r.err
        warnings = [line for line in r.err.splitlines() if line.startswith("warning: mirror")]
        assert len(warnings) == 1, r.err
        assert warnings[0].startswith(f"warning: mirror {bad.host} failed (served ")
        assert "expected sha256:" in warnings[0]
        packages = {p["package"]: p for p in r.json()["packages"]}  # type: ignore[attr-defined]
        assert {p["served_by"]["content"] for p in packages.values()} == {f"mirror {mirror.host}"}
        assert [p for _, p in front.requests() if "/blobs/" in p] == []
        _deps_ok(proj)


def test_lock_and_update_say_which_endpoint_served_each_manifest(
        origin: Any, mirror: PullThroughRegistry, front: FaultProxy, run_cli: Callable[..., Any], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    proj = _project(tmp_path / "proj")
    monkeypatch.chdir(proj)
    cfg = _config(tmp_path, front, [mirror.host])

    # a lock answered from the cache a sync filled asks nobody: no served_by
    r = _sync(run_cli, monkeypatch, cfg, tmp_path / "c1", "--json")
    assert r.code == 0, r.err
    r = run_cli("lock", "--json")
    assert r.code == 0, r.err
    assert all("served_by" not in p for p in r.json()["packages"]), r.out  # type: ignore[index]

    # no lock, an empty cache: tags and manifests by tag from the origin (the mirror does not resolve)
    monkeypatch.setenv("PKGLOADER_CACHE_DIR", str(tmp_path / "c2"))
    (proj / "pkgloader.lock").unlink()
    r = run_cli("lock", "--json")
    assert r.code == 0, r.err
    packages = {p["package"]: p for p in r.json()["packages"]}  # type: ignore[index]
    # lock reads each package's content too (a binary WIT package names what it uses): by digest, from the mirror
    for name in ("test:base", "test:mid"):
        assert packages[name]["served_by"] == {"manifest": f"origin {front.host}", "content": f"mirror {mirror.host}"}

    # with the lock, an empty cache: the locked manifests come from the mirror (checked against
    # the lock's digests), and -v says so
    monkeypatch.setenv("PKGLOADER_CACHE_DIR", str(tmp_path / "c3"))
    front.mark()
    r = run_cli("lock", "--locked", "--json", "-v")
    assert r.code == 0, r.err
    packages = {p["package"]: p for p in r.json()["packages"]}  # type: ignore[index]
    for name in ("test:base", "test:mid"):
        assert packages[name]["served_by"] == {"manifest": f"mirror {mirror.host}", "content": f"mirror {mirror.host}"}
    assert f"test:base@1.0.0: manifest from mirror {mirror.host}" in r.err
    assert f"test:mid@2.0.0: manifest from mirror {mirror.host}" in r.err
    assert front.requests() == []

    # update re-resolves the named package from the origin's tags
    monkeypatch.setenv("PKGLOADER_CACHE_DIR", str(tmp_path / "c4"))
    r = run_cli("update", "test:base", "--json")
    assert r.code == 0, r.err
    packages = {p["package"]: p for p in r.json()["packages"]}  # type: ignore[index]
    assert packages["test:base"]["served_by"] == {"manifest": f"origin {front.host}", "content": f"mirror {mirror.host}"}
