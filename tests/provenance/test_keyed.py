"""Keyed signatures in both formats, checked by fetch against the real registry on loopback:
legacy cosign ``.sig`` tags and Sigstore bundle v0.3 referrers in the fallback index."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from support.signing import keyed_bundle, push_legacy, push_referrer, simplesigning_payload


def policy(*keys: Path, mode: str = "require", pattern: str = "test:*") -> str:
    signers = ", ".join(f'{{ key = "{k}" }}' for k in keys)
    return f'\n[provenance."{pattern}"]\nmode = "{mode}"\nsigners = [{signers}]\n'


@pytest.fixture
def published(registry, oci_client, wit_package):  # type: ignore[no-untyped-def]
    oci = oci_client(registry)
    wasm = wit_package("test", "pkg", "1.0.0")
    other = wit_package("test", "pkg", "2.0.0")
    one = oci.push_wasm("test/pkg", "1.0.0", wasm)
    two = oci.push_wasm("test/pkg", "2.0.0", other)
    return oci, one, two, wasm


def cache_files(tmp_path: Path) -> list[str]:
    blobs = tmp_path / "cache" / "blobs"
    return sorted(p.name for p in blobs.rglob("*") if p.is_file()) if blobs.exists() else []


@pytest.mark.parametrize("kind", ["p256", "p384", "ed25519", "rsa"])
def test_legacy_cosign_signature_verifies(published, registry, registry_config, make_key, run_cli, tmp_path, kind) -> None:  # type: ignore[no-untyped-def]
    oci, one, _, wasm = published
    key = make_key(kind)
    payload = simplesigning_payload(f"{registry.host}/test/pkg", one.manifest_digest)
    push_legacy(oci, "test/pkg", one.manifest_digest, [(payload, key.sign(payload))])
    registry_config(registry, extra=policy(key.pub_path))
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "out.wasm")
    assert r.code == 0 and r.err.startswith("fetched test:pkg@1.0.0"), r
    assert (tmp_path / "out.wasm").read_bytes() == wasm.read_bytes()


def test_bundle_referrer_in_fallback_index_verifies(published, registry, registry_config, make_key, run_cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    oci, one, _, wasm = published
    key = make_key()
    push_referrer(oci, "test/pkg", one.manifest_digest, len(one.manifest),
                  keyed_bundle(key, f"{registry.host}/test/pkg", one.manifest_digest))
    registry_config(registry, extra=policy(key.pub_path))
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "out.wasm", "--json")
    assert r.code == 0, r
    assert (tmp_path / "out.wasm").read_bytes() == wasm.read_bytes()
    # the verified result is cached per manifest digest
    assert (tmp_path / "cache" / "provenance" / f"{one.manifest_digest[7:]}.json").is_file()


def test_require_without_signature_is_signature_missing_and_writes_nothing(published, registry, registry_config, make_key,
                                                                           run_cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, one, _, _ = published
    key = make_key()
    cfg = registry_config(registry, extra=policy(key.pub_path))
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "out.wasm")
    assert r.code == 5
    assert r.err == (
        f"error[signature-missing]: test:pkg@1.0.0 from {registry.host} has no signature or attestation\n"
        f"  manifest {one.manifest_digest}\n"
        f"  expected: key {key.pub_path} (policy 'test:*', env {cfg} (from PKGLOADER_CONFIG):9)\n"
        '  hint: ask the publisher to sign it, or set the policy\'s mode to "warn" or "off" (or pass --no-verify) '
        "to accept it unsigned\n")
    assert not (tmp_path / "out.wasm").exists()
    assert cache_files(tmp_path) == []


def test_tampered_bundle_is_signature_invalid(published, registry, registry_config, make_key, run_cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    oci, one, _, _ = published
    key = make_key()
    push_referrer(oci, "test/pkg", one.manifest_digest, len(one.manifest),
                  keyed_bundle(key, "x", one.manifest_digest, tamper=True))
    registry_config(registry, extra=policy(key.pub_path))
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "out.wasm")
    assert r.code == 5
    assert r.err.startswith(f"error[signature-invalid]: the signature of test:pkg@1.0.0 from {registry.host} is invalid\n")
    assert f"found: key {key.hint}: sigstore-bundle (referrer sha256:" in r.err
    assert "the signature does not verify with the key it names" in r.err
    assert not (tmp_path / "out.wasm").exists() and cache_files(tmp_path) == []


def test_tampered_legacy_payload_is_not_accepted(published, registry, registry_config, make_key, run_cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    oci, one, _, _ = published
    key = make_key()
    payload = simplesigning_payload("r/test/pkg", one.manifest_digest)
    push_legacy(oci, "test/pkg", one.manifest_digest, [(payload.replace(b"r/test", b"x/test"), key.sign(payload))])
    registry_config(registry, extra=policy(key.pub_path))
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "out.wasm")
    # a legacy keyed signature names no key: an altered one and another key's look alike
    assert (r.code, r.err.split("]")[0]) == (5, "error[signature-untrusted"), r
    assert "found: an unnamed key: cosign-simplesigning (tag sha256-" in r.err
    assert not (tmp_path / "out.wasm").exists()


def test_garbage_signature_is_signature_invalid(published, registry, registry_config, make_key, run_cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    oci, one, _, _ = published
    key = make_key()
    push_legacy(oci, "test/pkg", one.manifest_digest, [(b"not json", b"x")])
    registry_config(registry, extra=policy(key.pub_path))
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "out.wasm")
    assert r.code == 5 and r.err.startswith("error[signature-invalid]"), r
    assert "the simplesigning payload is not JSON" in r.err


def test_wrong_key_is_signature_untrusted(published, registry, registry_config, make_key, run_cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    oci, one, _, _ = published
    signer, accepted = make_key(), make_key()
    push_referrer(oci, "test/pkg", one.manifest_digest, len(one.manifest), keyed_bundle(signer, "x", one.manifest_digest))
    registry_config(registry, extra=policy(accepted.pub_path))
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "out.wasm")
    assert r.code == 5
    assert r.err.startswith(f"error[signature-untrusted]: test:pkg@1.0.0 from {registry.host} is signed, but by no accepted signer\n")
    assert f"found: key {signer.hint}: sigstore-bundle" in r.err
    assert f"expected: key {accepted.pub_path}" in r.err
    assert not (tmp_path / "out.wasm").exists()


def test_signature_of_another_digest_is_subject_mismatch(published, registry, registry_config, make_key, run_cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    oci, one, two, _ = published
    key = make_key()
    # a valid signature of 2.0.0 copied next to 1.0.0, in both formats
    push_referrer(oci, "test/pkg", one.manifest_digest, len(one.manifest), keyed_bundle(key, "x", two.manifest_digest))
    payload = simplesigning_payload("r/test/pkg", two.manifest_digest)
    push_legacy(oci, "test/pkg", one.manifest_digest, [(payload, key.sign(payload))])
    registry_config(registry, extra=policy(key.pub_path))
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "out.wasm")
    assert r.code == 5
    assert r.err.startswith(f"error[signature-subject-mismatch]: the signature of test:pkg@1.0.0 from {registry.host} "
                            "by an accepted signer covers another manifest\n")
    assert f"it covers {two.manifest_digest}, not {one.manifest_digest}" in r.err
    assert not (tmp_path / "out.wasm").exists()


def test_wrong_artifact_type_in_the_index_is_not_trusted(published, registry, registry_config, make_key, run_cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    oci, one, _, _ = published
    key = make_key()
    # cosign's fallback entries on ghcr carry the empty-config type: the manifest's own type decides
    push_referrer(oci, "test/pkg", one.manifest_digest, len(one.manifest), keyed_bundle(key, "x", one.manifest_digest),
                  index_artifact_type="application/vnd.oci.empty.v1+json")
    registry_config(registry, extra=policy(key.pub_path))
    assert run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "out.wasm").code == 0


def test_two_signatures_one_valid(published, registry, registry_config, make_key, run_cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    oci, one, _, _ = published
    stranger, key = make_key(), make_key("ed25519")
    push_referrer(oci, "test/pkg", one.manifest_digest, len(one.manifest), keyed_bundle(stranger, "x", one.manifest_digest))
    push_referrer(oci, "test/pkg", one.manifest_digest, len(one.manifest), keyed_bundle(key, "x", one.manifest_digest))
    registry_config(registry, extra=policy(key.pub_path))
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "out.wasm", "--json")
    assert r.code == 0, r


def test_legacy_tag_is_read_when_referrers_do_not_meet_the_policy(published, registry, registry_config, make_key, run_cli,
                                                                  tmp_path) -> None:  # type: ignore[no-untyped-def]
    oci, one, _, _ = published
    stranger, key = make_key(), make_key()
    push_referrer(oci, "test/pkg", one.manifest_digest, len(one.manifest), keyed_bundle(stranger, "x", one.manifest_digest))
    payload = simplesigning_payload("r/test/pkg", one.manifest_digest)
    push_legacy(oci, "test/pkg", one.manifest_digest, [(b"{}", b"junk"), (payload, key.sign(payload))])
    registry_config(registry, extra=policy(key.pub_path))
    assert run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "out.wasm").code == 0


def test_warn_mode_warns_and_fetches(published, registry, registry_config, make_key, run_cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    key = make_key()
    registry_config(registry, extra=policy(key.pub_path, mode="warn"))
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "out.wasm")
    assert r.code == 0
    assert r.err == (f"warning: provenance of test:pkg@1.0.0 from {registry.host} not verified (policy 'test:*', mode warn): "
                     f"signature-missing: test:pkg@1.0.0 from {registry.host} has no signature or attestation\n"
                     f"fetched test:pkg@1.0.0 ({{}}) from {registry.host}\n".format(r.err.split("(")[-1].split(")")[0]))
    assert (tmp_path / "out.wasm").is_file()


def test_no_verify_and_verify_flags(published, registry, registry_config, make_key, run_cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    key = make_key()
    registry_config(registry, extra=policy(key.pub_path, mode="off"))
    assert run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "a.wasm").code == 0
    r = run_cli("fetch", "test:pkg@=2.0.0", "-o", tmp_path / "b.wasm", "--verify")
    assert (r.code, r.err.split("]")[0]) == (5, "error[signature-missing"), r
    registry_config(registry, extra=policy(key.pub_path, mode="require"))
    assert run_cli("fetch", "test:pkg@=2.0.0", "-o", tmp_path / "b.wasm", "--no-verify").code == 0


def test_package_policy_beats_namespace_policy_and_registry_scope(published, registry, registry_config, make_key, run_cli,
                                                                 tmp_path) -> None:  # type: ignore[no-untyped-def]
    key = make_key()
    extra = policy(key.pub_path) + '\n[provenance."test:pkg"]\nmode = "off"\n' \
        + '\n[provenance."*"]\nmode = "require"\nregistry = "elsewhere.example"\n'
    registry_config(registry, extra=extra)
    assert run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "a.wasm").code == 0


def test_warm_fetch_of_a_verified_package_makes_no_request(published, registry, registry_config, make_key, run_cli,
                                                           tmp_path) -> None:  # type: ignore[no-untyped-def]
    oci, one, _, _ = published
    key = make_key()
    push_referrer(oci, "test/pkg", one.manifest_digest, len(one.manifest), keyed_bundle(key, "x", one.manifest_digest))
    registry_config(registry, extra=policy(key.pub_path))
    assert run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "a.wasm").code == 0
    registry.mark()
    # the CLI's warm path, and the full path (Client) with the verified result cached
    assert run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "b.wasm").code == 0
    from pkgloader import Client

    with Client() as c:
        c.fetch("test:pkg@=1.0.0", tmp_path / "c.wasm")
    assert [r for r in registry.requests() if r[1] != "/v2/"] == []


def test_library_clients_enforce_and_take_verify(published, registry, registry_config, make_key, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from pkgloader import AsyncClient, Client, SignatureMissing

    oci, one, _, wasm = published
    key = make_key()
    registry_config(registry, extra=policy(key.pub_path))
    with Client() as c, pytest.raises(SignatureMissing) as ei:
        c.fetch("test:pkg@=1.0.0", tmp_path / "a.wasm")
    assert ei.value.exit_code == 5 and ei.value.code == "signature-missing"

    async def run() -> None:
        async with AsyncClient() as ac:
            with pytest.raises(SignatureMissing):
                await ac.fetch("test:pkg@=1.0.0", tmp_path / "b.wasm")
        async with AsyncClient(verify=False) as ac:
            await ac.fetch("test:pkg@=1.0.0", tmp_path / "b.wasm")

    asyncio.run(run())
    assert not (tmp_path / "a.wasm").exists() and (tmp_path / "b.wasm").read_bytes() == wasm.read_bytes()
    push_referrer(oci, "test/pkg", one.manifest_digest, len(one.manifest), keyed_bundle(key, "x", one.manifest_digest))
    with Client() as c:
        c.fetch("test:pkg@=1.0.0", tmp_path / "a.wasm")
        assert c.engine.verified[("test:pkg", "1.0.0")].signer == f"key {key.pub_path}"


def test_an_up_to_date_output_is_still_checked_against_the_policy(published, registry, registry_config, make_key,  # type: ignore[no-untyped-def]
                                                                  run_cli, tmp_path) -> None:
    """A re-run whose output already holds the bytes is 'up to date' only when the policy
    holds: an unsigned package under 'require' is signature-missing, also for --check; the
    file is left as it is."""
    _, _, _, wasm = published
    out = tmp_path / "out.wasm"
    out.write_bytes(wasm.read_bytes())  # (as an earlier fetch without the policy left it)
    key = make_key()
    registry_config(registry, extra=policy(key.pub_path))
    for extra in ((), ("--check",)):
        r = run_cli("fetch", "test:pkg@=1.0.0", "-o", out, *extra)
        assert (r.code, r.err.split("]")[0]) == (5, "error[signature-missing"), (extra, r)
        assert out.read_bytes() == wasm.read_bytes()
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", out, "--no-verify")
    assert r.code == 0 and r.err.startswith("up to date test:pkg@1.0.0"), r
