"""What ``pkgloader.lock`` records about provenance (``signed_by`` on a locked version), and
the ``--locked`` rule: a package the lock records as signed that is now checked and found
without an accepted signature fails (``signature-missing``, exit 5), whatever the mode."""

from __future__ import annotations

from typing import Any

__all__ = ["lock_signers"]


def lock_signers(engine: Any, resolution: Any, old: Any, *, locked: bool) -> dict[Any, str | None]:
    """package -> ``signed_by`` for the new lock: the signer verified in this run; None when
    the check ran and failed (mode warn); else (not checked: mode off, ``--no-verify``, not
    OCI) what the old lock recorded for the same version and digest."""
    from .._errors import SignatureMissing

    out: dict[Any, str | None] = {}
    for resolved in resolution.values():
        if resolved.version is None:
            continue
        key = (str(resolved.package), str(resolved.version))
        before = old.get(resolved.package, resolved.registry)
        was = next((v.signed_by for v in (before.versions if before else ()) if v.version == resolved.version
                    and v.signed_by), None)
        if key in engine.verified:
            out[resolved.package] = engine.verified[key].signed_by
        elif key in engine.unverified:
            if locked and was:
                raise SignatureMissing(
                    f"{resolved.package}@{resolved.version} lost its signature: the lock records it as signed, "
                    f"and it now fails the check ({engine.unverified[key]})",
                    details=[f"locked: signed by {was}", f"registry: {resolved.registry}"],
                    hint="do not use it until the publisher explains; pass --no-verify to build anyway")
            out[resolved.package] = None
        else:
            out[resolved.package] = was
    return out
