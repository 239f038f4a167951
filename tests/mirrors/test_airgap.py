"""Air gaps: export the lock's packages as an OCI image layout, import it on a machine with
no registry, read a layout as a registry backend, and push it with skopeo into a registry."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any, Callable

import pytest

from pkgloader import Client
from support.config import write_config
from support.registry import find_binary
from support.wit import WitSpec, build_spec

BASE = WitSpec("test", "base", "1.0.0")
MID = WitSpec("test", "mid", "2.0.0", deps=(BASE,))
REF_NAME = "org.opencontainers.image.ref.name"


@pytest.fixture
def project(registry: Any, registry_config: Callable[..., Path], tmp_path: Path, run_cli: Callable[..., Any],
            monkeypatch: pytest.MonkeyPatch) -> Path:
    """A synced project whose lock holds test:mid@2.0.0 and test:base@1.0.0 from ``registry``."""
    registry_config(registry)
    with Client() as c:
        for spec in (BASE, MID):
            c.publish(build_spec(tmp_path / "built", spec), spec.package_id)
    proj = tmp_path / "proj"
    (proj / "wit").mkdir(parents=True)
    (proj / "wit" / "world.wit").write_text("package my:app@0.1.0;\n\nworld app {\n  import test:mid/api@2.0.0;\n}\n")
    monkeypatch.chdir(proj)
    r = run_cli("sync", "-q")
    assert r.code == 0, r.err
    return proj


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _digest(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_export_writes_a_byte_stable_oci_layout_of_the_lock(project: Path, run_cli: Callable[..., Any],
                                                            tmp_path: Path) -> None:
    r = run_cli("export", tmp_path / "out1", "--json")
    assert r.code == 0, r.err
    report = r.json()
    assert [e["ref_name"] for e in report["exported"]] == ["test/base:1.0.0", "test/mid:2.0.0"]  # type: ignore[index]
    out1 = tmp_path / "out1"
    assert (out1 / "oci-layout").read_bytes() == b'{"imageLayoutVersion":"1.0.0"}'
    index = json.loads((out1 / "index.json").read_bytes())
    assert [m[("annotations")][REF_NAME] for m in index["manifests"]] == ["test/base:1.0.0", "test/mid:2.0.0"]
    deps = project / "wit" / "deps"
    for name in ("test-base-1.0.0.wasm", "test-mid-2.0.0.wasm"):
        hexpart = _digest(deps / name).partition(":")[2]
        assert (out1 / "blobs" / "sha256" / hexpart).read_bytes() == (deps / name).read_bytes()
    for m in index["manifests"]:  # the registry's own manifests, byte for byte, with their config blobs
        manifest = (out1 / "blobs" / "sha256" / m["digest"].partition(":")[2]).read_bytes()
        assert _digest(out1 / "blobs" / "sha256" / m["digest"].partition(":")[2]) == m["digest"]
        config = json.loads(manifest)["config"]["digest"]
        assert (out1 / "blobs" / "sha256" / config.partition(":")[2]).is_file()
    # the same lock, another cache, another directory: the same bytes
    r = run_cli("export", tmp_path / "out2", "-q", "--cache-dir", tmp_path / "other-cache")
    assert r.code == 0, r.err
    assert _tree(tmp_path / "out2") == _tree(out1)


def test_import_fills_the_cache_for_a_frozen_offline_sync_without_any_registry(
        project: Path, registry: Any, run_cli: Callable[..., Any], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_cli("export", tmp_path / "layout", "-q").code == 0
    wanted = _tree(project / "wit" / "deps")
    registry.stop()  # the air-gapped side: no registry at all
    shutil.rmtree(project / "wit" / "deps")
    monkeypatch.setenv("PKGLOADER_CACHE_DIR", str(tmp_path / "airgap-cache"))
    r = run_cli("sync", "--frozen")
    assert r.code == 3 and "offline-cache-miss" in r.err  # nothing cached yet
    r = run_cli("import", tmp_path / "layout", "--json")
    assert r.code == 0, r.err
    assert [(i["package"], i["version"]) for i in r.json()["imported"]] == [  # type: ignore[index]
        ("test:base", "1.0.0"), ("test:mid", "2.0.0")]
    r = run_cli("sync", "--frozen", "--offline")
    assert r.code == 0, r.err
    assert _tree(project / "wit" / "deps") == wanted


def test_import_verifies_every_blob_and_keeps_nothing_of_a_damaged_layout(
        project: Path, run_cli: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_cli("export", tmp_path / "layout", "-q").code == 0
    layer = _digest(project / "wit" / "deps" / "test-base-1.0.0.wasm").partition(":")[2]
    blob = tmp_path / "layout" / "blobs" / "sha256" / layer
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))
    monkeypatch.setenv("PKGLOADER_CACHE_DIR", str(tmp_path / "airgap-cache"))
    r = run_cli("import", tmp_path / "layout")
    assert r.code == 5, r.err
    assert r.err.startswith(f"error[digest-mismatch]: blob sha256:{layer} of the OCI layout {tmp_path / 'layout'} "
                            "does not match its digest\n")
    assert not (tmp_path / "airgap-cache" / "releases").exists()


def test_an_oci_layout_is_a_read_only_registry_backend(project: Path, run_cli: Callable[..., Any], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_cli("export", tmp_path / "layout", "-q").code == 0
    cfg = tmp_path / "layout.toml"
    cfg.write_text(textwrap.dedent(f"""
        [namespace_registries]
        test = "files"
        [registry."files".oci-layout]
        root = "{tmp_path / 'layout'}"
        """))
    monkeypatch.setenv("PKGLOADER_CONFIG", str(cfg))
    monkeypatch.setenv("PKGLOADER_CACHE_DIR", str(tmp_path / "layout-cache"))
    r = run_cli("versions", "test:base", "--json")
    assert r.code == 0, r.err
    assert [v["version"] for v in r.json()["versions"]] == ["1.0.0"]  # type: ignore[index]
    r = run_cli("fetch", "test:mid@2", "-o", tmp_path / "mid.wasm", "--json")
    assert r.code == 0, r.err
    fetched = r.json()["fetched"][0]  # type: ignore[index]
    assert fetched["backend"] == "oci-layout" and fetched["location"] == f"{tmp_path / 'layout'}:test/mid:2.0.0"
    assert (tmp_path / "mid.wasm").read_bytes() == (project / "wit" / "deps" / "test-mid-2.0.0.wasm").read_bytes()
    r = run_cli("fetch", "test:nothing@1", "-o", tmp_path / "x.wasm")
    assert r.code == 3
    assert r.err.startswith(f"error[package-not-found]: package test:nothing not found in the OCI layout {tmp_path / 'layout'}\n")


def test_skopeo_copies_the_layout_into_a_registry_that_pkgloader_then_serves_from(
        project: Path, registry_factory: Callable[..., Any], run_cli: Callable[..., Any], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_cli("export", tmp_path / "layout", "-q").code == 0
    internal = registry_factory()
    skopeo = find_binary("skopeo")
    for ref in ("test/base:1.0.0", "test/mid:2.0.0"):
        proc = subprocess.run([skopeo, "copy", "--insecure-policy", "--dest-tls-verify=false",
                               f"oci:{tmp_path / 'layout'}:{ref}", f"docker://{internal.host}/{ref}"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
    cfg_dir = tmp_path / "internal"
    cfg_dir.mkdir()
    monkeypatch.setenv("PKGLOADER_CONFIG", str(write_config(cfg_dir, internal)))
    monkeypatch.setenv("PKGLOADER_CACHE_DIR", str(tmp_path / "internal-cache"))
    r = run_cli("fetch", "test:mid@=2.0.0", "test:base@=1.0.0", "-o", f"{tmp_path / 'got'}/", "--json")
    assert r.code == 0, r.err
    index = json.loads((tmp_path / "layout" / "index.json").read_bytes())
    manifests = {m["annotations"][REF_NAME]: m["digest"] for m in index["manifests"]}
    for f in r.json()["fetched"]:  # type: ignore[index]
        ref = f"{f['package'].replace(':', '/')}:{f['version']}"
        assert f["manifest_digest"] == manifests[ref]  # skopeo pushed the exported manifests unchanged
        name = f"{f['package'].replace(':', '-')}-{f['version']}.wasm"
        assert Path(f["path"]).read_bytes() == (project / "wit" / "deps" / name).read_bytes()
