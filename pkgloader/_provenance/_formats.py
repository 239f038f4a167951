"""The signature formats found next to OCI packages, parsed into :class:`Candidate` values.

- **Legacy cosign** (``sha256-<hex>.sig`` tag): one image-manifest layer per signature, of type
  ``application/vnd.dev.cosign.simplesigning.v1+json``; the blob is the *payload* (the exact
  bytes signed), the layer annotation ``dev.cosignproject.cosign/signature`` the base64
  signature; keyless adds ``dev.sigstore.cosign/certificate`` (leaf PEM), ``/chain`` and
  ``/bundle`` (the Rekor SET).
- **Sigstore bundle v0.3** (an OCI referrer, cosign 3 and GitHub artifact attestations):
  a DSSE envelope of an in-toto Statement; DSSE signs ``PAE(payloadType, payload)``.

Parsing never trusts anything: a candidate only says what a signature *claims* (the signed
bytes, the subject digests, a key hint, a certificate). ``_verify`` decides. Malformed input
gives a candidate with ``problem`` set (``signature-invalid`` when nothing else verifies).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "SIMPLESIGNING", "BUNDLE_V03", "BUNDLE_TYPES", "INTOTO", "COSIGN_SIGN_PREDICATE", "SLSA_PREDICATE",
    "ANN_SIGNATURE", "ANN_CERTIFICATE", "ANN_CHAIN", "ANN_BUNDLE", "Candidate", "pae",
    "parse_simplesigning", "parse_bundle", "simplesigning_payload", "intoto_statement",
]

SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
BUNDLE_TYPES = (BUNDLE_V03, "application/vnd.dev.sigstore.bundle+json;version=0.2",
                "application/vnd.dev.sigstore.bundle+json;version=0.1")
INTOTO = "application/vnd.in-toto+json"
INTOTO_STATEMENT_V1 = "https://in-toto.io/Statement/v1"
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
SLSA_PREDICATE = "https://slsa.dev/provenance/v1"
ANN_SIGNATURE = "dev.cosignproject.cosign/signature"
ANN_CERTIFICATE = "dev.sigstore.cosign/certificate"
ANN_CHAIN = "dev.sigstore.cosign/chain"
ANN_BUNDLE = "dev.sigstore.cosign/bundle"
#: a payload or bundle larger than this is not a signature
MAX_SIGNATURE_BYTES = 1 << 20


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: ``"DSSEv1" SP len(type) SP type SP len(body) SP body``."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


@dataclass
class Candidate:
    """One signature found for a manifest, as claimed (nothing here is verified)."""

    format: str  # "cosign-simplesigning" or "sigstore-bundle"
    where: str  # e.g. "tag sha256-<hex>.sig, layer 1" or "referrer sha256:<hex>"
    signed: bytes = b""  # the exact bytes the signature covers (payload, or the DSSE PAE)
    signatures: list[bytes] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)  # "sha256:<hex>" the payload names
    hint: str | None = None  # verificationMaterial.publicKey.hint of a keyed bundle
    certificate: bytes | None = None  # DER leaf certificate (keyless)
    bundle: bytes | None = None  # the raw bundle JSON (sigstore-python verifies it)
    payload: bytes = b""  # what was signed before encoding (simplesigning payload, statement)
    predicate_type: str | None = None
    log: dict[str, Any] = field(default_factory=dict)  # logIndex, integratedTime, logID when present
    cosign_bundle: Any = None  # the legacy dev.sigstore.cosign/bundle annotation (Rekor SET)
    problem: str | None = None  # why this candidate is malformed

    def describe(self) -> str:
        return f"{self.format} ({self.where})"


def _b64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"{what} is not a string")
    try:
        return base64.b64decode(text.strip() + "=" * (-len(text.strip()) % 4), validate=True)
    except (binascii.Error, ValueError):
        try:
            return base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
        except (binascii.Error, ValueError):
            raise ValueError(f"{what} is not base64") from None


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        raise ValueError(f"{what} is not JSON") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{what} is not a JSON object")
    return obj


def simplesigning_payload(docker_reference: str, digest: str, optional: dict[str, Any] | None = None) -> bytes:
    """The payload cosign signs for ``digest`` (used by tests and by nothing at runtime)."""
    return json.dumps({"critical": {"identity": {"docker-reference": docker_reference},
                                    "image": {"docker-manifest-digest": digest},
                                    "type": "cosign container image signature"},
                       "optional": optional}, separators=(",", ":")).encode()


def _pem_to_der(pem: str) -> bytes:
    from cryptography import x509

    return x509.load_pem_x509_certificate(pem.encode()).public_bytes(_der())


def _der() -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization.Encoding.DER


def parse_simplesigning(payload: bytes, annotations: dict[str, Any], where: str) -> Candidate:
    """A legacy cosign signature: the layer's blob (``payload``) and its annotations."""
    c = Candidate("cosign-simplesigning", where, signed=payload, payload=payload)
    try:
        sig = annotations.get(ANN_SIGNATURE)
        if sig is None:
            raise ValueError(f"the layer has no {ANN_SIGNATURE} annotation")
        c.signatures = [_b64(sig, "the signature annotation")]
        data = _json_object(payload, "the simplesigning payload")
        critical = data.get("critical")
        if not isinstance(critical, dict):
            raise ValueError("the payload has no 'critical' object")
        if critical.get("type") != "cosign container image signature":
            raise ValueError(f"the payload type is {str(critical.get('type'))[:80]!r}, not a cosign image signature")
        image = critical.get("image")
        digest = image.get("docker-manifest-digest") if isinstance(image, dict) else None
        if not isinstance(digest, str):
            raise ValueError("the payload has no critical.image.docker-manifest-digest")
        c.subjects = [digest]
        cert = annotations.get(ANN_CERTIFICATE)
        if isinstance(cert, str) and cert.strip():
            try:
                c.certificate = _pem_to_der(cert)
            except ValueError:
                raise ValueError(f"the {ANN_CERTIFICATE} annotation is not a PEM certificate") from None
        set_text = annotations.get(ANN_BUNDLE)
        if isinstance(set_text, str) and set_text.strip():
            try:
                rekor = json.loads(set_text)
            except ValueError:
                rekor = None
            if isinstance(rekor, dict):
                c.cosign_bundle = rekor
                p = rekor.get("Payload")
                if isinstance(p, dict):
                    c.log = {k: p[k] for k in ("logIndex", "integratedTime", "logID") if k in p}
    except ValueError as exc:
        c.problem = str(exc)
    return c


def intoto_statement(subject_name: str, digest: str, predicate_type: str = COSIGN_SIGN_PREDICATE,
                     predicate: dict[str, Any] | None = None) -> bytes:
    algo, _, hexpart = digest.partition(":")
    return json.dumps({"_type": INTOTO_STATEMENT_V1,
                       "subject": [{"name": subject_name, "digest": {algo: hexpart}}],
                       "predicateType": predicate_type, "predicate": predicate or {}},
                      separators=(",", ":")).encode()


def _statement_subjects(statement: dict[str, Any]) -> list[str]:
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise ValueError("the in-toto statement has no subject")
    out = []
    for s in subjects:
        digests = s.get("digest") if isinstance(s, dict) else None
        if not isinstance(digests, dict):
            raise ValueError("an in-toto subject has no digest")
        for algo, value in digests.items():
            if isinstance(value, str):
                out.append(f"{algo}:{value.lower()}")
    return out


def parse_bundle(data: bytes, where: str) -> Candidate:
    """A Sigstore bundle (v0.1-v0.3) holding a DSSE envelope of an in-toto statement."""
    c = Candidate("sigstore-bundle", where, bundle=data)
    try:
        if len(data) > MAX_SIGNATURE_BYTES:
            raise ValueError(f"the bundle is larger than {MAX_SIGNATURE_BYTES >> 20} MiB")
        bundle = _json_object(data, "the bundle")
        mt = bundle.get("mediaType")
        if mt not in BUNDLE_TYPES:
            raise ValueError(f"the bundle media type is {str(mt)[:100]!r}, not a Sigstore bundle")
        vm = bundle.get("verificationMaterial")
        if not isinstance(vm, dict):
            raise ValueError("the bundle has no verificationMaterial")
        pk = vm.get("publicKey")
        if isinstance(pk, dict) and isinstance(pk.get("hint"), str):
            c.hint = pk["hint"]  # a name only: the key itself is never taken from a bundle
        cert = vm.get("certificate")
        chain = vm.get("x509CertificateChain")
        if isinstance(cert, dict):
            c.certificate = _b64(cert.get("rawBytes"), "verificationMaterial.certificate.rawBytes")
        elif isinstance(chain, dict) and isinstance(chain.get("certificates"), list) and chain["certificates"]:
            first = chain["certificates"][0]
            c.certificate = _b64(first.get("rawBytes") if isinstance(first, dict) else None,
                                 "the first certificate of the chain")
        entries = vm.get("tlogEntries")
        if isinstance(entries, list) and entries and isinstance(entries[0], dict):
            e = entries[0]
            c.log = {k: e[k] for k in ("logIndex", "integratedTime") if k in e}
        env = bundle.get("dsseEnvelope")
        if not isinstance(env, dict):
            what = "a message signature" if "messageSignature" in bundle else "no DSSE envelope"
            raise ValueError(f"the bundle holds {what}; pkgloader verifies DSSE envelopes of in-toto statements")
        ptype = env.get("payloadType")
        if ptype != INTOTO:
            raise ValueError(f"the DSSE payload type is {str(ptype)[:100]!r}, not {INTOTO}")
        body = _b64(env.get("payload"), "the DSSE payload")
        sigs = env.get("signatures")
        if not isinstance(sigs, list) or not sigs:
            raise ValueError("the DSSE envelope has no signatures")
        c.signatures = [_b64(s.get("sig") if isinstance(s, dict) else None, "a DSSE signature") for s in sigs]
        c.signed = pae(ptype, body)
        c.payload = body
        statement = _json_object(body, "the in-toto statement")
        if statement.get("_type") not in (INTOTO_STATEMENT_V1, "https://in-toto.io/Statement/v0.1"):
            raise ValueError(f"the payload is not an in-toto statement (_type {str(statement.get('_type'))[:80]!r})")
        pt = statement.get("predicateType")
        c.predicate_type = pt if isinstance(pt, str) else None
        c.subjects = _statement_subjects(statement)
    except ValueError as exc:
        c.problem = str(exc)
    return c
