"""Signatures and attestations go with exported packages: ``export`` copies what the
provenance discovery finds (a Sigstore bundle referrer in the registry's fallback index, a
legacy cosign ``.sig`` tag) into the layout under the referrers tag schema; ``import`` checks
them against the importing config's policy and records the verified result, so a ``require``
policy holds offline, with the registry gone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from pkgloader import Client
from support.signing import key_factory, push_legacy, simplesigning_payload
from support.wit import WitSpec, build_spec

BASE = WitSpec("test", "base", "1.0.0")
MID = WitSpec("test", "mid", "2.0.0", deps=(BASE,))
REF_NAME = "org.opencontainers.image.ref.name"


def _policy(*keys: Path) -> str:
    signers = ", ".join(f'{{ key = "{k}" }}' for k in keys)
    return f'\n[provenance."test:*"]\nmode = "require"\nsigners = [{signers}]\n'


def _use(monkeypatch: pytest.MonkeyPatch, cfg: Path, cache: Path) -> None:
    monkeypatch.setenv("PKGLOADER_CONFIG", str(cfg))
    monkeypatch.setenv("PKGLOADER_CACHE_DIR", str(cache))


def _blobs(cache: Path) -> list[str]:
    d = cache / "blobs"
    return sorted(p.name for p in d.rglob("*") if p.is_file()) if d.exists() else []


def test_export_carries_signatures_and_import_verifies_them_offline(
        registry: Any, registry_config: Callable[..., Path], oci_client: Callable[..., Any], tmp_path: Path,
        run_cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    keys = key_factory(tmp_path)
    bundle_key, cosign_key, stranger = keys(), keys("ed25519"), keys()
    registry_config(registry)
    with Client() as c:
        base = c.publish(build_spec(tmp_path / "built", BASE), BASE.package_id, sign_key=bundle_key.priv_path)
        mid = c.publish(build_spec(tmp_path / "built", MID), MID.package_id)
    payload = simplesigning_payload(f"{registry.host}/test/mid", mid.manifest_digest)
    push_legacy(oci_client(registry), "test/mid", mid.manifest_digest, [(payload, cosign_key.sign(payload))])

    signed = registry_config(registry, extra=_policy(bundle_key.pub_path, cosign_key.pub_path))
    proj = tmp_path / "proj"
    (proj / "wit").mkdir(parents=True)
    (proj / "wit" / "world.wit").write_text("package my:app@0.1.0;\n\nworld app {\n  import test:mid/api@2.0.0;\n}\n")
    monkeypatch.chdir(proj)
    r = run_cli("sync", "-q")
    assert r.code == 0, r.err

    r = run_cli("export", tmp_path / "layout", "--json")
    assert r.code == 0, r.err
    exported = {e["package"]: e for e in r.json()["exported"]}  # type: ignore[index]
    base_tag = base.manifest_digest.replace(":", "-")
    mid_sig = mid.manifest_digest.replace(":", "-") + ".sig"
    assert exported["test:base"]["signatures"] == [f"test/base:{base_tag}"]
    assert exported["test:mid"]["signatures"] == [f"test/mid:{mid_sig}"]
    layout = tmp_path / "layout"
    index = json.loads((layout / "index.json").read_bytes())
    names = [m["annotations"][REF_NAME] for m in index["manifests"]]
    assert names == ["test/base:1.0.0", f"test/base:{base_tag}", "test/mid:2.0.0", f"test/mid:{mid_sig}"]
    # the referrers tag schema: an image index of the bundle referrer, which names the package as its subject
    ref_index = json.loads((layout / "blobs" / "sha256" / index["manifests"][1]["digest"][7:]).read_bytes())
    assert ref_index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    (referrer,) = ref_index["manifests"]
    assert referrer["artifactType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    ref_manifest = json.loads((layout / "blobs" / "sha256" / referrer["digest"][7:]).read_bytes())
    assert ref_manifest["subject"]["digest"] == base.manifest_digest
    for d in [ref_manifest["config"], *ref_manifest["layers"]]:
        assert (layout / "blobs" / "sha256" / d["digest"][7:]).is_file()
    first = {p.name: p.read_bytes() for p in sorted(layout.rglob("*")) if p.is_file()}
    r = run_cli("export", tmp_path / "layout2")
    assert r.code == 0, r.err
    assert {p.name: p.read_bytes() for p in sorted((tmp_path / "layout2").rglob("*")) if p.is_file()} == first

    registry.stop()  # the other side of the air gap

    # a policy that accepts neither signer: signature-untrusted, nothing imported
    other = tmp_path / "other.toml"
    other.write_text(signed.read_text().split("\n[provenance.")[0] + _policy(stranger.pub_path))
    _use(monkeypatch, other, tmp_path / "cache-refused")
    r = run_cli("import", layout)
    assert r.code == 5, r.err
    assert "error[signature-untrusted]" in r.err and "test:base@1.0.0" in r.err, r.err
    assert _blobs(tmp_path / "cache-refused") == []

    # the policy of the exporting side: both verified from the layout, recorded in the cache
    _use(monkeypatch, signed, tmp_path / "cache-imported")
    r = run_cli("import", layout, "--json")
    assert r.code == 0, r.err
    imported = {e["package"]: e for e in r.json()["imported"]}  # type: ignore[index]
    assert imported["test:base"]["signed_by"] == f"key {bundle_key.pub_path}"
    assert imported["test:mid"]["signed_by"] == f"key {cosign_key.pub_path}"
    for f in (proj / "wit" / "deps").iterdir():
        f.unlink()
    r = run_cli("sync", "--frozen")
    assert r.code == 0, r.err
    assert sorted(p.name for p in (proj / "wit" / "deps").iterdir()) == ["test-base-1.0.0.wasm", "test-mid-2.0.0.wasm"]
    r = run_cli("fetch", "test:mid@=2.0.0", "-o", tmp_path / "mid.wasm", "--offline")
    assert r.code == 0, r.err
