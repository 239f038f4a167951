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
