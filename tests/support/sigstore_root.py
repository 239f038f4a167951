"""A Sigstore instance of our own, offline: the keyless path without any network.

``TestSigstore(tmp_dir)`` makes

* a Fulcio-like CA (a self-signed P-256 root) issuing short-lived leaf certificates with the
  Fulcio OIDC extensions (issuer v1 ``1.3.6.1.4.1.57264.1.1`` and v2 ``.1.8``, source
  repository ``.1.12``), a SAN URI identity, code-signing EKU, and an embedded precertificate
  SCT signed by our own CT log key;
* a Rekor-like log key: each signed bundle carries a dsse/0.0.1 entry in a one-leaf tree, its
  inclusion proof, a signed checkpoint (a signed note) and a signed entry timestamp;
* ``trusted_root.json`` naming the CA, the CT log and the log, for
  ``sigstore.models.TrustedRoot.from_file`` (and pkgloader's ``trusted_root``).

``keyless_bundle(statement_subject_digest, identity=..., issuer=..., source_repository=...)``
returns a Sigstore bundle v0.3 (DSSE of an in-toto statement) as GitHub's attest action and
cosign 3 write them; ``legacy_signature(payload, ...)`` a cosign 2 keyless signature of a
simplesigning payload with its layer annotations (certificate, Rekor SET over a
hashedrekord entry). Everything is built from the specs (RFC 6962 SCTs, the transparency-dev
checkpoint format, Rekor's SET), independently of pkgloader.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import struct
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

__all__ = ["TestSigstore"]

BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
INTOTO = "application/vnd.in-toto+json"
_SCT_OID = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")


def _spki(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _key_id(key: Any) -> bytes:
    return hashlib.sha256(_spki(key)).digest()


def _utf8(text: str) -> bytes:
    raw = text.encode()
    assert len(raw) < 128
    return bytes([0x0C, len(raw)]) + raw


def _octets(raw: bytes) -> bytes:
    n = len(raw)
    if n < 128:
        return bytes([0x04, n]) + raw
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x04, 0x80 | len(size)]) + size + raw


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _pae(body: bytes) -> bytes:
    return b"DSSEv1 %d %s %d %s" % (len(INTOTO), INTOTO.encode(), len(body), body)


class TestSigstore:
    __test__ = False  # not a pytest class

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ct_key = ec.generate_private_key(ec.SECP256R1())
        self.log_key = ec.generate_private_key(ec.SECP256R1())
        start = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pkgloader-test"),
                          x509.NameAttribute(NameOID.COMMON_NAME, "pkgloader-test fulcio")])
        self.ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(self.ca_key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(start + dt.timedelta(days=36500))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.ca_key.public_key()), critical=False)
                   .sign(self.ca_key, hashes.SHA256()))
        self.trusted_root = self.dir / "trusted_root.json"
        self.trusted_root.write_text(json.dumps(self._root_json()))

    # --- the trusted root --------------------------------------------------------------

    def _pub(self, key: Any) -> dict[str, Any]:
        return {"rawBytes": _b64(_spki(key.public_key())), "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                "validFor": {"start": "2020-01-01T00:00:00Z"}}

    def _root_json(self) -> dict[str, Any]:
        return {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [{"baseUrl": "https://rekor.pkgloader.test", "hashAlgorithm": "SHA2_256",
                       "publicKey": self._pub(self.log_key), "logId": {"keyId": _b64(_key_id(self.log_key.public_key()))}}],
            "certificateAuthorities": [{
                "subject": {"organization": "pkgloader-test", "commonName": "pkgloader-test fulcio"},
                "uri": "https://fulcio.pkgloader.test",
                "certChain": {"certificates": [{"rawBytes": _b64(self.ca.public_bytes(serialization.Encoding.DER))}]},
                "validFor": {"start": "2020-01-01T00:00:00Z"}}],
            "ctlogs": [{"baseUrl": "https://ct.pkgloader.test", "hashAlgorithm": "SHA2_256",
                        "publicKey": self._pub(self.ct_key), "logId": {"keyId": _b64(_key_id(self.ct_key.public_key()))}}],
            "timestampAuthorities": [],
        }

    # --- Fulcio ------------------------------------------------------------------------

    def leaf(self, key: Any, *, identity: str, issuer: str, source_repository: str | None, now: int) -> x509.Certificate:
        """A Fulcio-like leaf for ``key`` with an embedded SCT (RFC 6962 precertificate entry)."""
        serial = x509.random_serial_number()
        begin = dt.datetime.fromtimestamp(now - 60, dt.timezone.utc)

        def builder() -> x509.CertificateBuilder:
            b = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(self.ca.subject)
                 .public_key(key.public_key()).serial_number(serial)
                 .not_valid_before(begin).not_valid_after(begin + dt.timedelta(minutes=11))
                 .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                              data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                              crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
                 .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
                 .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                 .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()), critical=False)
                 .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity)]), critical=True)
                 .add_extension(x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.57264.1.1"), issuer.encode()),
                                critical=False)
                 .add_extension(x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.57264.1.8"), _utf8(issuer)),
                                critical=False))
            if source_repository is not None:
                b = b.add_extension(x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.57264.1.12"),
                                                               _utf8(source_repository)), critical=False)
            return b

        precert_tbs = builder().sign(self.ca_key, hashes.SHA256()).tbs_certificate_bytes
        ts_ms = now * 1000
        issuer_key_hash = _key_id(self.ca_key.public_key())
        signed = (struct.pack("!BBQH", 0, 0, ts_ms, 1) + issuer_key_hash
                  + len(precert_tbs).to_bytes(3, "big") + precert_tbs + struct.pack("!H", 0))
        sig = self.ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        sct = (bytes([0]) + _key_id(self.ct_key.public_key()) + struct.pack("!QH", ts_ms, 0)
               + bytes([4, 3]) + struct.pack("!H", len(sig)) + sig)
        sct_list = struct.pack("!H", len(sct) + 2) + struct.pack("!H", len(sct)) + sct
        cert = builder().add_extension(x509.UnrecognizedExtension(_SCT_OID, _octets(sct_list)), critical=False) \
            .sign(self.ca_key, hashes.SHA256())
        assert cert.tbs_precertificate_bytes == precert_tbs
        return cert

    # --- Rekor ---------------------------------------------------------------------------

    def _tlog_entry(self, body: bytes, now: int, *, log_key: Any = None) -> dict[str, Any]:
        import rfc8785

        log_key = log_key or self.log_key
        key_id = _key_id(self.log_key.public_key())
        root = hashlib.sha256(b"\x00" + body).digest()  # a tree of one leaf
        origin = "rekor.pkgloader.test - 1"
        note = f"{origin}\n1\n{_b64(root)}\n"
        note_sig = log_key.sign(note.encode(), ec.ECDSA(hashes.SHA256()))
        checkpoint = f"{note}\n\u2014 rekor.pkgloader.test {_b64(key_id[:4] + note_sig)}\n"
        set_payload = rfc8785.dumps({"body": _b64(body), "integratedTime": now, "logID": key_id.hex(), "logIndex": 0})
        set_sig = log_key.sign(set_payload, ec.ECDSA(hashes.SHA256()))
        return {"logIndex": "0", "logId": {"keyId": _b64(key_id)}, "kindVersion": {"kind": "dsse", "version": "0.0.1"},
                "integratedTime": str(now), "inclusionPromise": {"signedEntryTimestamp": _b64(set_sig)},
                "inclusionProof": {"logIndex": "0", "rootHash": _b64(root), "treeSize": "1", "hashes": [],
                                   "checkpoint": {"envelope": checkpoint}},
                "canonicalizedBody": _b64(body)}

    def keyless_bundle(self, digest: str, *, identity: str, issuer: str, source_repository: str | None = None,
                       name: str = "example/pkg", predicate_type: str = "https://slsa.dev/provenance/v1",
                       log_key: Any = None) -> bytes:
        """A bundle v0.3 whose in-toto statement's subject is ``digest`` (``sha256:<hex>``)."""
        now = int(time.time())
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self.leaf(key, identity=identity, issuer=issuer, source_repository=source_repository, now=now)
        algo, hexpart = digest.split(":")
        statement = json.dumps({"_type": "https://in-toto.io/Statement/v1",
                                "subject": [{"name": name, "digest": {algo: hexpart}}],
                                "predicateType": predicate_type, "predicate": {}}).encode()
        sig = key.sign(_pae(statement), ec.ECDSA(hashes.SHA256()))
        envelope = {"payload": _b64(statement), "payloadType": INTOTO, "signatures": [{"sig": _b64(sig)}]}
        pem_b64 = _b64(cert.public_bytes(serialization.Encoding.PEM))
        body = json.dumps({"apiVersion": "0.0.1", "kind": "dsse", "spec": {
            "envelopeHash": {"algorithm": "sha256", "value": hashlib.sha256(json.dumps(envelope).encode()).hexdigest()},
            "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(statement).hexdigest()},
            "signatures": [{"signature": _b64(sig), "verifier": pem_b64}]}}, separators=(",", ":")).encode()
        bundle = {"mediaType": BUNDLE_V03,
                  "verificationMaterial": {"certificate": {"rawBytes": _b64(cert.public_bytes(serialization.Encoding.DER))},
                                           "tlogEntries": [self._tlog_entry(body, now, log_key=log_key)]},
                  "dsseEnvelope": envelope}
        return json.dumps(bundle).encode()

    def legacy_signature(self, payload: bytes, *, identity: str, issuer: str, source_repository: str | None = None,
                         log_key: Any = None) -> tuple[bytes, dict[str, str]]:
        """(signature, annotations) of a cosign 2 keyless signature of ``payload``."""
        import rfc8785

        now = int(time.time())
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self.leaf(key, identity=identity, issuer=issuer, source_repository=source_repository, now=now)
        sig = key.sign(payload, ec.ECDSA(hashes.SHA256()))
        pem = cert.public_bytes(serialization.Encoding.PEM)
        body = json.dumps({"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()}},
            "signature": {"content": _b64(sig), "publicKey": {"content": _b64(pem)}}}}, separators=(",", ":")).encode()
        log_id = _key_id(self.log_key.public_key()).hex()
        canonical = rfc8785.dumps({"body": _b64(body), "integratedTime": now, "logID": log_id, "logIndex": 7})
        set_sig = (log_key or self.log_key).sign(canonical, ec.ECDSA(hashes.SHA256()))
        rekor = {"SignedEntryTimestamp": _b64(set_sig),
                 "Payload": {"body": _b64(body), "integratedTime": now, "logIndex": 7, "logID": log_id}}
        return sig, {"dev.sigstore.cosign/certificate": pem.decode(), "dev.sigstore.cosign/chain": "",
                     "dev.sigstore.cosign/bundle": json.dumps(rekor)}
