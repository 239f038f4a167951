"""The engine's provenance step: run before a release's content is downloaded, committed to
the cache, or copied to an output (``Engine.ensure_content_flow``).

``engine.verify``: None follows the policy (``require``, ``warn``, ``off``); True
(``--verify``) makes the policy ``require`` (and, with no policy, requires a signature by
nobody: any found is untrusted); False (``--no-verify``) skips the check. A manifest
verified under a policy is recorded in the cache (``_store``): a warm run pays nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._log import get_logger
from ._policy import Policy, policy_for
from ._verify import Verified

if TYPE_CHECKING:  # pragma: no cover
    from .._http import Flow
    from .._release import Release
    from .._source import Source

__all__ = ["enforce_flow", "effective_policy"]

log = get_logger()


def effective_policy(config: Any, rel: Release, verify: bool | None) -> tuple[Policy, str] | None:
    """(policy, mode) for ``rel``, or None when nothing is checked."""
    if verify is False or rel.backend != "oci":
        return None
    policy = policy_for(config, rel.package, rel.registry)
    if policy is None:
        return (Policy("--verify", "require", origins={"mode": "flag --verify"}), "require") if verify else None
    mode = "require" if verify else policy.mode
    return None if mode == "off" else (policy, mode)


def enforce_flow(engine: Any, rel: Release, source: Source | None) -> Flow[Verified | None]:
    from .._errors import OfflineCacheMiss, SignatureError, SignatureMissing
    from ._store import get_verified, put_verified

    chosen = effective_policy(engine.config, rel, engine.verify)
    if chosen is None:
        return None
    policy, mode = chosen
    what = f"{rel.package}@{rel.version} from {rel.registry}"
    key = (str(rel.package), str(rel.version))
    subject = rel.manifest_digest
    fp = policy.fingerprint()
    hit = get_verified(engine.cache.root, subject, fp) if subject else None
    if hit is None and rel.index_digest:  # the signature was on the image index (see verify_release_flow)
        hit = get_verified(engine.cache.root, rel.index_digest, fp)
    if hit is not None:
        engine.verified[key] = hit
        return hit
    try:
        if not subject:
            raise SignatureMissing(f"{what} has no manifest digest to check signatures against")
        if engine.offline:
            if mode == "warn":
                log.warning("provenance of %s not checked: offline, and it was never verified", what)
                return None
            raise OfflineCacheMiss(f"the signature check of {what} is not in the cache (offline)",
                                   hint="run once without --offline to verify it (or pass --no-verify)")
        if source is None:
            source = yield from engine._source(rel.package)
        from . import verify_release_flow

        verified = yield from verify_release_flow(engine.oci, source, rel, policy)
    except SignatureError as exc:
        if mode != "warn":
            raise
        engine.unverified[key] = exc.code
        log.warning("provenance of %s not verified (policy %r, mode warn): %s: %s", what, policy.pattern,
                    exc.code, exc.message)
        return None
    put_verified(engine.cache.root, fp, verified)
    engine.verified[key] = verified
    log.info("verified %s: %s signed by %s", what, verified.format, verified.signer)
    return verified
