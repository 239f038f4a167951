"""pkgloader: find, verify and cache WebAssembly component packages.

    >>> import pkgloader
    >>> with pkgloader.Client() as client:                          # doctest: +SKIP
    ...     result = client.fetch("wasi:http@0.2", "wit/deps/")
    ...     print(result.release.version, result.release.digest, result.path)

The value types and errors are imported eagerly (they are light); the clients are loaded
on first use so that ``import pkgloader`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import (
    AuthError,
    ConfigError,
    ConflictError,
    DigestMismatch,
    InputError,
    IntegrityError,
    InvalidContent,
    InvalidManifest,
    InvalidPackageRef,
    InvalidVersion,
    InvalidVersionReq,
    NetworkError,
    NoMatchingVersion,
    NotFoundError,
    OfflineCacheMiss,
    OutputExists,
    PackageNotFound,
    PkgLoaderError,
    RegistryNotConfigured,
    SizeMismatch,
    VersionExists,
    VersionYanked,
    WargVerificationError,
)
from ._ref import PackageRef, PackageSpec
from ._semver import Version, VersionReq
from ._version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from ._client import AsyncClient, Client
    from ._config import Config
    from ._digest import Digest
    from ._engine import FetchResult
    from ._release import Release, VersionInfo

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
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
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


def _set_module() -> None:
    for name in __all__:
        obj = globals().get(name)
        if obj is not None and hasattr(obj, "__module__") and name != "__version__":
            try:
                obj.__module__ = "pkgloader"
            except (AttributeError, TypeError):
                pass


_set_module()
