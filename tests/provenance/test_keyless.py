"""Keyless Sigstore bundles verified offline by sigstore-python against a trusted root the
tests build (tests/support/sigstore_root.py: our own Fulcio-like CA, CT log and Rekor-like log
keys), attached to packages on the real registry."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from support.config import write_config
from support.signing import keyed_bundle, push_referrer
from support.sigstore_root import TestSigstore

ISSUER = "https://token.actions.githubusercontent.com"
REPO = "https://github.com/test-org/pkgs"
IDENTITY = f"{REPO}/.github/workflows/release.yml@refs/tags/v1.0.0"


@pytest.fixture
def sigstore_root(tmp_path: Path) -> TestSigstore:
    return TestSigstore(tmp_path / "sigstore")


@pytest.fixture
def published(registry, oci_client, wit_package):  # type: ignore[no-untyped-def]
    oci = oci_client(registry)
    one = oci.push_wasm("test/pkg", "1.0.0", wit_package("test", "pkg", "1.0.0"))
    two = oci.push_wasm("test/pkg", "2.0.0", wit_package("test", "pkg", "2.0.0"))
    return oci, one, two


def keyless_policy(root: TestSigstore, signer: str = f'{{ issuer = "{ISSUER}", source_repository = "{REPO}" }}') -> str:
    return f'\n[provenance."test:*"]\nmode = "require"\ntrusted_root = "{root.trusted_root}"\nsigners = [{signer}]\n'


def test_keyless_bundle_verifies(published, registry, registry_config, sigstore_root, run_cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    oci, one, _ = published
    push_referrer(oci, "test/pkg", one.manifest_digest, len(one.manifest),
                  sigstore_root.keyless_bundle(one.manifest_digest, identity=IDENTITY, issuer=ISSUER, source_repository=REPO))
    registry_config(registry, extra=keyless_policy(sigstore_root))
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "out.wasm")
    assert r.code == 0, r
    r = run_cli("verify", "test:pkg@1.0.0")
    assert r.code == 0, r
    lines = r.out.splitlines()
    assert lines[1] == "  format:    sigstore-bundle (https://slsa.dev/provenance/v1)"
    assert lines[2] == f"  signer:    keyless issuer {ISSUER}, source repository {REPO}"
    assert lines[3] == f"  found:     keyless issuer {ISSUER}, identity {IDENTITY}, source repository {REPO}"
    assert lines[6] == "  log entry: 0"
    assert run_cli("verify", "test:pkg@1.0.0", "--identity", IDENTITY, "--issuer", ISSUER).code == 0
    r = run_cli("verify", "test:pkg@1.0.0", "--identity", IDENTITY + "x", "--issuer", ISSUER)
    assert r.code == 5 and r.err.startswith("error[signature-untrusted]")


def test_keyless_identity_not_accepted(published, registry, registry_config, sigstore_root, run_cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    oci, one, _ = published
    other = "https://github.com/someone/else/.github/workflows/x.yml@refs/heads/main"
    push_referrer(oci, "test/pkg", one.manifest_digest, len(one.manifest),
                  sigstore_root.keyless_bundle(one.manifest_digest, identity=other, issuer=ISSUER,
                                               source_repository="https://github.com/someone/else"))
    registry_config(registry, extra=keyless_policy(sigstore_root))
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "out.wasm")
    assert r.code == 5
    assert r.err.startswith(f"error[signature-untrusted]: test:pkg@1.0.0 from {registry.host} is signed, but by no accepted signer\n")
    assert (f"  found: keyless issuer {ISSUER}, identity {other}, source repository https://github.com/someone/else: "
            "sigstore-bundle (referrer sha256:") in r.err
    assert f"  expected: keyless issuer {ISSUER}, source repository {REPO} (policy 'test:*'" in r.err
    assert not (tmp_path / "out.wasm").exists()


def test_keyless_log_entry_signed_by_another_key_is_invalid(published, registry, registry_config, sigstore_root, run_cli,
                                                            tmp_path) -> None:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.asymmetric import ec

    oci, one, _ = published
    push_referrer(oci, "test/pkg", one.manifest_digest, len(one.manifest),
                  sigstore_root.keyless_bundle(one.manifest_digest, identity=IDENTITY, issuer=ISSUER, source_repository=REPO,
                                               log_key=ec.generate_private_key(ec.SECP256R1())))
    registry_config(registry, extra=keyless_policy(sigstore_root))
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "out.wasm")
    assert r.code == 5 and r.err.startswith(f"error[signature-invalid]: the signature of test:pkg@1.0.0 from {registry.host} "
                                            "is invalid\n"), r
    assert "sigstore verification failed: invalid log entry" in r.err


def test_keyless_against_another_trusted_root_is_invalid(published, registry, registry_config, sigstore_root, run_cli,
                                                         tmp_path) -> None:  # type: ignore[no-untyped-def]
    oci, one, _ = published
    push_referrer(oci, "test/pkg", one.manifest_digest, len(one.manifest),
                  sigstore_root.keyless_bundle(one.manifest_digest, identity=IDENTITY, issuer=ISSUER, source_repository=REPO))
    registry_config(registry, extra=keyless_policy(TestSigstore(tmp_path / "other-root")))
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "out.wasm")
    assert r.code == 5 and r.err.startswith("error[signature-invalid]"), r


def test_keyless_signature_of_another_digest_is_subject_mismatch(published, registry, registry_config, sigstore_root,
                                                                 run_cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    oci, one, two = published
    push_referrer(oci, "test/pkg", one.manifest_digest, len(one.manifest),
                  sigstore_root.keyless_bundle(two.manifest_digest, identity=IDENTITY, issuer=ISSUER, source_repository=REPO))
    registry_config(registry, extra=keyless_policy(sigstore_root))
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "out.wasm")
    assert r.code == 5 and r.err.startswith("error[signature-subject-mismatch]"), r


def test_builtin_wasi_policy_accepts_the_wasi_workflow(registry, oci_client, wit_package, sigstore_root, run_cli,
                                                       tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    oci = oci_client(registry)
    one = oci.push_wasm("wasi/http", "0.2.9", wit_package("wasi", "http", "0.2.9"))
    wasi = "https://github.com/WebAssembly/WASI"
    push_referrer(oci, "wasi/http", one.manifest_digest, len(one.manifest), sigstore_root.keyless_bundle(
        one.manifest_digest, identity=f"{wasi}/.github/workflows/publish-proposal.yml@refs/tags/v0.2.9", issuer=ISSUER,
        source_repository=wasi))
    # the built-in signers, raised to require, for this registry, against the tests' trusted root
    f = write_config(tmp_path, registry, namespace="wasi", extra=f'''
        [provenance."wasi:*"]
        mode = "require"
        registry = "*"
        trusted_root = "{sigstore_root.trusted_root}"
        ''')
    monkeypatch.setenv("PKGLOADER_CONFIG", str(f))
    monkeypatch.setenv("PKGLOADER_CACHE_DIR", str(tmp_path / "cache"))
    r = run_cli("fetch", "wasi:http@=0.2.9", "-o", tmp_path / "out.wasm")
    assert r.code == 0, r
    shown = run_cli("config", "show", "--origin").out
    assert 'mode = "require"' in shown and "signers = [{ issuer" in shown and "# built-in default" in shown
    # another workflow of the WASI repository is not the publish workflow
    two = oci.push_wasm("wasi/http", "0.2.10", wit_package("wasi", "http", "0.2.10"))
    push_referrer(oci, "wasi/http", two.manifest_digest, len(two.manifest), sigstore_root.keyless_bundle(
        two.manifest_digest, identity=f"{wasi}/.github/workflows/ci.yml@refs/heads/main", issuer=ISSUER,
        source_repository=wasi))
    r = run_cli("fetch", "wasi:http@=0.2.10", "-o", tmp_path / "out2.wasm")
    assert r.code == 5 and r.err.startswith("error[signature-untrusted]"), r


def test_without_sigstore_installed_keyless_is_untrusted_with_a_hint(published, registry, registry_config, sigstore_root,
                                                                      run_cli, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    oci, one, _ = published
    push_referrer(oci, "test/pkg", one.manifest_digest, len(one.manifest),
                  sigstore_root.keyless_bundle(one.manifest_digest, identity=IDENTITY, issuer=ISSUER, source_repository=REPO))
    registry_config(registry, extra=keyless_policy(sigstore_root))
    for name in ("sigstore", "sigstore.models", "sigstore.verify"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails as if not installed
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "out.wasm")
    assert r.code == 5
    assert r.err.startswith(f"error[signature-untrusted]: the signature of test:pkg@1.0.0 from {registry.host} cannot be checked\n")
    assert "sigstore-python is not installed" in r.err
    assert r.err.endswith("  hint: keyless signatures need the extra: pip install 'pkgloader[sigstore]'\n")


def test_sigstore_is_imported_only_for_keyless_signers(published, registry, registry_config, make_key, tmp_path) -> None:  # type: ignore[no-untyped-def]
    oci, one, _ = published
    key = make_key()
    push_referrer(oci, "test/pkg", one.manifest_digest, len(one.manifest), keyed_bundle(key, "x", one.manifest_digest))
    registry_config(registry, extra=f'\n[provenance."test:*"]\nmode = "require"\nsigners = [{{ key = "{key.pub_path}" }}]\n')
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "pkgloader", "fetch", "test:pkg@=1.0.0", "-o",
                          str(tmp_path / "out.wasm")], capture_output=True, text=True, env=dict(os.environ), timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
    assert "pkgloader._provenance._verify" in imported
    assert not [m for m in imported if m.startswith("sigstore") or m == "pkgloader._provenance._keyless"]


def test_legacy_keyless_cosign_signature(published, registry, registry_config, sigstore_root, run_cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.asymmetric import ec

    from support.signing import push_legacy, simplesigning_payload

    oci, one, two = published
    payload = simplesigning_payload(f"{registry.host}/test/pkg", one.manifest_digest)
    sig, ann = sigstore_root.legacy_signature(payload, identity=IDENTITY, issuer=ISSUER, source_repository=REPO)
    push_legacy(oci, "test/pkg", one.manifest_digest, [(payload, sig, ann)])
    registry_config(registry, extra=keyless_policy(sigstore_root))
    r = run_cli("verify", "test:pkg@1.0.0")
    assert r.code == 0, r
    assert r.out.splitlines()[1] == "  format:    cosign-simplesigning"
    assert r.out.splitlines()[6] == "  log entry: 7"
    # a SET by another log key, and a payload that is not the one the log recorded
    payload2 = simplesigning_payload(f"{registry.host}/test/pkg", two.manifest_digest)
    sig2, ann2 = sigstore_root.legacy_signature(payload2, identity=IDENTITY, issuer=ISSUER, source_repository=REPO,
                                                log_key=ec.generate_private_key(ec.SECP256R1()))
    sig3, ann3 = sigstore_root.legacy_signature(payload2 + b" ", identity=IDENTITY, issuer=ISSUER, source_repository=REPO)
    push_legacy(oci, "test/pkg", two.manifest_digest, [(payload2, sig2, ann2), (payload2, sig3, ann3)])
    r = run_cli("fetch", "test:pkg@=2.0.0", "-o", tmp_path / "out.wasm")
    assert r.code == 5 and r.err.startswith("error[signature-invalid]"), r
    assert "the Rekor signed entry timestamp does not verify with the trusted root's log keys" in r.err
    assert "the Rekor entry does not record this payload, signature and certificate" in r.err
