"""The whole pkgloader exception hierarchy, with stable error codes.

This module imports nothing from pkgloader. Every error pkgloader raises is a
``PkgLoaderError``; third-party exceptions (httpx, cryptography, tomllib) are mapped
to one of these and never leak.

    PkgLoaderError                      exit 1   (internal; subclasses pick their own)
    ├── InputError(ValueError)          exit 2   bad input: refs, versions, config, usage
    │   ├── InvalidPackageRef           invalid-package-ref
    │   ├── InvalidVersion              invalid-version
    │   ├── InvalidVersionReq           invalid-version-req
    │   ├── ConfigError                 invalid-config (also: invalid-lock-file, registry-unusable)
    │   ├── RegistryNotConfigured       no-registry
    │   └── UsageError                  usage
    ├── NotFoundError                   exit 3
    │   ├── PackageNotFound             package-not-found
    │   ├── NoMatchingVersion           no-matching-version
    │   ├── VersionYanked               version-yanked
    │   └── OfflineCacheMiss            offline-cache-miss
    ├── AuthError                       exit 4   auth-failed, auth-required (a 401, no credentials)
    ├── IntegrityError                  exit 5
    │   ├── DigestMismatch              digest-mismatch
    │   ├── SizeMismatch                size-mismatch
    │   ├── InvalidManifest             invalid-manifest (+ more specific codes)
    │   ├── InvalidContent              not-wasm
    │   ├── LockedDigestMismatch        locked-digest-mismatch
    │   ├── WargVerificationError       warg-* (one subclass per failure mode)
    │   └── SignatureError              provenance (signatures, attestations of OCI packages)
    │       ├── SignatureMissing        signature-missing
    │       ├── SignatureInvalid        signature-invalid
    │       ├── SignatureUntrusted      signature-untrusted
    │       └── SignatureSubjectMismatch  signature-subject-mismatch
    ├── NetworkError                    exit 6   network-error
    │   ├── RegistryTimeout             timeout
    │   ├── TLSError                    tls-error
    │   └── RegistryError               registry-error (unexpected answer)
    ├── ConflictError                   exit 7
    │   ├── OutputExists                output-exists
    │   ├── OutputOutOfDate             output-out-of-date (fetch --check)
    │   ├── VersionExists               version-exists
    │   ├── LockOutOfDate               lock-out-of-date
    │   └── ResolutionConflict          resolution-conflict
    └── LocalIOError                    exit 8   io-error

Each error carries a one-line ``message``, optional ``details`` (lines of facts:
redacted URL, config layer, expected vs got) and at most one ``hint``.
``render()`` gives the text the CLI prints.
"""

from __future__ import annotations

from typing import ClassVar, Iterable

__all__ = [
    "PkgLoaderError",
    "InputError",
    "InvalidPackageRef",
    "InvalidVersion",
    "InvalidVersionReq",
    "ConfigError",
    "RegistryNotConfigured",
    "UsageError",
    "NotFoundError",
    "PackageNotFound",
    "NoMatchingVersion",
    "VersionYanked",
    "OfflineCacheMiss",
    "AuthError",
    "IntegrityError",
    "DigestMismatch",
    "SizeMismatch",
    "InvalidManifest",
    "InvalidContent",
    "LockedDigestMismatch",
    "WargVerificationError",
    "WargSignatureError",
    "WargChainError",
    "WargUnauthorized",
    "WargInvalidRecord",
    "WargTimestampError",
    "WargProofError",
    "WargRewind",
    "WargFork",
    "WargRootMismatch",
    "WargUnsupported",
    "SignatureError",
    "SignatureMissing",
    "SignatureInvalid",
    "SignatureUntrusted",
    "SignatureSubjectMismatch",
    "NetworkError",
    "RegistryTimeout",
    "TLSError",
    "RegistryError",
    "ConflictError",
    "OutputExists",
    "OutputOutOfDate",
    "VersionExists",
    "LockOutOfDate",
    "ResolutionConflict",
    "LocalIOError",
    "FetchManyError",
    "EXIT_CODES",
]


class PkgLoaderError(Exception):
    """Base class of every error pkgloader raises."""

    code: ClassVar[str] = "internal-error"
    exit_code: ClassVar[int] = 1

    def __init__(
        self,
        message: str,
        *,
        details: Iterable[str] = (),
        hint: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details)
        self.hint = hint
        if code is not None:
            # A more specific stable code for one failure mode of this class.
            self.code = code  # type: ignore[misc]

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r})"

    def render(self) -> str:
        """The multi-line text shown to a user (no traceback)."""
        lines = [f"error[{self.code}]: {self.message}"]
        lines.extend(f"  {d}" for d in self.details)
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, object]:
        return {
            "code": self.code,
            "exit_code": self.exit_code,
            "message": self.message,
            "details": list(self.details),
            "hint": self.hint,
        }


# --- bad input (exit 2) -------------------------------------------------------------


class InputError(PkgLoaderError, ValueError):
    """The user's input (a reference, a version, a config file, a flag) is wrong."""

    code = "invalid-input"
    exit_code = 2


class InvalidPackageRef(InputError):
    code = "invalid-package-ref"


class InvalidVersion(InputError):
    code = "invalid-version"


class InvalidVersionReq(InputError):
    code = "invalid-version-req"


class ConfigError(InputError):
    code = "invalid-config"


class RegistryNotConfigured(InputError):
    code = "no-registry"


class UsageError(InputError):
    code = "usage"


# --- not found (exit 3) -------------------------------------------------------------


class NotFoundError(PkgLoaderError):
    code = "not-found"
    exit_code = 3


class PackageNotFound(NotFoundError):
    code = "package-not-found"


class NoMatchingVersion(NotFoundError):
    code = "no-matching-version"


class VersionYanked(NotFoundError):
    code = "version-yanked"


class OfflineCacheMiss(NotFoundError):
    code = "offline-cache-miss"


# --- auth (exit 4) ------------------------------------------------------------------


class AuthError(PkgLoaderError):
    code = "auth-failed"
    exit_code = 4


# --- integrity (exit 5) -------------------------------------------------------------


class IntegrityError(PkgLoaderError):
    code = "integrity-error"
    exit_code = 5


class DigestMismatch(IntegrityError):
    code = "digest-mismatch"


class SizeMismatch(IntegrityError):
    code = "size-mismatch"


class InvalidManifest(IntegrityError):
    """A manifest pkgloader cannot use. Specific codes: ``no-wasm-layer``,
    ``multiple-wasm-layers``, ``manifest-too-large``, ``strict-layout``,
    ``unsupported-media-type``."""

    code = "invalid-manifest"


class InvalidContent(IntegrityError):
    code = "not-wasm"


class LockedDigestMismatch(IntegrityError):
    code = "locked-digest-mismatch"


class WargVerificationError(IntegrityError):
    """A warg registry served something that does not verify. Nothing of it is trusted."""

    code = "warg-verification"


class WargSignatureError(WargVerificationError):
    code = "warg-bad-signature"


class WargChainError(WargVerificationError):
    code = "warg-broken-chain"


class WargUnauthorized(WargVerificationError):
    code = "warg-unauthorized"


class WargInvalidRecord(WargVerificationError):
    code = "warg-invalid-record"


class WargTimestampError(WargVerificationError):
    code = "warg-bad-timestamp"


class WargProofError(WargVerificationError):
    code = "warg-bad-proof"


class WargRewind(WargVerificationError):
    code = "warg-rewind"


class WargFork(WargVerificationError):
    code = "warg-fork"


class WargRootMismatch(WargVerificationError):
    code = "warg-root-mismatch"


class WargUnsupported(WargVerificationError):
    code = "warg-unsupported"


class SignatureError(IntegrityError):
    """The provenance policy of a package is not met (see README, Provenance). The message
    names the manifest; the details name the signer found and the signer(s) expected."""

    code = "signature-error"


class SignatureMissing(SignatureError):
    """No signature or attestation was found for the manifest (policy mode ``require``)."""

    code = "signature-missing"


class SignatureInvalid(SignatureError):
    """A signature is malformed or does not verify against the signer it names."""

    code = "signature-invalid"


class SignatureUntrusted(SignatureError):
    """Signatures verify (or cannot be checked), but none is by an accepted signer."""

    code = "signature-untrusted"


class SignatureSubjectMismatch(SignatureError):
    """A valid signature by an accepted signer covers another manifest digest."""

    code = "signature-subject-mismatch"


# --- network (exit 6) ---------------------------------------------------------------


class NetworkError(PkgLoaderError):
    code = "network-error"
    exit_code = 6


class RegistryTimeout(NetworkError):
    code = "timeout"


class TLSError(NetworkError):
    code = "tls-error"


class RegistryError(NetworkError):
    code = "registry-error"


# --- conflicts (exit 7) -------------------------------------------------------------


class ConflictError(PkgLoaderError):
    code = "conflict"
    exit_code = 7


class OutputExists(ConflictError):
    code = "output-exists"

    @classmethod
    def at(cls, path: object, details: Iterable[str] = ()) -> OutputExists:
        """The refusal to replace an output file, worded the same wherever it happens."""
        return cls(f"{str(path)!r} already exists; not overwriting it", details=list(details),
                   hint="pass --overwrite to replace it, or choose another path with -o")


class VersionExists(ConflictError):
    code = "version-exists"


class OutputOutOfDate(ConflictError):
    """``fetch --check``: an output is missing or holds other bytes than the release."""

    code = "output-out-of-date"


class LockOutOfDate(ConflictError):
    code = "lock-out-of-date"


class ResolutionConflict(ConflictError):
    """No set of versions satisfies every requirement (one version per package)."""

    code = "resolution-conflict"


# --- local I/O (exit 8) -------------------------------------------------------------


class LocalIOError(PkgLoaderError):
    code = "io-error"
    exit_code = 8


#: which failure decides the exit code when several packages fail in one command: the
#: most severe first (wrong bytes, refused credentials, a local fault, the network, a
#: conflict, something missing, bad input)
SEVERITY = (1, 5, 4, 8, 6, 7, 3, 2)


class FetchManyError(PkgLoaderError):
    """Some of several packages failed. ``outcomes`` holds, per requested spec and in the
    order given, its ``FetchResult`` or its ``PkgLoaderError``; ``fetched`` and ``errors``
    are the two halves. The code and exit code are those of the most severe failure."""

    def __init__(self, outcomes: list[tuple[str, object]]) -> None:
        self.outcomes = outcomes
        self.errors = [(spec, o) for spec, o in outcomes if isinstance(o, PkgLoaderError)]
        self.fetched = [o for _, o in outcomes if not isinstance(o, PkgLoaderError)]
        worst = min(self.errors, key=lambda e: SEVERITY.index(e[1].exit_code) if e[1].exit_code in SEVERITY
                    else len(SEVERITY))[1]
        super().__init__(
            f"{len(self.errors)} of {len(outcomes)} packages failed",
            details=[f"{spec}: {err.message}" for spec, err in self.errors],
            hint=worst.hint, code=worst.code,
        )
        self.exit_code = worst.exit_code  # type: ignore[misc]


#: Exit codes of the CLI, documented in README.
EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "internal error (a bug: please report it with the output of -v)",
    2: "bad input: package reference, version requirement, config file or usage",
    3: "not found: package (or not authorized: a 403/404), matching version, or (with --offline) cache entry",
    4: "authentication required (a 401 without credentials) or refused (configured credentials, then anonymous)",
    5: "integrity: digest/size mismatch, invalid manifest or content, failed warg verification, provenance policy not met",
    6: "network or registry error (connection, timeout, TLS, unexpected answer)",
    7: "conflict: output exists, version already published, lock file out of date",
    8: "local I/O error (cannot read or write a file)",
    130: "interrupted",
}
