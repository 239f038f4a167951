"""Keyless signatures: the identity a Fulcio certificate names, and the full check through
sigstore-python (the optional extra ``pkgloader[sigstore]``, imported only here, only when a
keyless signer must be checked).

Reading the identity (OIDC issuer, SAN, source repository) needs only ``cryptography``; it
lets a policy mismatch be reported without sigstore. The cryptographic check (certificate
chain to the trusted root's Fulcio CA at the time the log or a timestamp authority saw the
signature, the signature itself, the log entry) is sigstore-python's ``Verifier``, offline:
against the trusted root it ships, or one the policy names (``trusted_root``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["certificate_identity", "describe_identity", "verify_bundle", "SigstoreMissing"]

_OID_ISSUER_V1 = "1.3.6.1.4.1.57264.1.1"
_OID_ISSUER_V2 = "1.3.6.1.4.1.57264.1.8"
_OID_SOURCE_REPO = "1.3.6.1.4.1.57264.1.12"


class SigstoreMissing(Exception):
    """sigstore-python is not installed."""


def _der_utf8(value: bytes) -> str:
    # a DER UTF8String (tag 0x0c) with a short or long length
    if len(value) >= 2 and value[0] == 0x0C:
        n = value[1]
        off = 2
        if n & 0x80:
            k = n & 0x7F
            n = int.from_bytes(value[2:2 + k], "big")
            off = 2 + k
        return value[off:off + n].decode("utf-8", "replace")
    return value.decode("utf-8", "replace")


def certificate_identity(der: bytes) -> dict[str, str | None]:
    """``issuer``, ``san`` and ``source_repository`` of a Fulcio leaf (``ValueError`` when it
    is not a certificate)."""
    from cryptography import x509

    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        raise ValueError("the signing certificate is not a DER X.509 certificate") from None
    out: dict[str, str | None] = {"issuer": None, "san": None, "source_repository": None}
    for ext in cert.extensions:
        oid = ext.oid.dotted_string
        raw = getattr(ext.value, "value", None)
        if not isinstance(raw, bytes):
            continue
        if oid == _OID_ISSUER_V2:
            out["issuer"] = _der_utf8(raw)
        elif oid == _OID_ISSUER_V1 and out["issuer"] is None:
            out["issuer"] = raw.decode("utf-8", "replace")
        elif oid == _OID_SOURCE_REPO:
            out["source_repository"] = _der_utf8(raw)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        values = san.get_values_for_type(x509.UniformResourceIdentifier) + san.get_values_for_type(x509.RFC822Name)
        out["san"] = values[0] if values else None
    except x509.ExtensionNotFound:
        pass
    return out


def describe_identity(identity: dict[str, str | None]) -> str:
    parts = [f"issuer {identity.get('issuer') or '(none)'}", f"identity {identity.get('san') or '(none)'}"]
    if identity.get("source_repository"):
        parts.append(f"source repository {identity['source_repository']}")
    return "keyless " + ", ".join(parts)


def _verifier(trusted_root: str | None) -> Any:
    try:
        from sigstore.models import TrustedRoot
        from sigstore.verify import Verifier
    except ImportError:
        raise SigstoreMissing() from None
    if trusted_root:
        try:
            return Verifier(trusted_root=TrustedRoot.from_file(trusted_root))
        except Exception as exc:  # noqa: BLE001 - sigstore's errors are many; named below
            raise ValueError(f"the trusted root {trusted_root} cannot be used: {str(exc)[:200]}") from None
    return Verifier.production(offline=True)


def verify_bundle(bundle_json: bytes, identity: dict[str, str | None], trusted_root: str | None) -> bytes:
    """Verify a keyless DSSE bundle whose certificate names ``identity`` (already matched
    against the policy); the verified in-toto payload. ``ValueError`` saying why not;
    ``SigstoreMissing`` without the extra."""
    verifier = _verifier(trusted_root)
    from sigstore.models import Bundle
    from sigstore.verify import policy

    try:
        bundle = Bundle.from_json(bundle_json)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"sigstore cannot read the bundle: {str(exc)[:200]}") from None
    try:
        ptype, payload = verifier.verify_dsse(bundle, policy.Identity(identity=identity["san"] or "",
                                                                       issuer=identity["issuer"]))
    except Exception as exc:  # noqa: BLE001 - VerificationError and friends
        raise ValueError(f"sigstore verification failed: {str(exc)[:300]}") from None
    if ptype != "application/vnd.in-toto+json":
        raise ValueError(f"the verified payload type is {ptype!r}")
    return bytes(payload)


def verify_legacy(payload: bytes, signature: bytes, cert_der: bytes, rekor: Any, identity: dict[str, str | None],
                  trusted_root: str | None) -> None:
    """Verify a keyless legacy cosign signature (``.sig`` tag layer): the Rekor signed entry
    timestamp (``dev.sigstore.cosign/bundle``) with the trusted root's log keys, the
    hashedrekord entry against this payload, signature and certificate, the certificate chain
    at the entry's integrated time and its SCT, the certificate's identity, and the signature
    over the payload. sigstore-python verifies only bundles with an inclusion proof, which
    these signatures lack, so its parts are used one by one. ``ValueError`` saying why not."""
    import base64
    import hashlib
    import json
    from datetime import datetime, timezone

    verifier = _verifier(trusted_root)
    try:
        import rfc8785
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from sigstore._internal.sct import verify_sct
        from sigstore._internal.timestamp import TimestampSource, TimestampVerificationResult
        from sigstore._internal.trust import KeyringPurpose
        from sigstore.verify import policy
    except ImportError:
        raise SigstoreMissing() from None
    root = verifier._trusted_root
    p = rekor.get("Payload") if isinstance(rekor, dict) else None
    if not isinstance(p, dict) or not isinstance(rekor.get("SignedEntryTimestamp"), str):
        raise ValueError("the signature has no Rekor entry (dev.sigstore.cosign/bundle annotation)")
    body_b64, integrated, log_index, log_id = p.get("body"), p.get("integratedTime"), p.get("logIndex"), p.get("logID")
    if not (isinstance(body_b64, str) and isinstance(integrated, int) and isinstance(log_index, int)
            and isinstance(log_id, str)):
        raise ValueError("the Rekor entry lacks body, integratedTime, logIndex or logID")
    try:
        canonical = rfc8785.dumps({"body": body_b64, "integratedTime": integrated, "logID": log_id, "logIndex": log_index})
        root.rekor_keyring(KeyringPurpose.VERIFY).verify(key_id=bytes.fromhex(log_id),
                                                         signature=base64.b64decode(rekor["SignedEntryTimestamp"]),
                                                         data=canonical)
    except Exception as exc:  # noqa: BLE001 - sigstore's VerificationError, binascii, ValueError
        raise ValueError(f"the Rekor signed entry timestamp does not verify with the trusted root's log keys ({str(exc)[:120]})") from None
    cert = x509.load_der_x509_certificate(cert_der)
    try:
        body = json.loads(base64.b64decode(body_b64))
        spec = body["spec"]
        ok = (body.get("kind") == "hashedrekord" and spec["data"]["hash"]["algorithm"] == "sha256"
              and spec["data"]["hash"]["value"] == hashlib.sha256(payload).hexdigest()
              and base64.b64decode(spec["signature"]["content"]) == signature
              and x509.load_pem_x509_certificate(base64.b64decode(spec["signature"]["publicKey"]["content"])) == cert)
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise ValueError("the Rekor entry does not record this payload, signature and certificate")
    when = datetime.fromtimestamp(integrated, tz=timezone.utc)
    try:
        chain = verifier._verify_chain_at_time(cert, TimestampVerificationResult(
            source=TimestampSource.TRANSPARENCY_SERVICE, time=when))
        verify_sct(cert, chain, root.ct_keyring(KeyringPurpose.VERIFY))
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if x509.oid.ExtendedKeyUsageOID.CODE_SIGNING not in eku:
            raise ValueError("the certificate is not for code signing")
        if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
            raise ValueError("the certificate was not valid when the log recorded the signature")
        policy.Identity(identity=identity["san"] or "", issuer=identity["issuer"]).verify(cert)
        key = cert.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError("the certificate's key is not ECDSA")
        key.verify(signature, payload, ec.ECDSA(hashes.SHA384() if key.curve.name == "secp384r1" else hashes.SHA256()))
    except AttributeError:  # a sigstore-python whose internals moved
        raise SigstoreMissing() from None
    except Exception as exc:  # noqa: BLE001 - InvalidSignature, VerificationError, CertValidationError
        raise ValueError(f"sigstore verification failed: {str(exc)[:300] or type(exc).__name__}") from None
