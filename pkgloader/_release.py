"""``Release``: a version of a package with its content digest (and where it came from)."""

from __future__ import annotations

from typing import Any, Mapping

from ._frozen import FACTORY, Frozen, init_field
from ._digest import Digest
from ._ref import PackageRef
from ._semver import Version

__all__ = ["Release", "VersionInfo"]


class VersionInfo(Frozen):
    """One entry of a package's version list."""

    __fields__ = ("version", "yanked")
    version: Version
    yanked: bool = False

    def __init__(self, version: Version, yanked: bool = False) -> None:
        init_field(self, "version", version)
        init_field(self, "yanked", yanked)

    def to_json(self) -> dict[str, Any]:
        return {"version": str(self.version), "prerelease": self.version.is_prerelease, "yanked": self.yanked}


class Release(Frozen):
    __fields__ = (
        "package", "version", "digest", "size", "registry", "backend", "location", "media_type", "manifest_digest",
        "manifest_media_type", "config_media_type", "annotations", "yanked", "index_digest"
    )
    package: PackageRef
    version: Version
    digest: Digest
    size: int | None
    registry: str
    backend: str  # oci | local | warg
    location: str  # e.g. ghcr.io/webassembly/wasi/http:0.2.3, a local path, a warg URL
    media_type: str | None = None
    manifest_digest: str | None = None
    manifest_media_type: str | None = None
    config_media_type: str | None = None
    annotations: Mapping[str, str]
    yanked: bool = False
    index_digest: str | None = None  # the image index the tag points at, when it is one (OCI)

    def __init__(self, package: PackageRef, version: Version, digest: Digest, size: int | None, registry: str,
                 backend: str, location: str, media_type: str | None = None, manifest_digest: str | None = None,
                 manifest_media_type: str | None = None, config_media_type: str | None = None,
                 annotations: Mapping[str, str] = FACTORY, yanked: bool = False,
                 index_digest: str | None = None) -> None:
        init_field(self, "package", package)
        init_field(self, "version", version)
        init_field(self, "digest", digest)
        init_field(self, "size", size)
        init_field(self, "registry", registry)
        init_field(self, "backend", backend)
        init_field(self, "location", location)
        init_field(self, "media_type", media_type)
        init_field(self, "manifest_digest", manifest_digest)
        init_field(self, "manifest_media_type", manifest_media_type)
        init_field(self, "config_media_type", config_media_type)
        init_field(self, "annotations", dict() if annotations is FACTORY else annotations)
        init_field(self, "yanked", yanked)
        init_field(self, "index_digest", index_digest)

    @property
    def file_name(self) -> str:
        """Default output file name: ``<namespace>_<name>@<version>.wasm``."""
        return f"{self.package.namespace}_{self.package.name}@{self.version}.wasm"

    def to_json(self) -> dict[str, Any]:
        out = {
            "package": str(self.package),
            "version": str(self.version),
            "digest": str(self.digest),
            "size": self.size,
            "registry": self.registry,
            "backend": self.backend,
            "location": self.location,
            "media_type": self.media_type,
            "manifest_digest": self.manifest_digest,
            "manifest_media_type": self.manifest_media_type,
            "config_media_type": self.config_media_type,
            "annotations": dict(self.annotations),
            "yanked": self.yanked,
        }
        if self.index_digest is not None:
            out["index_digest"] = self.index_digest
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Release:
        return cls(
            package=PackageRef.parse(data["package"]),
            version=Version.parse(data["version"]),
            digest=Digest.parse(data["digest"]),
            size=data.get("size"),
            registry=data["registry"],
            backend=data.get("backend", "oci"),
            location=data.get("location", ""),
            media_type=data.get("media_type"),
            manifest_digest=data.get("manifest_digest"),
            manifest_media_type=data.get("manifest_media_type"),
            config_media_type=data.get("config_media_type"),
            annotations=dict(data.get("annotations") or {}),
            yanked=bool(data.get("yanked", False)),
            index_digest=data.get("index_digest") if isinstance(data.get("index_digest"), str) else None,
        )
