"""Discovery paths: the OCI 1.1 referrers API (through a loopback front, as Debian's
docker-registry 2.8 has no such route), its pages, a registry answering the fallback tag with
the subject itself (GitLab), and the ``verify`` command."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from support.referrers import ReferrersFront
from support.signing import keyed_bundle, push_legacy, push_referrer, simplesigning_payload


def policy(key: Path) -> str:
    return f'\n[provenance."test:*"]\nmode = "require"\nsigners = [{{ key = "{key}" }}]\n'


@pytest.fixture
def front_factory(registry) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    fronts: list[ReferrersFront] = []

    def make(**kw: Any) -> ReferrersFront:
        f = ReferrersFront(registry, **kw).__enter__()
        fronts.append(f)
        return f

    yield make
    for f in fronts:
        f.__exit__(None, None, None)


def test_referrers_api_with_pages(registry, front_factory, oci_client, wit_package, registry_config, make_key, run_cli,
                                  tmp_path) -> None:  # type: ignore[no-untyped-def]
    front = front_factory(page_size=1)
    oci = oci_client(registry, base_url=front.url)
    one = oci.push_wasm("test/pkg", "1.0.0", wit_package("test", "pkg", "1.0.0"))
    stranger, key = make_key(), make_key()
    for k in (stranger, make_key(), key):  # the valid one is on the third page
        push_referrer(oci, "test/pkg", one.manifest_digest, len(one.manifest), keyed_bundle(k, "x", one.manifest_digest),
                      fallback=False)
    registry_config(front, extra=policy(key.pub_path))
    front.requests.clear()
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "out.wasm")
    assert r.code == 0, r
    paths = [p for m, p in front.requests if m == "GET"]
    ref = f"/v2/test/pkg/referrers/{one.manifest_digest}"
    assert [p for p in paths if p.startswith(ref)] == [ref, ref + "?last=1", ref + "?last=2"]
    # the API answered: no fallback tag, no .sig tag
    assert not [p for p in paths if "/manifests/sha256-" in p]


def test_referrers_api_entries_with_a_wrong_artifact_type(registry, front_factory, oci_client, wit_package, registry_config,
                                                          make_key, run_cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    front = front_factory(entry_artifact_type="application/vnd.oci.empty.v1+json")
    oci = oci_client(registry, base_url=front.url)
    one = oci.push_wasm("test/pkg", "1.0.0", wit_package("test", "pkg", "1.0.0"))
    key = make_key()
    push_referrer(oci, "test/pkg", one.manifest_digest, len(one.manifest), keyed_bundle(key, "x", one.manifest_digest),
                  fallback=False)
    registry_config(front, extra=policy(key.pub_path))
    assert run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "out.wasm").code == 0


def test_fallback_tag_answered_with_the_subject_is_detected(registry, front_factory, oci_client, wit_package, registry_config,
                                                            make_key, run_cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    front = front_factory(referrers=False, tag_is_digest=True)
    oci = oci_client(registry, base_url=front.url)
    one = oci.push_wasm("test/pkg", "1.0.0", wit_package("test", "pkg", "1.0.0"))
    key = make_key()
    registry_config(front, extra=policy(key.pub_path))
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "out.wasm")
    assert r.code == 5 and r.err.startswith("error[signature-missing]"), r
    assert (f"  note: the registry answered the fallback tag sha256-{one.manifest_digest[7:]} with the manifest itself "
            "(it resolves such tags as digests); no referrers index there\n") in r.err
    # a legacy signature there is still found
    payload = simplesigning_payload("x", one.manifest_digest)
    push_legacy(oci, "test/pkg", one.manifest_digest, [(payload, key.sign(payload))])
    assert run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "out.wasm").code == 0


def test_verify_command(registry, oci_client, wit_package, registry_config, make_key, run_cli) -> None:  # type: ignore[no-untyped-def]
    oci = oci_client(registry)
    one = oci.push_wasm("test/pkg", "1.0.0", wit_package("test", "pkg", "1.0.0"))
    key, other = make_key(), make_key()
    push_referrer(oci, "test/pkg", one.manifest_digest, len(one.manifest), keyed_bundle(key, "x", one.manifest_digest))
    registry_config(registry)
    r = run_cli("verify", "test:pkg@1.0.0", "--key", key.pub_path)
    assert r.code == 0, r
    lines = r.out.splitlines()
    assert lines[0] == f"test:pkg@1.0.0 ({one.manifest_digest}) from {registry.host}: verified"
    assert lines[1] == "  format:    sigstore-bundle (https://sigstore.dev/cosign/sign/v1)"
    assert lines[2] == f"  signer:    key {key.pub_path}"
    assert lines[3] == f"  found:     key {key.hint} (ecdsa-p256)"
    data = run_cli("verify", "test:pkg@1.0.0", "--key", key.pub_path, "--json").json()
    assert data["format"] == "sigstore-bundle" and data["subject"] == one.manifest_digest  # type: ignore[index]
    r = run_cli("verify", "test:pkg@1.0.0", "--key", other.pub_path)
    assert r.code == 5 and r.err.startswith("error[signature-untrusted]")
    r = run_cli("verify", "test:pkg@1.0.0", "--identity", "someone@example.com")
    assert r.code == 2 and r.err.startswith("error[usage]: --identity and --issuer go together")
    # no policy applies and no signer given: signed, but by no accepted signer
    r = run_cli("verify", "test:pkg@1.0.0")
    assert r.code == 5 and "expected: no signer configured" in r.err
