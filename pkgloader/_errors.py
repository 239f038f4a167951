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
    │   ├── MissingExtra                missing-extra
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
    "MissingExtra",
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


class MissingExtra(InputError):
    """An optional extra (``pip install 'pkgloader[wit]'``) that a command needs is not installed."""

    code = "missing-extra"


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
    7: "conflict: output exists (with other bytes) or not up to date (fetch --check), version already published, lock file out of date",
    8: "local I/O error (cannot read or write a file)",
    130: "interrupted",
}


#: Every error code, with its exit code and what it means. README's error-code table is
#: generated from this (``error_code_table()``; ``python scripts/update_readme.py`` rewrites
#: it) and ``tests/unit/test_error_codes.py`` fails when a code raised anywhere in pkgloader
#: is missing here, when an exit code disagrees with the class, or when README drifts.
#: A new code: add it here, then run the script.
CODES: dict[str, tuple[int, str]] = {
    "internal-error": (1, "a bug in pkgloader: rerun with -v and report it"),
    # input (2)
    "invalid-input": (2, "bad input"),
    "invalid-package-ref": (2, "a package reference is not namespace:name[@requirement]"),
    "invalid-version": (2, "a version is not SemVer 2.0.0"),
    "invalid-version-req": (2, "a version requirement does not parse (Cargo rules)"),
    "invalid-config": (2, "a config file is malformed, nested too deeply, not a regular file, or has a bad value"),
    "invalid-lock-file": (2, "a lock file (pkgloader.lock, wkg.lock, Cargo-component.lock) does not parse"),
    "invalid-wit": (2, "a WIT file of the project cannot be read as WIT"),
    "registry-unusable": (2, "the registry's config entry was invalid (reported as a warning when loaded)"),
    "no-registry": (2, "no registry is configured for the package's namespace"),
    "usage": (2, "the command line is wrong"),
    "missing-extra": (2, "a feature needs an optional extra that is not installed (pip install 'pkgloader[...]')"),
    # not found (3)
    "not-found": (3, "something was not found"),
    "package-not-found": (3, "no such package (or not authorized: a 403/404 from the registry)"),
    "no-matching-version": (3, "no version matches the requirement"),
    "version-yanked": (3, "the exact version asked for is yanked"),
    "offline-cache-miss": (3, "--offline and the cache does not hold it"),
    # auth (4)
    "auth-failed": (4, "the credentials (then anonymous access) were refused"),
    "auth-required": (4, "the registry answered 401 and no credentials are configured"),
    # integrity (5)
    "integrity-error": (5, "the bytes cannot be trusted"),
    "digest-mismatch": (5, "content does not hash to its digest"),
    "size-mismatch": (5, "content is not the size its manifest announced"),
    "invalid-manifest": (5, "a manifest or index is malformed"),
    "invalid-digest": (5, "a digest is not sha256:<64 lowercase hex>"),
    "unsupported-digest": (5, "a digest algorithm other than sha256"),
    "unsupported-media-type": (5, "a manifest of a media type pkgloader does not read"),
    "manifest-too-large": (5, "a manifest larger than 4 MiB"),
    "no-wasm-layer": (5, "the manifest has no wasm layer"),
    "multiple-wasm-layers": (5, "the manifest has several wasm layers"),
    "strict-layout": (5, "--strict: the artifact does not follow the CNCF Wasm OCI layout"),
    "invalid-oci-layout": (5, "an OCI image layout directory is malformed"),
    "not-wasm": (5, "the content is not WebAssembly"),
    "invalid-component": (5, "a component or WIT package binary does not parse"),
    "locked-digest-mismatch": (5, "the registry serves other bytes than the lock file records"),
    "warg-verification": (5, "a warg log failed verification"),
    "warg-bad-signature": (5, "a warg record's signature is invalid"),
    "warg-broken-chain": (5, "a warg log's records do not chain"),
    "warg-unauthorized": (5, "a warg record was signed by a key without the permission"),
    "warg-invalid-record": (5, "a warg record or checkpoint is malformed"),
    "warg-bad-timestamp": (5, "a warg record's timestamp goes backwards or is in the future"),
    "warg-bad-proof": (5, "a warg inclusion or consistency proof does not verify"),
    "warg-rewind": (5, "a warg registry's checkpoint is older than one already seen"),
    "warg-fork": (5, "a warg registry shows two different logs for one checkpoint"),
    "warg-root-mismatch": (5, "a warg checkpoint's root does not match the log"),
    "warg-unsupported": (5, "a warg record uses a feature pkgloader does not verify"),
    "signature-error": (5, "a provenance check failed"),
    "signature-missing": (5, "the policy requires a signature and none was found"),
    "signature-invalid": (5, "a signature does not verify"),
    "signature-untrusted": (5, "a valid signature, but from no signer the policy accepts"),
    "signature-subject-mismatch": (5, "a signature is for another manifest digest"),
    # network (6)
    "network-error": (6, "the connection failed"),
    "timeout": (6, "connect, stall, low-speed or total deadline exceeded"),
    "tls-error": (6, "TLS failed (e.g. a certificate that is not trusted)"),
    "registry-error": (6, "the registry answered something unexpected"),
    "answer-too-large": (6, "the registry's answer is larger than pkgloader reads for it"),
    "mirrors-failed": (6, "every mirror failed and falling back to the origin is off"),
    # conflict (7)
    "conflict": (7, "a conflict"),
    "output-exists": (7, "the output holds other bytes (pass --overwrite)"),
    "output-out-of-date": (7, "fetch --check: an output is missing or holds other bytes"),
    "version-exists": (7, "publish: the version is already published (pass --force)"),
    "lock-out-of-date": (7, "--locked/--frozen: the lock file would change"),
    "resolution-conflict": (7, "no set of versions satisfies every requirement"),
    "resolution-too-complex": (7, "the resolver gave up after too many steps"),
    "deps-conflict": (7, "a package is already in wit/deps/ in another form"),
    # local (8)
    "io-error": (8, "a local file cannot be read or written"),
    "not-a-regular-file": (8, "an output or cache path is a directory, device, FIFO or socket: never replaced"),
}


def error_code_table() -> str:
    """README's error-code table (Markdown), from ``CODES``."""
    rows = ["| code | exit | meaning |", "|---|---|---|"]
    for code, (exit_code, meaning) in sorted(CODES.items(), key=lambda kv: (kv[1][0], kv[0])):
        rows.append(f"| `{code}` | {exit_code} | {meaning} |")
    return "\n".join(rows) + "\n"
