"""Verified provenance of OCI packages: signatures and attestations, checked before any
byte of the package is used.

    _formats   legacy cosign simplesigning and Sigstore bundle v0.3 (DSSE, in-toto) parsing
    _keys      public keys from PEM files (ECDSA P-256/P-384, Ed25519, RSA); keyed signing
    _keyless   certificate identities; sigstore-python (optional extra) for keyless bundles
    _policy    Signer, Policy, the built-in wasi:* policy, policy lookup in the config
    _verify    evaluate(candidates, policy, subject) -> Verified, or a SignatureError
    _store     the verified-result cache per manifest digest
    _sign      keyed v0.3 bundles for ``publish --sign-key``

Discovery (referrers API, fallback tag, legacy ``.sig`` tag) is the OCI backend's
``backends/oci_provenance``. ``verify_release_flow`` ties them together.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .._http import Flow
    from .._release import Release
    from .._source import Source
    from ._policy import Policy, Signer, policy_for
    from ._verify import Verified, evaluate

# loaded on first use: Config.builtin() imports _policy, and nothing more should come with it
_LAZY = {"Policy": "._policy", "Signer": "._policy", "policy_for": "._policy", "Verified": "._verify",
         "evaluate": "._verify"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module, __name__), name)

__all__ = ["Policy", "Signer", "Verified", "evaluate", "policy_for", "verify_release_flow", "verify_manifest_flow"]


def policy_patterns(ref: Any) -> tuple[str, str, str]:
    """The ``[provenance]`` patterns that may apply to ``ref``, most specific first (the
    engine looks them up before importing the policy machinery: most fetches have none)."""
    return (str(ref), f"{ref.namespace}:*", "*")


def may_apply(config: Any, ref: Any) -> bool:
    """Whether any ``[provenance]`` table (the built-in ``wasi:*`` included) names a pattern
    that may apply to ``ref``; ``policy_for`` decides, this only rules policies out."""
    table = getattr(config, "provenance", None) or {}
    return any(table.get(p) for p in policy_patterns(ref))


def verify_manifest_flow(ctx: Any, source: Source, subject: str, policy: Policy, what: str) -> Flow[Verified]:
    """Discover the signatures of manifest ``subject`` and evaluate them against ``policy``:
    the referrers first; the legacy ``.sig`` tag only when they do not meet it."""
    from .._errors import SignatureError
    from ..backends.oci_provenance import legacy_flow, referrers_flow
    from ._verify import evaluate

    d = yield from referrers_flow(ctx, source, subject)
    if d.candidates:
        try:
            return evaluate(d.candidates, policy, subject, what, d.notes)
        except SignatureError:
            pass
    d = yield from legacy_flow(ctx, source, subject, d)
    return evaluate(d.candidates, policy, subject, what, d.notes)


def verify_release_flow(ctx: Any, source: Source, rel: Release, policy: Policy) -> Flow[Verified]:
    """The signatures of the release's manifest; for a tag that points at an image index, of
    the index too when the manifest has none (``cosign sign IMAGE:TAG`` signs the digest the
    tag points at, the index; a ``Verified`` then names the index as its subject)."""
    from .._errors import SignatureMissing

    assert rel.manifest_digest is not None
    what = f"{rel.package}@{rel.version} from {rel.registry}"
    try:
        return (yield from verify_manifest_flow(ctx, source, rel.manifest_digest, policy, what))
    except SignatureMissing as exc:
        if not rel.index_digest:
            raise
        try:
            return (yield from verify_manifest_flow(ctx, source, rel.index_digest, policy, what))
        except SignatureMissing:
            exc.details.insert(1, f"nor its image index {rel.index_digest}")
            raise exc from None
