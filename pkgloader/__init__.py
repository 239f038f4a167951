"""pkgloader: find, verify and cache WebAssembly component packages.

    >>> import pkgloader
    >>> with pkgloader.Client() as client:                          # doctest: +SKIP
    ...     result = client.fetch("wasi:http@0.2", "wit/deps/")
    ...     print(result.release.version, result.release.digest, result.path)

Clients: :class:`Client` (sync, thread-safe) and :class:`AsyncClient` (the same methods as
coroutines). What they return: :class:`FetchResult`, :class:`OutputStatus` (``check``), :class:`Release`, :class:`VersionInfo`,
:class:`ProjectResult` (lock, sync, update), :class:`Project`, :class:`PublishResult`. What
they raise: :class:`PkgLoaderError` and its subclasses only, each with a stable ``code`` and
``exit_code`` (see ``EXIT_CODES``).

Every public name is imported on first use, so that ``import pkgloader`` (and the CLI's
warm path) stays cheap; ``dir(pkgloader)`` and ``help(pkgloader)`` list them all.
"""

from __future__ import annotations

from ._version import __version__

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from ._client import AsyncClient, Client
    from ._config import Config
    from ._digest import Digest
    from ._engine import FetchResult, OutputStatus
    from ._errors import *  # noqa: F403
    from ._http import BodyTooLarge
    from ._project import Project, ProjectResult
    from ._ref import PackageRef, PackageSpec
    from ._release import Release, VersionInfo
    from ._semver import Version, VersionReq
    from .backends.oci import PublishResult

#: every error class pkgloader raises (``pkgloader._errors``), exported by name
_ERRORS = (
    "PkgLoaderError", "InputError", "InvalidPackageRef", "InvalidVersion", "InvalidVersionReq", "ConfigError",
    "RegistryNotConfigured", "UsageError", "MissingExtra", "NotFoundError", "PackageNotFound", "NoMatchingVersion", "VersionYanked",
    "OfflineCacheMiss", "AuthError", "IntegrityError", "DigestMismatch", "SizeMismatch", "InvalidManifest",
    "InvalidContent", "LockedDigestMismatch", "WargVerificationError", "WargSignatureError", "WargChainError",
    "WargUnauthorized", "WargInvalidRecord", "WargTimestampError", "WargProofError", "WargRewind", "WargFork",
    "WargRootMismatch", "WargUnsupported", "SignatureError", "SignatureMissing", "SignatureInvalid",
    "SignatureUntrusted", "SignatureSubjectMismatch", "NetworkError", "RegistryTimeout", "TLSError", "RegistryError",
    "ConflictError", "OutputExists", "OutputOutOfDate", "VersionExists", "LockOutOfDate", "ResolutionConflict", "LocalIOError",
    "FetchManyError", "EXIT_CODES",
)

_LAZY = {
    "Client": "._client",
    "AsyncClient": "._client",
    "Config": "._config",
    "FetchResult": "._engine",
    "OutputStatus": "._engine",
    "Release": "._release",
    "VersionInfo": "._release",
    "Digest": "._digest",
    "PackageRef": "._ref",
    "PackageSpec": "._ref",
    "Version": "._semver",
    "VersionReq": "._semver",
    "Project": "._project",
    "ProjectResult": "._project",
    "PublishResult": ".backends.oci",
    "BodyTooLarge": "._http",
    **{name: "._errors" for name in _ERRORS},
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> object:
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


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
