"""``publish --sign-key`` round trips on the real registry: the keyed bundle goes into the
fallback index (read-modify-write) where the registry lacks the referrers API, and is found by
the API through the loopback front where it has one."""

from __future__ import annotations

import json
from pathlib import Path

from support.referrers import ReferrersFront


def policy(key: Path) -> str:
    return f'\n[provenance."test:*"]\nmode = "require"\nsigners = [{{ key = "{key}" }}]\n'


def test_publish_signed_then_fetch_verifies(registry, registry_config, oci_client, wit_package, make_key, run_cli,
                                            tmp_path) -> None:  # type: ignore[no-untyped-def]
    key, second = make_key(), make_key("ed25519")
    registry_config(registry, extra=policy(key.pub_path))
    wasm = wit_package("test", "pkg", "1.0.0")
    r = run_cli("publish", wasm, "--package", "test:pkg@1.0.0", "--sign-key", key.priv_path, "--json")
    assert r.code == 0, r
    result = r.json()
    subject = result["manifest_digest"]  # type: ignore[index]
    oci = oci_client(registry)
    index = oci.get_manifest("test/pkg", subject.replace(":", "-")).json
    assert [e["digest"] for e in index["manifests"]] == [result["signature"]]  # type: ignore[index]
    referrer = oci.get_manifest("test/pkg", result["signature"]).json  # type: ignore[index]
    assert referrer["artifactType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert referrer["subject"]["digest"] == subject
    bundle = json.loads(oci.get_blob("test/pkg", referrer["layers"][0]["digest"]))
    assert set(bundle["verificationMaterial"]) == {"publicKey", "tlogEntries"}  # a hint, never the key itself
    assert run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "out.wasm").code == 0

    # a second signature is added to the same index, the first kept
    from pkgloader import Client
    from pkgloader._provenance._keys import load_private_key
    from pkgloader._provenance._publish import sign_published_flow

    with Client() as c:
        source = c._run(registry.host, c.engine._source(c.engine.config.choose_registry("test:pkg").package))
        from pkgloader.backends.oci import PublishResult

        res = PublishResult("test:pkg", "1.0.0", "", subject, "", 0)
        c._run(registry.host, sign_published_flow(c.engine.oci, source, res, load_private_key(second.priv_path)))
    index = oci.get_manifest("test/pkg", subject.replace(":", "-")).json
    assert len(index["manifests"]) == 2 and index["manifests"][0]["digest"] == result["signature"]  # type: ignore[index]
    registry_config(registry, extra=policy(second.pub_path))
    r = run_cli("verify", "test:pkg@1.0.0", "--key", second.pub_path)
    assert r.code == 0, r


def test_publish_with_a_bad_key_publishes_nothing(registry, registry_config, oci_client, wit_package, make_key, run_cli,
                                                  tmp_path) -> None:  # type: ignore[no-untyped-def]
    key = make_key()
    registry_config(registry)
    r = run_cli("publish", wit_package("test", "pkg", "1.0.0"), "--package", "test:pkg@1.0.0", "--sign-key", key.pub_path)
    assert r.code == 2
    assert r.err.startswith(f"error[usage]: the signing key '{key.pub_path}' cannot be used: not a PEM private key")
    assert run_cli("versions", "test:pkg").code == 3


def test_publish_signed_through_the_referrers_api(registry, registry_config, oci_client, wit_package, make_key, run_cli,
                                                  tmp_path) -> None:  # type: ignore[no-untyped-def]
    key = make_key("p384")
    with ReferrersFront(registry) as front:
        registry_config(front, extra=policy(key.pub_path))
        r = run_cli("publish", wit_package("test", "pkg", "1.0.0"), "--package", "test:pkg@1.0.0",
                    "--sign-key", key.priv_path, "--json")
        assert r.code == 0, r
        subject = r.json()["manifest_digest"]  # type: ignore[index]
        # the registry indexes referrers itself (OCI-Subject): no fallback index was written
        assert not [p for m, p in front.requests if m == "PUT" and p.endswith(subject.replace(":", "-"))]
        assert run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "out.wasm").code == 0
