"""Public keys for keyed signatures: load a PEM file, name it, verify and sign with it.

Key material is only ever read from files the policy names (or the signing key given to
``publish --sign-key``): a key that a bundle or a signature carries is never used
(cosign advisory GHSA-fx35-mq7g-6g98). ``cryptography`` does the work; its exceptions are
mapped to ``ValueError`` here and to pkgloader errors by the callers.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["PublicKey", "load_public_key", "load_private_key", "sign_bytes", "key_id"]


def key_id(spki_der: bytes) -> str:
    """cosign's key hint: base64 of the SHA-256 of the DER SubjectPublicKeyInfo."""
    return base64.b64encode(hashlib.sha256(spki_der).digest()).decode()


@dataclass(frozen=True)
class PublicKey:
    """One accepted public key, named by the file it came from."""

    key: Any
    kind: str  # "ecdsa-p256", "ecdsa-p384", "ed25519", "rsa-2048", ...
    hint: str  # key_id of the DER SubjectPublicKeyInfo
    source: str  # the file

    def __str__(self) -> str:
        return f"key {self.source} ({self.kind}, {self.hint})"

    def verify(self, signature: bytes, data: bytes) -> bool:
        """True when ``signature`` is this key's signature of ``data`` (never raises)."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

        try:
            if isinstance(self.key, ec.EllipticCurvePublicKey):
                algo = hashes.SHA384() if self.key.curve.name == "secp384r1" else hashes.SHA256()
                self.key.verify(signature, data, ec.ECDSA(algo))
            elif isinstance(self.key, ed25519.Ed25519PublicKey):
                self.key.verify(signature, data)
            elif isinstance(self.key, rsa.RSAPublicKey):
                try:
                    self.key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
                except InvalidSignature:
                    self.key.verify(signature, data, padding.PSS(padding.MGF1(hashes.SHA256()),
                                                                 padding.PSS.AUTO), hashes.SHA256())
            else:  # pragma: no cover - load_public_key refuses other types
                return False
        except (InvalidSignature, ValueError, TypeError):
            return False
        return True


def _kind(key: Any) -> str | None:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return {"secp256r1": "ecdsa-p256", "secp384r1": "ecdsa-p384"}.get(key.curve.name)
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return f"rsa-{key.key_size}" if key.key_size >= 2048 else None
    return None


def _spki(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


def public_key_from_pem(data: bytes, source: str) -> PublicKey:
    """A ``PublicKey`` from PEM text (``ValueError`` saying why not)."""
    from cryptography.hazmat.primitives import serialization

    if b"PRIVATE KEY" in data:
        raise ValueError("it holds a private key; give the public key (cosign.pub), never the private one")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a PEM public key ({str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__})") from None
    kind = _kind(key)
    if kind is None:
        raise ValueError("unsupported key type: use ECDSA P-256 or P-384, Ed25519, or RSA of at least 2048 bits")
    return PublicKey(key, kind, key_id(_spki(key)), source)


def load_public_key(path: str | Path) -> PublicKey:
    """Read a PEM public key file (``ValueError`` for a bad key, ``OSError`` for I/O)."""
    p = Path(path)
    with open(p, "rb") as f:
        data = f.read(64 * 1024 + 1)
    if len(data) > 64 * 1024:
        raise ValueError("larger than 64 KiB: not a public key")
    return public_key_from_pem(data, str(p))


def load_private_key(path: str | Path) -> Any:
    """Read an unencrypted PEM private key (``publish --sign-key``)."""
    from cryptography.hazmat.primitives import serialization

    with open(path, "rb") as f:
        data = f.read(64 * 1024 + 1)
    if len(data) > 64 * 1024:
        raise ValueError("larger than 64 KiB: not a private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ValueError("the key is encrypted; give an unencrypted PEM private key") from None
    except ValueError as exc:
        raise ValueError(f"not a PEM private key ({str(exc).splitlines()[0][:120] if str(exc) else 'unreadable'})") from None
    if _kind(key) is None:
        raise ValueError("unsupported key type: use ECDSA P-256 or P-384, Ed25519, or RSA of at least 2048 bits")
    return key


def sign_bytes(private_key: Any, data: bytes) -> tuple[bytes, str]:
    """(signature, key hint) of ``data``: ECDSA with SHA-256 (SHA-384 on P-384), Ed25519,
    RSA PKCS#1 v1.5 with SHA-256."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        algo = hashes.SHA384() if private_key.curve.name == "secp384r1" else hashes.SHA256()
        sig = private_key.sign(data, ec.ECDSA(algo))
    elif isinstance(private_key, ed25519.Ed25519PrivateKey):
        sig = private_key.sign(data)
    elif isinstance(private_key, rsa.RSAPrivateKey):
        sig = private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    else:  # pragma: no cover
        raise ValueError("unsupported key type")
    return sig, key_id(_spki(private_key.public_key()))
