"""Backends: one module per protocol, all behind the :class:`Backend` protocol.

A backend answers three questions about one package at one source, each as a sans-I/O flow
(see ``pkgloader._http``) so the sync and async clients drive the same code:

- ``versions_flow``: every version, with its yanked flag;
- ``release_flow``: one version's release (content digest, size, media type, location);
- ``content_flow``: stream the release's bytes into a sink (the engine hashes, size-checks
  and commits them to the cache; the backend never writes anything itself).

Modules are imported on first use, so a cached fetch imports none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from .._engine import Engine
    from .._http import Flow
    from .._release import Release, VersionInfo
    from .._semver import Version
    from .._source import Source

__all__ = ["Backend", "get_backend"]


class Backend(Protocol):
    name: str

    def versions_flow(self, engine: Engine, source: Source) -> Flow[list[VersionInfo]]:
        """Every version of ``source.package`` (yanked ones included, flagged), sorted."""

    def release_flow(self, engine: Engine, source: Source, version: Version) -> Flow[Release]:
        """The release of one version (raise ``PackageNotFound`` when it does not exist).
        A yanked release is returned with ``yanked=True``; the engine decides."""

    def content_flow(self, engine: Engine, source: Source, release: Release, sink: Callable[[bytes], None],
                     reset: Callable[[], None]) -> Flow[None]:
        """Stream the release's bytes into ``sink``; call ``reset`` before restarting."""


def _mirror_plan(config: Any, source: Source) -> Any:
    """``_mirrors.mirror_plan``, imported only when a config entry it reads names mirrors
    or has problems (which it reports): most registries have neither."""
    for name in (source.registry, source.oci_registry, "*"):
        rc = config.registries.get(name) if name else None
        if rc is not None and (rc.problems or "mirrors" in rc.backends.get("oci", {})):
            from . import _mirrors

            return _mirrors.mirror_plan(config, source)
    return None


class _Oci:
    """OCI; through the registry's mirrors when it has some (see ``_mirrors``)."""

    name = "oci"

    def versions_flow(self, engine: Engine, source: Source) -> Flow[list[VersionInfo]]:
        from . import oci

        plan = _mirror_plan(engine.config, source)
        if plan is not None:
            from . import _mirrors

            return (yield from _mirrors.versions_flow(engine, source, plan))
        return (yield from oci.list_versions_flow(engine.oci, source))

    def release_flow(self, engine: Engine, source: Source, version: Version) -> Flow[Release]:
        from . import oci

        plan = _mirror_plan(engine.config, source)
        if plan is not None:
            from . import _mirrors

            return (yield from _mirrors.release_flow(engine, source, version, plan))
        return (yield from oci.release_flow(engine.oci, source, version))

    def content_flow(self, engine: Engine, source: Source, release: Release, sink: Callable[[bytes], None],
                     reset: Callable[[], None]) -> Flow[None]:
        from . import oci

        plan = _mirror_plan(engine.config, source)
        if plan is not None:
            from . import _mirrors

            yield from _mirrors.content_flow(engine, source, release, sink, reset, plan)
            return
        yield from oci.blob_flow(engine.oci, source, release, sink, reset)


class _OciLayout:
    """A read-only OCI image layout directory (``[registry."NAME".oci-layout] root = DIR``)."""

    name = "oci-layout"

    def versions_flow(self, engine: Engine, source: Source) -> Flow[list[VersionInfo]]:
        from .. import _ocilayout

        return _ocilayout.list_versions(source)
        yield  # pragma: no cover - makes this a generator

    def release_flow(self, engine: Engine, source: Source, version: Version) -> Flow[Release]:
        from .. import _ocilayout

        return _ocilayout.release(source, version, strict=engine.strict)
        yield  # pragma: no cover

    def content_flow(self, engine: Engine, source: Source, release: Release, sink: Callable[[bytes], None],
                     reset: Callable[[], None]) -> Flow[None]:
        from .. import _ocilayout

        _ocilayout.read_content(source, release, sink)
        return
        yield  # pragma: no cover


class _Local:
    """No network: plain file reads, wrapped as flows that never yield a request."""

    name = "local"

    def versions_flow(self, engine: Engine, source: Source) -> Flow[list[VersionInfo]]:
        from . import local

        return local.list_versions(source)
        yield  # pragma: no cover - makes this a generator

    def release_flow(self, engine: Engine, source: Source, version: Version) -> Flow[Release]:
        from . import local

        return local.release(source, version)
        yield  # pragma: no cover

    def content_flow(self, engine: Engine, source: Source, release: Release, sink: Callable[[bytes], None],
                     reset: Callable[[], None]) -> Flow[None]:
        from . import local

        with open(local.file_for(source, release.version), "rb") as f:
            while chunk := f.read(1 << 20):
                sink(chunk)
        return
        yield  # pragma: no cover


class _Warg:
    name = "warg"

    def versions_flow(self, engine: Engine, source: Source) -> Flow[list[VersionInfo]]:
        from . import warg_backend

        return (yield from warg_backend.list_versions_flow(engine, source))

    def release_flow(self, engine: Engine, source: Source, version: Version) -> Flow[Release]:
        from .._ref import PackageSpec
        from .._semver import VersionReq
        from . import warg_backend

        spec = PackageSpec(source.package, VersionReq.parse(f"={version}"))
        return (yield from warg_backend.resolve_flow(engine, source, spec))

    def content_flow(self, engine: Engine, source: Source, release: Release, sink: Callable[[bytes], None],
                     reset: Callable[[], None]) -> Flow[None]:
        from . import warg_backend

        yield from warg_backend.content_flow(engine, source, release, sink, reset)


_BACKENDS: dict[str, Backend] = {"oci": _Oci(), "local": _Local(), "warg": _Warg(), "oci-layout": _OciLayout()}


def get_backend(name: str) -> Backend:
    return _BACKENDS[name]
