"""Signing helpers for the provenance tests, written from the formats (cosign's SIGNATURE_SPEC
and BUNDLE_SPEC, DSSE), not from pkgloader: keys generated per test, legacy cosign ``.sig``
manifests, keyed Sigstore bundle v0.3 referrers and their fallback index."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from cryptography.hazmat.primitives import hashes, serialization

from support.oci import OciError
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Key:
    private: Any
    pub_path: Path
    priv_path: Path

    def sign(self, data: bytes) -> bytes:
        k = self.private
        if isinstance(k, ec.EllipticCurvePrivateKey):
            return k.sign(data, ec.ECDSA(hashes.SHA384() if k.curve.name == "secp384r1" else hashes.SHA256()))
        if isinstance(k, ed25519.Ed25519PrivateKey):
            return k.sign(data)
        return k.sign(data, padding.PKCS1v15(), hashes.SHA256())

    @property
    def hint(self) -> str:
        der = self.private.public_key().public_bytes(serialization.Encoding.DER,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(hashlib.sha256(der).digest()).decode()


def key_factory(tmp_path: Path) -> Callable[..., Key]:
    """``make("p256"|"p384"|"ed25519"|"rsa")``: a fresh key, PEM files under tmp_path/keys."""
    counter = [0]

    def make(kind: str = "p256") -> Key:
        counter[0] += 1
        if kind == "p256":
            k: Any = ec.generate_private_key(ec.SECP256R1())
        elif kind == "p384":
            k = ec.generate_private_key(ec.SECP384R1())
        elif kind == "ed25519":
            k = ed25519.Ed25519PrivateKey.generate()
        else:
            k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        d = tmp_path / "keys"
        d.mkdir(exist_ok=True)
        pub = d / f"k{counter[0]}-{kind}.pub"
        priv = d / f"k{counter[0]}-{kind}.key"
        pub.write_bytes(k.public_key().public_bytes(serialization.Encoding.PEM,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo))
        priv.write_bytes(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
        return Key(k, pub, priv)

    return make


def simplesigning_payload(repo: str, digest: str) -> bytes:
    return json.dumps({"critical": {"identity": {"docker-reference": repo}, "image": {"docker-manifest-digest": digest},
                                    "type": "cosign container image signature"}, "optional": None}).encode()


def push_legacy(oci: Any, repo: str, subject: str, signatures: list[Any]) -> str:
    """Push the ``sha256-<hex>.sig`` manifest: one simplesigning layer per (payload, signature)
    or (payload, signature, more annotations: a keyless signature's certificate and Rekor SET)."""
    config = b"{}"
    oci.push_blob(repo, config)
    layers = []
    for payload, sig, *more in signatures:
        oci.push_blob(repo, payload)
        annotations = {"dev.cosignproject.cosign/signature": base64.b64encode(sig).decode()}
        annotations.update(more[0] if more else {})
        layers.append({"mediaType": SIMPLESIGNING, "digest": digest_of(payload), "size": len(payload),
                       "annotations": annotations})
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest_of(config),
                           "size": len(config)}, "layers": layers}
    return oci.push_manifest(repo, subject.replace(":", "-") + ".sig", manifest, OCI_MANIFEST)


def pae(ptype: str, body: bytes) -> bytes:
    return b"DSSEv1 %d %s %d %s" % (len(ptype), ptype.encode(), len(body), body)


def keyed_bundle(key: Key, name: str, digest: str, *, predicate: str = "https://sigstore.dev/cosign/sign/v1",
                 tamper: bool = False, hint: str | None = None) -> bytes:
    algo, hexpart = digest.split(":")
    statement = json.dumps({"_type": "https://in-toto.io/Statement/v1", "subject": [{"name": name, "digest": {algo: hexpart}}],
                            "predicateType": predicate, "predicate": {}}).encode()
    sig = key.sign(pae("application/vnd.in-toto+json", statement))
    if tamper:
        statement = statement.replace(b'"predicate": {}', b'"predicate": {"x": 1}')
    return json.dumps({"mediaType": BUNDLE,
                       "verificationMaterial": {"publicKey": {"hint": hint if hint is not None else key.hint}},
                       "dsseEnvelope": {"payload": base64.b64encode(statement).decode(),
                                        "payloadType": "application/vnd.in-toto+json",
                                        "signatures": [{"sig": base64.b64encode(sig).decode(), "keyid": ""}]}}).encode()


def push_referrer(oci: Any, repo: str, subject: str, subject_size: int, bundle: bytes, *, fallback: bool = True,
                  index_artifact_type: str | None = BUNDLE, subject_in_manifest: str | None = None) -> str:
    """Push a bundle referrer manifest (by digest) and, with ``fallback``, add it to the
    ``sha256-<hex>`` index (with ``index_artifact_type`` on the entry, possibly wrong)."""
    oci.push_blob(repo, b"{}")
    oci.push_blob(repo, bundle)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": BUNDLE,
                "config": {"mediaType": EMPTY, "digest": digest_of(b"{}"), "size": 2},
                "layers": [{"mediaType": BUNDLE, "digest": digest_of(bundle), "size": len(bundle)}],
                "subject": {"mediaType": OCI_MANIFEST, "digest": subject_in_manifest or subject, "size": subject_size}}
    body = json.dumps(manifest).encode()
    digest = oci.push_manifest(repo, digest_of(body), body, OCI_MANIFEST)
    if fallback:
        tag = subject.replace(":", "-")
        try:
            index = oci.get_manifest(repo, tag).json
        except OciError:  # no index yet
            index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        entry: dict[str, Any] = {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(body)}
        if index_artifact_type is not None:
            entry["artifactType"] = index_artifact_type
        index["manifests"].append(entry)
        oci.push_manifest(repo, tag, index, OCI_INDEX)
    return digest
