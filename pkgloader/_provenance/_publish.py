"""``publish --sign-key``: sign the manifest just pushed and attach the bundle as a referrer."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .._frozen import replace

if TYPE_CHECKING:  # pragma: no cover
    from .._http import Flow
    from .._source import Source

__all__ = ["load_signing_key", "sign_published_flow"]


def load_signing_key(path: str | os.PathLike[str]) -> Any:
    """The private key, read before anything is pushed (a bad key publishes nothing)."""
    from .._errors import LocalIOError, UsageError
    from ._keys import load_private_key

    try:
        return load_private_key(os.fspath(path))
    except OSError as exc:
        raise LocalIOError(f"cannot read the signing key {os.fspath(path)!r}: {exc.strerror or exc}",
                           hint="give the path of a PEM private key with --sign-key") from None
    except ValueError as exc:
        raise UsageError(f"the signing key {os.fspath(path)!r} cannot be used: {exc}",
                         hint="give an unencrypted PEM private key (ECDSA P-256/P-384, Ed25519 or RSA)") from None


def sign_published_flow(ctx: Any, source: Source, result: Any, private_key: Any) -> Flow[Any]:
    from ..backends import oci
    from ..backends.oci_provenance import attach_bundle_flow
    from ._formats import COSIGN_SIGN_PREDICATE
    from ._sign import keyed_bundle

    manifest = yield from oci.manifest_flow(ctx, source, result.manifest_digest,
                                            what=f"{result.package}@{result.version}")
    bundle = keyed_bundle(private_key, f"{source.oci_registry}/{source.oci_repository}", manifest.digest)
    digest = yield from attach_bundle_flow(ctx, source, manifest.digest, manifest.size, bundle, COSIGN_SIGN_PREDICATE)
    return replace(result, signature=digest)
