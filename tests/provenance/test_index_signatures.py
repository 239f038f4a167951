"""Signatures on an image index: ``cosign sign IMAGE:TAG`` signs the digest the tag points at,
which for a multi-platform image (a wasm entry among linux ones, as docker buildx builds them)
is the index, not the wasm manifest pkgloader resolves. Against the real registry on loopback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from support.oci import OCI_INDEX, OCI_MANIFEST
from support.signing import digest_of, keyed_bundle, push_legacy, push_referrer, simplesigning_payload


def policy(key: Path) -> str:
    return f'\n[provenance."test:*"]\nmode = "require"\nsigners = [{{ key = "{key}" }}]\n'


@pytest.fixture
def indexed(registry, oci_client, wit_package):  # type: ignore[no-untyped-def]
    """test/pkg:1.0.0 is an image index whose one entry is the wasm manifest."""
    oci = oci_client(registry)
    wasm = wit_package("test", "pkg", "1.0.0")
    art = oci.push_wasm("test/pkg", None, wasm)  # the wasm manifest, by digest only
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": art.manifest_digest, "size": len(art.manifest),
         "platform": {"os": "wasip2", "architecture": "wasm"}}]}).encode()
    index_digest = oci.push_manifest("test/pkg", "1.0.0", body, OCI_INDEX)
    assert index_digest == digest_of(body)
    return oci, art, index_digest, len(body), wasm


def test_a_bundle_on_the_index_verifies_the_release(indexed, registry, registry_config, make_key, run_cli,
                                                   tmp_path) -> None:  # type: ignore[no-untyped-def]
    oci, art, index_digest, index_size, wasm = indexed
    key = make_key()
    push_referrer(oci, "test/pkg", index_digest, index_size, keyed_bundle(key, f"{registry.host}/test/pkg", index_digest))
    registry_config(registry, extra=policy(key.pub_path))
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "out.wasm")
    assert r.code == 0, r.err
    assert (tmp_path / "out.wasm").read_bytes() == wasm.read_bytes()
    # the result is cached under the index it was found on, and found there again
    assert (tmp_path / "cache" / "provenance" / f"{index_digest[7:]}.json").is_file()
    registry.mark()
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "again.wasm")
    assert r.code == 0, r.err
    assert not [p for _, p in registry.requests() if "referrers" in p or "sha256-" in p]
    r = run_cli("verify", "test:pkg@=1.0.0", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["subject"] == index_digest


def test_a_legacy_signature_on_the_index_verifies_the_release(indexed, registry, registry_config, make_key, run_cli,
                                                             tmp_path) -> None:  # type: ignore[no-untyped-def]
    oci, _, index_digest, _, wasm = indexed
    key = make_key()
    payload = simplesigning_payload(f"{registry.host}/test/pkg", index_digest)
    push_legacy(oci, "test/pkg", index_digest, [(payload, key.sign(payload))])
    registry_config(registry, extra=policy(key.pub_path))
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "out.wasm")
    assert r.code == 0, r.err
    assert (tmp_path / "out.wasm").read_bytes() == wasm.read_bytes()


def test_a_signature_on_the_wasm_manifest_is_still_enough(indexed, registry, registry_config, make_key, run_cli,
                                                         tmp_path) -> None:  # type: ignore[no-untyped-def]
    oci, art, _, _, _ = indexed
    key = make_key()
    push_referrer(oci, "test/pkg", art.manifest_digest, len(art.manifest),
                  keyed_bundle(key, f"{registry.host}/test/pkg", art.manifest_digest))
    registry_config(registry, extra=policy(key.pub_path))
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "out.wasm")
    assert r.code == 0, r.err
    assert (tmp_path / "cache" / "provenance" / f"{art.manifest_digest[7:]}.json").is_file()


def test_neither_signed_names_both(indexed, registry, registry_config, make_key, run_cli,
                                  tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, art, index_digest, _, _ = indexed
    key = make_key()
    registry_config(registry, extra=policy(key.pub_path))
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "out.wasm")
    assert r.code == 5
    lines = r.err.splitlines()
    assert lines[0] == f"error[signature-missing]: test:pkg@1.0.0 from {registry.host} has no signature or attestation"
    assert lines[1:3] == [f"  manifest {art.manifest_digest}", f"  nor its image index {index_digest}"]
    assert not (tmp_path / "out.wasm").exists()


def test_a_signature_for_another_index_does_not_count(indexed, registry, registry_config, make_key, run_cli,
                                                     tmp_path) -> None:  # type: ignore[no-untyped-def]
    oci, _, index_digest, index_size, _ = indexed
    key = make_key()
    other = "sha256:" + "ab" * 32
    # a bundle about another digest, attached to this index: the subject check refuses it
    push_referrer(oci, "test/pkg", index_digest, index_size, keyed_bundle(key, f"{registry.host}/test/pkg", other))
    registry_config(registry, extra=policy(key.pub_path))
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "out.wasm")
    assert r.code == 5, r.err
    assert r.err.startswith("error[signature-subject-mismatch]"), r.err
    assert not (tmp_path / "out.wasm").exists()
