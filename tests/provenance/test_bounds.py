"""Discovery stays bounded on a registry that lists too much, and the signature parsers turn
any input into a candidate (never an exception)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from pkgloader._provenance._formats import parse_bundle, parse_simplesigning
from support.referrers import ReferrersFront


def test_referrer_pages_and_candidates_are_bounded(registry, oci_client, wit_package, registry_config, make_key, run_cli,
                                                   tmp_path) -> None:  # type: ignore[no-untyped-def]
    with ReferrersFront(registry, page_size=1) as front:
        oci = oci_client(registry, base_url=front.url)
        one = oci.push_wasm("test/pkg", "1.0.0", wit_package("test", "pkg", "1.0.0"))
        # 40 listed referrers that do not exist, one per page
        front.referrers[("test/pkg", one.manifest_digest)] = [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + f"{i:064x}", "size": 10,
             "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json"} for i in range(40)]
        key = make_key()
        registry_config(front, extra=f'\n[provenance."test:*"]\nsigners = [{{ key = "{key.pub_path}" }}]\n')
        front.requests.clear()
        r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "out.wasm")
        assert r.code == 5 and r.err.startswith("error[signature-missing]"), r
        assert "  note: more than 16 referrers pages; the rest were not read\n" in r.err
        gets = [p for m, p in front.requests if m == "GET"]
        assert len([p for p in gets if "/referrers/" in p]) == 16
        assert len([p for p in gets if "/manifests/sha256:" in p]) == 16  # each listed one looked up once
        assert not (tmp_path / "out.wasm").exists()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_bundle_parser_never_raises_on_bytes(data: bytes) -> None:
    c = parse_bundle(data, "x")
    assert c.problem is not None or c.subjects


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                           max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(json_values, st.dictionaries(st.sampled_from(["dev.cosignproject.cosign/signature", "dev.sigstore.cosign/certificate",
                                                     "dev.sigstore.cosign/bundle", "x"]), json_values, max_size=4))
def test_simplesigning_parser_never_raises(payload: object, annotations: dict[str, object]) -> None:
    c = parse_simplesigning(json.dumps(payload).encode(), annotations, "x")
    assert c.problem is not None or c.subjects


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["mediaType", "verificationMaterial", "dsseEnvelope", "messageSignature"]),
                       json_values, max_size=4))
def test_bundle_parser_never_raises_on_bundle_shapes(bundle: dict[str, object]) -> None:
    if "mediaType" in bundle and isinstance(bundle["mediaType"], str):
        bundle["mediaType"] = "application/vnd.dev.sigstore.bundle.v0.3+json"
    c = parse_bundle(json.dumps(bundle).encode(), "x")
    assert c.problem is not None or c.subjects
