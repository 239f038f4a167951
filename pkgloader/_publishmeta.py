"""The OCI config and manifest publish writes, as wkg's publisher does (issue 15;
``wasm-pkg-client/src/oci/publisher.rs`` with ``oci-wasm``'s ``WasmConfig``):

* config (``application/vnd.wasm.config.v0+json``), keys in oci-wasm's order: ``created``,
  ``author`` (the binary's ``authors`` metadata; wkg 0.16.1 writes null there), ``architecture``
  ``wasm``, ``os`` ``wasip2`` for a component or WIT package (``wasip1`` for a core module),
  ``layerDigests``, ``component`` (``exports``, ``imports``, ``target``: null; null for a core
  module), read from the binary by ``_component.publish_info``;
* manifest annotations: ``org.opencontainers.image.version``, ``...created`` (pkgloader's
  addition), and from the wasm's metadata (``wasm-tools metadata add``) ``description`` ->
  ``org.opencontainers.image.description``, ``licenses`` -> ``...licenses``, ``source`` ->
  ``...source``, ``homepage`` -> ``...url``, ``authors`` -> ``...authors``; ``--annotation``
  values override them;
* one layer ``application/wasm`` titled ``<name>.wasm``.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._ref import PackageRef
from ._semver import Version

__all__ = ["Artifact", "build_artifact", "METADATA_ANNOTATIONS"]

WASM_CONFIG_TYPE = "application/vnd.wasm.config.v0+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
#: wasm metadata field -> manifest annotation (wkg's publisher)
METADATA_ANNOTATIONS = {
    "description": "org.opencontainers.image.description",
    "licenses": "org.opencontainers.image.licenses",
    "source": "org.opencontainers.image.source",
    "homepage": "org.opencontainers.image.url",
    "authors": "org.opencontainers.image.authors",
}


@dataclass(frozen=True)
class Artifact:
    config: dict[str, Any]
    config_bytes: bytes
    config_digest: str
    manifest: dict[str, Any]
    layer_digest: str
    size: int
    kind: str

    def to_json(self) -> dict[str, Any]:
        return {"manifest": self.manifest, "config": self.config}


def _sha256_file(path: Path) -> tuple[str, int, bytes]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        data = f.read()
    h.update(data)
    size = len(data)
    return "sha256:" + h.hexdigest(), size, data


def build_artifact(path: Path, package: PackageRef, version: Version, annotations: dict[str, str], *,
                   created: str | None = None) -> Artifact:
    from ._component import publish_info

    layer_digest, size, data = _sha256_file(path)
    info = publish_info(data, origin=str(path))
    created = created or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    component = None if info.exports is None else {
        "exports": list(info.exports), "imports": list(info.imports or ()), "target": None}
    config = {
        "created": created,
        "author": info.metadata.get("authors"),
        "architecture": "wasm",
        "os": "wasip1" if info.kind == "module" else "wasip2",
        "layerDigests": [layer_digest],
        "component": component,
    }
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    config_digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    manifest_annotations = {"org.opencontainers.image.version": str(version), "org.opencontainers.image.created": created}
    for field, key in METADATA_ANNOTATIONS.items():
        if field in info.metadata:
            manifest_annotations[key] = info.metadata[field]
    manifest_annotations.update(annotations)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": WASM_CONFIG_TYPE, "digest": config_digest, "size": len(config_bytes)},
        "layers": [{"mediaType": "application/wasm", "digest": layer_digest, "size": size,
                    "annotations": {"org.opencontainers.image.title": f"{package.name}.wasm"}}],
        "annotations": manifest_annotations,
    }
    return Artifact(config, config_bytes, config_digest, manifest, layer_digest, size, info.kind)


def publish_dry_or_local(source: Any, path: Path, version: Version, annotations: dict[str, str], *,
                         dry_run: bool, force: bool, skip_dupes: bool) -> Any:
    """``publish --dry-run`` (the manifest and config that would be pushed; nothing is) and
    publishing to a ``local`` registry (``<root>/<ns>/<name>/<version>.wasm``, written
    atomically; an existing version is refused unless ``force``, skipped with ``skip_dupes``)."""
    from .backends.oci import PublishResult

    art = build_artifact(path, source.package, version, annotations)
    if source.backend == "local":
        assert source.local_root is not None
        dest = source.local_root / source.package.namespace / source.package.name / f"{version.to_tag()}.wasm"
        reference = str(dest)
    else:
        dest = None
        reference = f"{source.oci_registry}/{source.oci_repository}:{version.to_tag()}"
    manifest_digest = "sha256:" + hashlib.sha256(json.dumps(art.manifest, separators=(",", ":")).encode()).hexdigest()
    result = PublishResult(str(source.package), str(version), reference, manifest_digest, art.layer_digest, art.size,
                           dry_run=dry_run, manifest=art.manifest, config=art.config)
    if dry_run or dest is None:
        return result
    if dest.exists() and not force:
        if skip_dupes:
            return PublishResult(str(source.package), str(version), reference, "", "", 0, skipped=True)
        from ._errors import VersionExists

        raise VersionExists(f"{source.package}@{version} is already published at {dest}",
                            hint="publish a new version, pass --skip-dupes to skip existing versions, or --force to replace it")
    from ._cache import output_error
    from ._fsutil import atomic_write_bytes

    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(dest, path.read_bytes())
    except OSError as exc:
        raise output_error(exc, dest) from None
    return result
