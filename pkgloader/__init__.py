"""pkgloader: find, verify and cache WebAssembly component packages.

    >>> import pkgloader
    >>> with pkgloader.Client() as client:                          # doctest: +SKIP
    ...     result = client.fetch("wasi:http@0.2", "wit/deps/")
    ...     print(result.release.version, result.release.digest, result.path)

Every public name is imported on first use, so that ``import pkgloader`` (and the CLI's
warm path) stays cheap.
"""

from __future__ import annotations

from ._version import __version__

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from ._client import AsyncClient, Client
    from ._config import Config
    from ._digest import Digest
    from ._engine import FetchResult
    from ._errors import *  # noqa: F403
    from ._ref import PackageRef, PackageSpec
    from ._release import Release, VersionInfo
    from ._semver import Version, VersionReq

__all__ = [
    "__version__",
    "Client",
    "AsyncClient",
    "Config",
    "FetchResult",
    "PackageRef",
    "PackageSpec",
    "Version",
    "VersionReq",
    "Release",
    "VersionInfo",
    "Digest",
    "PkgLoaderError",
    "InputError",
    "InvalidPackageRef",
    "InvalidVersion",
    "InvalidVersionReq",
    "ConfigError",
    "RegistryNotConfigured",
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
    "WargVerificationError",
    "NetworkError",
    "ConflictError",
    "OutputExists",
    "VersionExists",
]

_LAZY = {
    "Client": "._client",
    "AsyncClient": "._client",
    "Config": "._config",
    "FetchResult": "._engine",
    "Release": "._release",
    "VersionInfo": "._release",
    "Digest": "._digest",
    "PackageRef": "._ref",
    "PackageSpec": "._ref",
    "Version": "._semver",
    "VersionReq": "._semver",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name) or ("._errors" if name in __all__ else None)
    if module is None:
        raise AttributeError(f"module 'pkgloader' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    try:
        value.__module__ = "pkgloader"
    except (AttributeError, TypeError):
        pass
    globals()[name] = value
    return value

