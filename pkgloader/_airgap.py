"""Air gaps: ``export`` packages as an OCI image layout, ``import`` one into the cache.

``export_flow`` resolves a release (through mirrors when configured), makes sure its
content is verified in the cache, and copies its manifest, config and layers into the
layout byte for byte (fetched by digest and verified; a release that did not come from
an OCI registry gets a CNCF Wasm manifest made from its content, deterministically).
``import_layout`` verifies every blob of a layout, then ingests each package's content
into the cache with its release record, so ``sync --frozen --offline`` works with no
registry at all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _ocilayout as layout
from ._errors import InvalidContent, RegistryNotConfigured

if TYPE_CHECKING:  # pragma: no cover
    from ._engine import Engine
    from ._http import Flow
    from ._ref import PackageSpec
    from ._release import Release

__all__ = ["export_flow", "import_layout", "synthesized_manifest"]

MAX_EXTRA_LAYER = 64 * 1024 * 1024


def synthesized_manifest(rel: Release) -> tuple[bytes, bytes]:
    """(manifest, config) bytes of a CNCF Wasm artifact for a release that has no OCI
    manifest (local, warg): no timestamps, so the same release gives the same bytes."""
    from .backends.oci import OCI_MANIFEST, WASM_CONFIG_TYPE

    config = json.dumps({"architecture": "wasm", "layerDigests": [str(rel.digest)], "os": "wasip2"},
                        sort_keys=True, separators=(",", ":")).encode()
    import hashlib

    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": WASM_CONFIG_TYPE, "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
                   "size": len(config)},
        "layers": [{"mediaType": "application/wasm", "digest": str(rel.digest), "size": rel.size,
                    "annotations": {"org.opencontainers.image.title": f"{rel.package.name}.wasm"}}],
        "annotations": {"org.opencontainers.image.version": str(rel.version)},
    }
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode(), config


def export_flow(engine: Engine, spec: PackageSpec, root: Path) -> Flow[dict[str, Any]]:
    """Write one release into the layout at ``root``; return its index entry."""
    rel, source = yield from engine.resolve_flow(spec)
    yield from engine.ensure_content_flow(rel, source)
    layer_file = engine.cache.blob_path(rel.digest)
    layout.write_blob(root, src=layer_file, digest=str(rel.digest))
    from .backends import oci

    if rel.backend == "oci" and rel.manifest_digest:
        if source is None:
            source = yield from engine._source(rel.package)
        from .backends import _mirrors

        raw = yield from _mirrors.by_digest_flow(engine, source, "manifests", rel.manifest_digest, oci.MAX_MANIFEST_BYTES)
        data = json.loads(raw)
        descriptors = ([data["config"]] if isinstance(data.get("config"), dict) else []) + list(data.get("layers") or [])
        for d in descriptors:
            digest = d.get("digest")
            if digest == str(rel.digest) or not isinstance(digest, str):
                continue
            if (root / "blobs" / "sha256" / digest.partition(":")[2]).is_file():
                continue
            blob = yield from _mirrors.by_digest_flow(engine, source, "blobs", digest, MAX_EXTRA_LAYER)
            layout.write_blob(root, blob)
        media_type = rel.manifest_media_type or oci.OCI_MANIFEST
    elif rel.backend == "oci-layout" and rel.manifest_digest and source is not None and source.local_root is not None:
        src_root = source.local_root
        raw = layout.verify_blob(src_root, rel.manifest_digest) or b""
        data = json.loads(raw)
        for d in ([data["config"]] if isinstance(data.get("config"), dict) else []) + list(data.get("layers") or []):
            if d.get("digest") != str(rel.digest):
                layout.write_blob(root, src=layout.blob_path(src_root, d["digest"]), digest=d["digest"])
        media_type = rel.manifest_media_type or oci.OCI_MANIFEST
    else:
        raw, config = synthesized_manifest(rel)
        layout.write_blob(root, config)
        media_type = oci.OCI_MANIFEST
    digest = layout.write_blob(root, raw)
    return {"mediaType": media_type, "digest": digest, "size": len(raw),
            "annotations": {layout.REF_NAME: layout.ref_name(rel.package, rel.version),
                            layout.REGISTRY_ANNOTATION: rel.registry}}


def import_layout(engine: Engine, root: Path) -> list[Release]:
    """Verify every blob of the layout, then put each package it holds into the cache."""
    from ._engine import is_wasm_preamble

    entries = layout.read_entries(root)
    blobs = root / "blobs" / "sha256"
    if blobs.is_dir():
        for f in sorted(blobs.iterdir()):
            if f.name.startswith("."):
                continue
            layout.verify_blob(root, f"sha256:{f.name}", max_bytes=None)
    out: list[Release] = []
    for e in entries:
        annotated = e.descriptor.get("annotations", {}).get(layout.REGISTRY_ANNOTATION)
        try:
            registry = engine.registry_for(e.package)
        except RegistryNotConfigured:
            if not isinstance(annotated, str) or not annotated:
                raise
            registry = annotated
        rel = layout.release_from(root, e, registry, backend="oci", location=f"{root}:{e.ref_name}")
        what = f"{rel.package}@{rel.version}"
        if not engine.cache.has_verified_blob(rel.digest, rel.size):
            with engine.cache.ingest(rel.digest, rel.size, what=what, origin=f"OCI layout {root}") as w:
                with open(layout.blob_path(root, str(rel.digest)), "rb") as blob:
                    while chunk := blob.read(1 << 20):
                        w.write(chunk)
                w.verify()
                if not is_wasm_preamble(w.head):
                    raise InvalidContent(f"content of {what} in the OCI layout {root} is not WebAssembly",
                                         details=["nothing was kept"], hint="export it again")
        engine.cache.put_release(rel)
        out.append(rel)
    return out
