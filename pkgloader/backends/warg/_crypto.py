"""Hash strings, keys, key IDs and ECDSA P-256 signatures (spec §1.1, §1.3-§1.5).

Every parser here is strict: canonical lowercase ``sha256:<64 hex>``, standard padded
base64 that re-encodes to the same text, exactly one ``:`` in key and signature texts.
Failures raise :class:`BadValue`, which names the ``Warg*`` class the caller should
raise once it has added context (which log, which record).
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Final, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..._errors import (
    WargInvalidRecord,
    WargSignatureError,
    WargUnsupported,
    WargVerificationError,
)

__all__ = [
    "BadValue",
    "HASH_ALGORITHM",
    "KEY_ALGORITHM",
    "PACKAGE_SIGNATURE_PREFIX",
    "OPERATOR_SIGNATURE_PREFIX",
    "CHECKPOINT_SIGNATURE_PREFIX",
    "sha256_text",
    "parse_hash",
    "hash_raw",
    "b64decode",
    "b64encode",
    "PublicKey",
    "parse_public_key",
    "key_id_of",
    "parse_signature",
    "verify_batch",
    "SigningKey",
]

HASH_ALGORITHM: Final = "sha256"
KEY_ALGORITHM: Final = "ecdsa-p256"

#: Signed message = PREFIX || payload (the prefixes here already end in ":").
PACKAGE_SIGNATURE_PREFIX: Final = b"WARG-PACKAGE-RECORD-SIGNATURE-V0:"
OPERATOR_SIGNATURE_PREFIX: Final = b"WARG-OPERATOR-RECORD-SIGNATURE-V0:"
CHECKPOINT_SIGNATURE_PREFIX: Final = b"WARG-CHECKPOINT-SIGNATURE-V0:"

_ECDSA: Final = ec.ECDSA(hashes.SHA256())
_HASH_RE: Final = re.compile(r"sha256:[0-9a-f]{64}\Z")
_sha256 = hashlib.sha256


class BadValue(ValueError):
    """A malformed value; ``error`` is the Warg error class to raise with context."""

    def __init__(self, message: str, error: type[WargVerificationError] = WargInvalidRecord) -> None:
        super().__init__(message)
        self.message = message
        self.error = error


# --- hash strings (AnyHash) ---------------------------------------------------------


def sha256_text(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + _sha256(data).hexdigest()


def parse_hash(text: object, what: str = "hash") -> str:
    """Validate a ``sha256:<64 lowercase hex>`` string and return it (it is canonical)."""
    if type(text) is str and _HASH_RE.match(text):
        return text
    if not isinstance(text, str):
        raise BadValue(f"{what} must be a string, got {type(text).__name__}")
    algo, sep, hexpart = text.partition(":")
    if not sep:
        raise BadValue(f"{what} {text[:80]!r} is not of the form sha256:<hex>")
    if algo != HASH_ALGORITHM:
        raise BadValue(f"{what} {text[:80]!r} uses unsupported hash algorithm {algo[:20]!r}", WargUnsupported)
    if hexpart != hexpart.lower():
        raise BadValue(f"{what} {text[:80]!r} must use lowercase hex")
    raise BadValue(f"{what} {text[:80]!r} must be sha256: followed by 64 hex digits")


def hash_raw(text: str) -> bytes:
    """The 32 digest bytes of a canonical hash string."""
    return bytes.fromhex(text[7:])


# --- base64 (standard alphabet, padded, canonical) ------------------------------------


def b64decode(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise BadValue(f"{what} must be a base64 string, got {type(text).__name__}")
    try:
        raw = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        raise BadValue(f"{what} is not valid padded standard base64") from None
    if binascii.b2a_base64(raw, newline=False).decode("ascii") != text:
        raise BadValue(f"{what} is not canonical standard base64")
    return raw


def b64encode(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


# --- public keys and key IDs ---------------------------------------------------------


class PublicKey:
    """An ECDSA P-256 public key with its canonical text and key ID."""

    __slots__ = ("text", "key_id", "_key")

    def __init__(self, key: ec.EllipticCurvePublicKey) -> None:
        compressed = key.public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
        self._key = key
        #: canonical text: ``ecdsa-p256:`` + base64(compressed SEC1 point)
        self.text: str = f"{KEY_ALGORITHM}:{b64encode(compressed)}"
        #: ``sha256:`` + hex(SHA-256(utf8(canonical text)))
        self.key_id: str = sha256_text(self.text.encode("ascii"))

    def verify(self, prefix: bytes, payload: bytes, der_signature: bytes) -> bool:
        """Check an ECDSA/SHA-256 signature over ``prefix || payload``."""
        try:
            self._key.verify(der_signature, prefix + payload, _ECDSA)
        except (InvalidSignature, ValueError):
            return False
        return True

    def __repr__(self) -> str:
        return f"PublicKey({self.text!r})"


@functools.lru_cache(maxsize=4096)
def parse_public_key(text: str) -> PublicKey:
    """Parse ``ecdsa-p256:<base64 SEC1 point>`` (compressed or uncompressed)."""
    if not isinstance(text, str):
        raise BadValue(f"public key must be a string, got {type(text).__name__}")
    parts = text.split(":")
    if len(parts) != 2:
        raise BadValue(f"public key {text[:100]!r} is not of the form ecdsa-p256:<base64>")
    if parts[0] != KEY_ALGORITHM:
        raise BadValue(f"public key {text[:100]!r} uses unsupported algorithm {parts[0][:20]!r}", WargUnsupported)
    raw = b64decode(parts[1], f"public key {text[:100]!r}")
    if len(raw) not in (33, 65):
        raise BadValue(f"public key {text[:100]!r} is {len(raw)} bytes, expected a 33- or 65-byte SEC1 point")
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        raise BadValue(f"public key {text[:100]!r} is not a point on P-256") from None
    return PublicKey(key)


def key_id_of(text: str) -> str:
    """Key ID of a public key text (computed from its canonical compressed form)."""
    return parse_public_key(text).key_id


# --- signatures ------------------------------------------------------------------------


def parse_signature(text: object) -> bytes:
    """``ecdsa-p256:<base64 DER>`` -> DER bytes. Raises :class:`BadValue` (signature error)."""
    if not isinstance(text, str):
        raise BadValue(f"signature must be a string, got {type(text).__name__}", WargSignatureError)
    parts = text.split(":")
    if len(parts) != 2:
        raise BadValue(f"signature {text[:100]!r} is not of the form ecdsa-p256:<base64>", WargSignatureError)
    if parts[0] != KEY_ALGORITHM:
        raise BadValue(f"signature {text[:100]!r} uses unsupported algorithm {parts[0][:20]!r}", WargUnsupported)
    try:
        return b64decode(parts[1], f"signature {text[:100]!r}")
    except BadValue as exc:
        raise BadValue(exc.message, WargSignatureError) from None


# --- batch verification ----------------------------------------------------------------

#: Below this many signatures a batch is verified inline; above it the work is split over
#: a few threads (OpenSSL releases the GIL while verifying).
PARALLEL_THRESHOLD: Final = 256
_WORKERS: Final = max(1, min(4, os.cpu_count() or 1))
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="pkgloader-warg-verify")
        return _executor


def _first_failure(items: Sequence[tuple[PublicKey, bytes, bytes, bytes]], start: int, stop: int) -> int | None:
    for i in range(start, stop):
        key, prefix, payload, der = items[i]
        if not key.verify(prefix, payload, der):
            return i
    return None


def verify_batch(items: Sequence[tuple[PublicKey, bytes, bytes, bytes]]) -> int | None:
    """Verify ``(key, prefix, payload, der)`` signatures; return the index of the first one
    (in order) that does not verify, or ``None`` if all do."""
    n = len(items)
    if n < PARALLEL_THRESHOLD or _WORKERS == 1:
        return _first_failure(items, 0, n)
    step = -(-n // _WORKERS)
    futures = [_pool().submit(_first_failure, items, lo, min(lo + step, n)) for lo in range(0, n, step)]
    failures = [f.result() for f in futures]
    return next((i for i in failures if i is not None), None)


# --- signing (tests, benchmarks, vector generation only) ---------------------------------


class SigningKey:
    """An ECDSA P-256 private key. pkgloader never signs anything it publishes; this
    exists for the test factory and the benchmark."""

    __slots__ = ("_key", "public", "deterministic")

    def __init__(self, key: ec.EllipticCurvePrivateKey, *, deterministic: bool = False) -> None:
        self._key = key
        self.public: PublicKey = PublicKey(key.public_key())
        self.deterministic = deterministic

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_text(cls, text: str, *, deterministic: bool = True) -> SigningKey:
        """``ecdsa-p256:<base64 32-byte big-endian scalar>`` (the upstream fixture format)."""
        algo, _, b64 = text.partition(":")
        if algo != KEY_ALGORITHM:
            raise ValueError(f"unsupported private key algorithm {algo!r}")
        raw = binascii.a2b_base64(b64, strict_mode=True)
        return cls(ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1()), deterministic=deterministic)

    @property
    def private_text(self) -> str:
        scalar = self._key.private_numbers().private_value.to_bytes(32, "big")
        return f"{KEY_ALGORITHM}:{b64encode(scalar)}"

    @property
    def key_id(self) -> str:
        return self.public.key_id

    def sign(self, prefix: bytes, payload: bytes) -> str:
        """``ecdsa-p256:<base64 DER>`` over ``prefix || payload`` (prefix ends in ``:``)."""
        if self.deterministic:
            algo = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
        else:
            algo = _ECDSA
        der = self._key.sign(prefix + payload, algo)
        return f"{KEY_ALGORITHM}:{b64encode(der)}"

    def __repr__(self) -> str:
        return f"SigningKey(public={self.public.text!r})"
