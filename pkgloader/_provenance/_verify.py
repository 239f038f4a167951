"""Deciding whether the signatures found for a manifest meet a policy.

Order of the checks for each candidate: well-formed (else *invalid*); for every accepted
public key, does a signature verify over the exact signed bytes; for a candidate that
carries a certificate, does its identity match an accepted keyless signer and does
sigstore-python verify it; then, for a signature by an accepted signer, does its subject
digest equal the manifest digest. The first candidate that passes everything wins. When none
does, the error says the most telling thing found: a valid signature of another digest
(``signature-subject-mismatch``) before a broken one (``signature-invalid``) before
signatures by nobody accepted (``signature-untrusted``); no candidate at all is
``signature-missing``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._errors import (
    ConfigError,
    SignatureError,
    SignatureInvalid,
    SignatureMissing,
    SignatureSubjectMismatch,
    SignatureUntrusted,
)
from ._formats import Candidate
from ._policy import Policy, Signer

__all__ = ["Verified", "evaluate", "load_keys"]


@dataclass(frozen=True)
class Verified:
    """Who signed what: the result of a successful verification."""

    subject: str  # the manifest digest
    format: str  # "cosign-simplesigning" or "sigstore-bundle"
    signer: str  # the accepted signer, as the policy names it
    found: str  # the signer as the signature names it (key hint, certificate identity)
    where: str  # where the signature was found
    predicate_type: str | None = None
    log: dict[str, Any] = field(default_factory=dict)  # logIndex, integratedTime (not verified for keyed)

    @property
    def signed_by(self) -> str:
        """What the lock file records: the format and the signer as the signature names it
        (a key's hint, a certificate's identity), the same on every machine."""
        return f"{self.format}: {self.found}"

    def to_json(self) -> dict[str, Any]:
        return {"subject": self.subject, "format": self.format, "signer": self.signer, "found": self.found,
                "where": self.where, "predicate_type": self.predicate_type, "log": dict(self.log)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Verified:
        return cls(str(data["subject"]), str(data["format"]), str(data["signer"]), str(data.get("found", "")),
                   str(data.get("where", "")), data.get("predicate_type"), dict(data.get("log") or {}))


def load_keys(signers: tuple[Signer, ...], origin: str = "") -> list[tuple[Signer, Any]]:
    from ._keys import load_public_key

    out = []
    for s in signers:
        if s.key is None:
            continue
        try:
            out.append((s, load_public_key(s.key)))
        except OSError as exc:
            raise ConfigError(f"cannot read the public key {s.key} of a provenance signer: {exc.strerror or exc}",
                              details=[f"set in {origin}"] if origin else [],
                              hint="fix the path under [provenance] signers (key = \"PATH\")") from None
        except ValueError as exc:
            raise ConfigError(f"the provenance signer key {s.key} cannot be used: {exc}",
                              details=[f"set in {origin}"] if origin else [],
                              hint="give a PEM public key: ECDSA P-256/P-384, Ed25519 or RSA") from None
    return out


@dataclass
class _Outcome:
    kind: str  # "subject", "invalid", "untrusted", "unavailable"
    candidate: Candidate
    found: str
    why: str


def evaluate(candidates: list[Candidate], policy: Policy, subject: str, what: str,
             notes: list[str] | None = None) -> Verified:
    """The first candidate that meets ``policy`` for manifest ``subject``, or a
    ``SignatureError`` naming what was found and what was expected."""
    keys = load_keys(policy.signers, policy.origins.get("signers", ""))
    keyless = [s for s in policy.signers if s.keyless]
    outcomes: list[_Outcome] = []
    for c in candidates:
        found = f"key {c.hint}" if c.hint else ("an unnamed key" if c.certificate is None else "a certificate")
        if c.problem:
            outcomes.append(_Outcome("invalid", c, found, c.problem))
            continue
        accepted_by: str | None = None
        accepted_found = found
        for signer, key in keys:
            if any(key.verify(sig, c.signed) for sig in c.signatures):
                accepted_by, accepted_found = str(signer), f"key {key.hint} ({key.kind})"
                break
        if accepted_by is None and keys and c.certificate is None:
            if c.hint and any(k.hint == c.hint for _, k in keys):
                outcomes.append(_Outcome("invalid", c, found, "the signature does not verify with the key it names"))
            else:
                outcomes.append(_Outcome("untrusted", c, found, "no accepted key verifies it"))
            continue
        if accepted_by is None and c.certificate is not None:
            from ._keyless import SigstoreMissing, certificate_identity, describe_identity

            try:
                identity = certificate_identity(c.certificate)
            except ValueError as exc:
                outcomes.append(_Outcome("invalid", c, found, str(exc)))
                continue
            found = describe_identity(identity)
            matching = [s for s in keyless if s.matches(identity)]
            if not matching:
                outcomes.append(_Outcome("untrusted", c, found, "its identity is not an accepted signer"))
                continue
            try:
                from ._keyless import verify_bundle, verify_legacy

                if c.bundle is not None:
                    verify_bundle(c.bundle, identity, policy.trusted_root)
                else:
                    verify_legacy(c.payload, c.signatures[0], c.certificate, c.cosign_bundle, identity, policy.trusted_root)
            except SigstoreMissing:
                outcomes.append(_Outcome("unavailable", c, found, "sigstore-python is not installed"))
                continue
            except ValueError as exc:
                outcomes.append(_Outcome("invalid", c, found, str(exc)))
                continue
            accepted_by, accepted_found = str(matching[0]), found
        if accepted_by is None:
            outcomes.append(_Outcome("untrusted", c, found, "no accepted signer is configured"))
            continue
        if subject.lower() not in c.subjects:
            outcomes.append(_Outcome("subject", c, accepted_found,
                                     f"it covers {', '.join(c.subjects) or 'nothing'}, not {subject}"))
            continue
        return Verified(subject, c.format, accepted_by, accepted_found, c.where, c.predicate_type, dict(c.log))
    raise _failure(outcomes, policy, subject, what, notes or [])


def _failure(outcomes: list[_Outcome], policy: Policy, subject: str, what: str, notes: list[str]) -> SignatureError:
    expected = f"expected: {policy.describe_signers()} (policy {policy.pattern!r}, {policy.origins.get('signers') or policy.origins.get('mode') or 'built-in'})"
    details = [f"manifest {subject}"]
    for o in outcomes[:8]:
        details.append(f"found: {o.found}: {o.candidate.describe()}: {o.why}")
    if len(outcomes) > 8:
        details.append(f"... and {len(outcomes) - 8} more")
    details.append(expected)
    details.extend(notes)
    kinds = {o.kind for o in outcomes}
    if not outcomes:
        return SignatureMissing(f"{what} has no signature or attestation", details=details,
                                hint="ask the publisher to sign it, or set the policy's mode to \"warn\" or \"off\" "
                                     "(or pass --no-verify) to accept it unsigned")
    if "subject" in kinds:
        return SignatureSubjectMismatch(f"the signature of {what} by an accepted signer covers another manifest",
                                        details=details,
                                        hint="the signature was copied from another version; do not use this package")
    if "invalid" in kinds:
        return SignatureInvalid(f"the signature of {what} is invalid", details=details,
                                hint="the signature or the package was altered; do not use it")
    if "unavailable" in kinds:
        return SignatureUntrusted(f"the signature of {what} cannot be checked", details=details,
                                  hint="keyless signatures need the extra: pip install 'pkgloader[sigstore]'")
    return SignatureUntrusted(f"{what} is signed, but by no accepted signer", details=details,
                              hint="add the signer to the policy's signers if you trust it ([provenance] in the config)")
