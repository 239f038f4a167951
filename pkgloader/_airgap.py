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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _ocilayout as layout
from ._errors import InvalidContent, PkgLoaderError, RegistryNotConfigured
from ._log import get_logger

if TYPE_CHECKING:  # pragma: no cover
    from ._engine import Engine
    from ._http import Flow
    from ._ref import PackageSpec
    from ._release import Release

__all__ = ["export_flow", "import_layout", "synthesized_manifest", "signatures_flow", "verify_imported"]

log = get_logger()

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


def export_flow(engine: Engine, spec: PackageSpec, root: Path) -> Flow[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Write one release into the layout at ``root``, with its signatures and attestations
    (an OCI release); return its index entry and theirs."""
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
    name = layout.ref_name(rel.package, rel.version)
    sigs: list[dict[str, Any]] = []
    if rel.backend == "oci" and rel.manifest_digest and source is not None:
        try:
            sigs = yield from signatures_flow(engine, source, digest, root, name.rpartition(":")[0], rel.registry)
        except PkgLoaderError as exc:
            log.warning("signatures of %s@%s not exported: %s: %s", rel.package, rel.version, exc.code, exc.message)
    return ({"mediaType": media_type, "digest": digest, "size": len(raw),
             "annotations": {layout.REF_NAME: name, layout.REGISTRY_ANNOTATION: rel.registry}}, sigs)


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
    rels: list[Release] = []
    for e in entries:
        annotated = e.descriptor.get("annotations", {}).get(layout.REGISTRY_ANNOTATION)
        try:
            registry = engine.registry_for(e.package)
        except RegistryNotConfigured:
            if not isinstance(annotated, str) or not annotated:
                raise
            registry = annotated
        rels.append(layout.release_from(root, e, registry, backend="oci", location=f"{root}:{e.ref_name}"))
    # signatures before anything is imported: a package a require policy rejects keeps every
    # package of the layout out of the cache (the verified results are recorded afterwards)
    verified = [verify_imported(engine, root, rel, record=False) for rel in rels]
    out: list[Release] = []
    for rel, v in zip(rels, verified):
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
        if v is not None:
            _record_verified(engine, rel, v)
    return out


def _record_verified(engine: Engine, rel: Release, verified: tuple[Any, Any]) -> None:
    from ._provenance._store import put_verified

    fingerprint, v = verified
    put_verified(engine.cache.root, fingerprint, v)
    engine.verified[(str(rel.package), str(rel.version))] = v


# --- signatures and attestations -----------------------------------------------------------
#
# In the layout they follow the OCI 1.1 *referrers tag schema*, which skopeo and registries
# carry as ordinary tags: for a package manifest ``sha256:<hex>``,
#
# - ``<ns>/<name>:sha256-<hex>``: an image index (made by export: entries sorted by digest,
#   canonical JSON) of the referrer manifests (Sigstore bundles, attestations) whose subject
#   it is, as the provenance discovery found them;
# - ``<ns>/<name>:sha256-<hex>.sig``: the legacy cosign signature manifest, byte for byte.
#
# Every manifest and blob they name is in ``blobs/sha256/``. ``import`` runs the same
# discovery over the layout (the referrers API answered 404, tags and blobs from the
# layout) and records the verified result in the cache, as a verified fetch does.

MAX_SIGNATURE_BLOB = 1 << 20
_EMPTY = b"{}"


def _recording(flow: Flow[Any], seen: dict[str, bytes]) -> Flow[Any]:
    """Drive ``flow``, keeping the body of every 200 answer to a manifest or blob request
    (by request URL)."""
    try:
        req = next(flow)
        while True:
            try:
                resp = yield req
            except BaseException as exc:  # noqa: BLE001 - handed to the inner flow
                req = flow.throw(exc)
                continue
            if resp.status == 200 and ("/manifests/" in req.url or "/blobs/" in req.url):
                seen[req.url] = bytes(resp.content)
            req = flow.send(resp)
    except StopIteration as stop:
        return stop.value


def _descriptors(data: dict[str, Any]) -> list[dict[str, Any]]:
    out = [data["config"]] if isinstance(data.get("config"), dict) else []
    return out + [d for d in data.get("layers") or [] if isinstance(d, dict)]


def signatures_flow(engine: Engine, source: Any, subject: str, root: Path,
                    repo: str, registry: str) -> Flow[list[dict[str, Any]]]:
    """Copy the signatures and attestations the provenance discovery finds for manifest
    ``subject`` into the layout; return their index entries (none found: [])."""
    from ._digest import sha256_digest
    from .backends import _mirrors, oci
    from .backends.oci_provenance import legacy_flow, referrers_flow

    seen: dict[str, bytes] = {}
    yield from _recording(referrers_flow(engine.oci, source, subject), seen)
    yield from _recording(legacy_flow(engine.oci, source, subject), seen)
    base = oci._base(source)
    blobs = {url.rsplit("/", 1)[1]: body for url, body in seen.items() if url.startswith(f"{base}/blobs/")}
    referrers: list[tuple[str, bytes, dict[str, Any]]] = []
    legacy: tuple[str, bytes, dict[str, Any]] | None = None
    sig_tag = subject.replace(":", "-", 1) + ".sig"
    for url, body in sorted(seen.items()):
        if not url.startswith(f"{base}/manifests/"):
            continue
        ref = url.rsplit("/", 1)[1]
        try:
            data = json.loads(body)
        except ValueError:
            continue
        if not isinstance(data, dict):
            continue
        digest = sha256_digest(body)
        if ref == sig_tag:
            legacy = (digest, body, data)
        elif ref == digest and isinstance(data.get("subject"), dict) and data["subject"].get("digest") == subject:
            referrers.append((digest, body, data))
    entries: list[dict[str, Any]] = []
    for digest, body, data in referrers + ([legacy] if legacy else []):
        for d in _descriptors(data):
            bd = d.get("digest")
            if not isinstance(bd, str) or (root / "blobs" / "sha256" / bd.partition(":")[2]).is_file():
                continue
            blob = blobs.get(bd)
            if blob is None:
                blob = _EMPTY if bd == sha256_digest(_EMPTY) else (
                    yield from _mirrors.by_digest_flow(engine, source, "blobs", bd, MAX_SIGNATURE_BLOB))
            layout.write_blob(root, blob)
        layout.write_blob(root, body)
    if referrers:
        manifests = []
        for digest, body, data in sorted(referrers):
            desc: dict[str, Any] = {"mediaType": data.get("mediaType") or oci.OCI_MANIFEST, "digest": digest,
                                    "size": len(body)}
            art = data.get("artifactType") or (data.get("config") or {}).get("mediaType")
            if isinstance(art, str):
                desc["artifactType"] = art
            if isinstance(data.get("annotations"), dict):
                desc["annotations"] = data["annotations"]
            manifests.append(desc)
        index = json.dumps({"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": manifests},
                           sort_keys=True, separators=(",", ":")).encode()
        entries.append({"mediaType": oci.OCI_INDEX, "digest": layout.write_blob(root, index), "size": len(index),
                        "annotations": {layout.REF_NAME: f"{repo}:{subject.replace(':', '-', 1)}",
                                        layout.REGISTRY_ANNOTATION: registry}})
    if legacy is not None:
        entries.append({"mediaType": legacy[2].get("mediaType") or oci.OCI_MANIFEST, "digest": legacy[0],
                        "size": len(legacy[1]),
                        "annotations": {layout.REF_NAME: f"{repo}:{sig_tag}", layout.REGISTRY_ANNOTATION: registry}})
    return entries


@dataclass(frozen=True)
class _LayoutSource:
    """What the discovery flows read of a Source, for a package in a layout."""

    package: Any
    registry: str
    oci_repository: str
    oci_registry: str = "oci-layout.invalid"
    oci_scheme: str = "http"


def _answer(root: Path, tags: dict[str, dict[str, Any]], req: Any) -> Any:
    """The layout as a registry that has no referrers API (404), for the discovery flows."""
    from urllib.parse import urlsplit

    from ._http import Response

    path = urlsplit(req.url).path
    repo_kind, _, ref = path.rpartition("/")
    repo, _, kind = repo_kind.rpartition("/")
    repo = repo.removeprefix("/v2/")
    body: bytes | None = None
    headers: dict[str, str] = {}
    if kind in ("manifests", "blobs"):
        digest = ref if ref.startswith("sha256:") else (tags.get(f"{repo}:{ref}") or {}).get("digest")
        if kind == "manifests" and not ref.startswith("sha256:") and digest is None:
            body = None
        elif isinstance(digest, str):
            try:
                body = layout.verify_blob(root, digest, max_bytes=MAX_SIGNATURE_BLOB)
            except Exception:  # noqa: BLE001 - missing or damaged: not there
                body = None
            if body is not None and kind == "manifests":
                try:
                    headers["content-type"] = str(json.loads(body).get("mediaType") or "")
                except (ValueError, AttributeError):
                    pass
                headers["docker-content-digest"] = digest
    if body is None:
        return Response(404, {}, b"", req.url)
    return Response(200, headers, body, req.url, received=len(body))


def verify_imported(engine: Engine, root: Path, rel: Release, *, record: bool = True) -> Any:
    """Check ``rel``'s signatures in the layout against the importing config's policy (as a
    fetch would against the registry). Returns (policy fingerprint, Verified), recorded in
    the cache when ``record``; None when no policy applies (or mode warn and unmet)."""
    from ._errors import SignatureError
    from ._provenance import verify_manifest_flow
    from ._provenance._enforce import effective_policy
    from .backends.oci import OciContext

    chosen = effective_policy(engine.config, rel, engine.verify)
    if chosen is None or not rel.manifest_digest:
        return None
    policy, mode = chosen
    index = layout.read_index(root).get("manifests") or []
    tags = {str((d.get("annotations") or {}).get(layout.REF_NAME)): d for d in index if isinstance(d, dict)}
    repo = layout.ref_name(rel.package, rel.version).rpartition(":")[0]
    src = _LayoutSource(rel.package, rel.registry, repo)
    ctx = OciContext(engine.auth, lambda _s: None, strict=engine.strict)
    what = f"{rel.package}@{rel.version} from {rel.registry} (OCI layout {root})"
    flow = verify_manifest_flow(ctx, src, rel.manifest_digest, policy, what)  # type: ignore[arg-type]
    try:
        req = next(flow)
        while True:
            req = flow.send(_answer(root, tags, req))
    except StopIteration as stop:
        verified = stop.value
    except SignatureError as exc:
        if mode != "warn":
            raise
        log.warning("provenance of %s not verified (policy %r, mode warn): %s: %s", what, policy.pattern,
                    exc.code, exc.message)
        return None
    log.info("verified %s: %s signed by %s", what, verified.format, verified.signer)
    if record:
        _record_verified(engine, rel, (policy.fingerprint(), verified))
    return policy.fingerprint(), verified
