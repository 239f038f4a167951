"""OCI image layouts (``oci-layout``, ``index.json``, ``blobs/sha256/<hex>``): read as a
read-only registry backend (``[registry."NAME".oci-layout] root = DIR``), written by
``pkgloader export`` and read by ``pkgloader import``.

Each package version is one entry of ``index.json`` annotated with
``org.opencontainers.image.ref.name`` = ``<namespace>/<name>:<tag>`` (the tag is the
version, ``+`` written as ``_``), the form skopeo takes (``oci:DIR:<ns>/<name>:<tag>``).
Writing is deterministic: the same releases give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ._errors import InvalidManifest, LocalIOError, PackageNotFound

if TYPE_CHECKING:  # pragma: no cover
    from ._ref import PackageRef
    from ._release import Release, VersionInfo
    from ._semver import Version
    from ._source import Source

__all__ = ["LayoutEntry", "read_entries", "write_layout", "ref_name", "verify_blob", "blob_path",
           "list_versions", "release", "read_content", "REF_NAME", "REGISTRY_ANNOTATION"]

REF_NAME = "org.opencontainers.image.ref.name"
REGISTRY_ANNOTATION = "dev.pkgloader.registry"
LAYOUT_FILE = "oci-layout"
LAYOUT_BYTES = b'{"imageLayoutVersion":"1.0.0"}'
MAX_JSON = 4 * 1024 * 1024
_INVALID = "invalid-oci-layout"


def ref_name(package: PackageRef, version: Version) -> str:
    return f"{package.namespace}/{package.name}:{version.to_tag()}"


def blob_path(root: Path, digest: str) -> Path:
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise InvalidManifest(f"OCI layout {root} names an unusable digest {digest[:80]!r}", code=_INVALID)
    return root / "blobs" / "sha256" / hexpart


def _bad(root: Path, what: str, hint: str | None = None) -> InvalidManifest:
    return InvalidManifest(f"OCI layout {root}: {what}", code=_INVALID,
                           hint=hint or "export it again (pkgloader export DIR), or check the copy")


def verify_blob(root: Path, digest: str, *, size: int | None = None, max_bytes: int | None = MAX_JSON) -> bytes | None:
    """Hash the blob file; return its bytes when ``max_bytes`` allows reading it into memory
    (else None). A missing, unreadable or mismatching blob is an error."""
    from ._errors import DigestMismatch

    path = blob_path(root, digest)
    h = hashlib.sha256()
    n = 0
    keep: list[bytes] | None = [] if max_bytes is not None else None
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
                n += len(chunk)
                if keep is not None:
                    if max_bytes is not None and n > max_bytes:
                        raise _bad(root, f"blob {digest} is larger than {max_bytes >> 20} MiB, too large for a manifest")
                    keep.append(chunk)
    except FileNotFoundError:
        raise _bad(root, f"blob {digest} is missing") from None
    except OSError as exc:
        raise LocalIOError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    got = "sha256:" + h.hexdigest()
    if got != digest or (size is not None and n != size):
        raise DigestMismatch(
            f"blob {digest} of the OCI layout {root} does not match its digest",
            details=[f"expected {digest}" + (f" ({size} bytes)" if size is not None else ""), f"got      {got} ({n} bytes)",
                     "nothing was imported"],
            hint="the copy is damaged: export it again",
        )
    return b"".join(keep) if keep is not None else None


def _load_json(root: Path, raw: bytes, what: str) -> dict[str, Any]:
    from ._json import load_json

    try:
        data = load_json(raw)
    except ValueError as exc:
        raise _bad(root, f"{what} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _bad(root, f"{what} is not a JSON object")
    return data


@dataclass(frozen=True)
class LayoutEntry:
    """One ``index.json`` entry with a package ref name."""

    package: PackageRef
    version: Version
    descriptor: dict[str, Any]

    @property
    def ref_name(self) -> str:
        return str(self.descriptor.get("annotations", {}).get(REF_NAME, ""))


def read_index(root: Path) -> dict[str, Any]:
    if not root.is_dir():
        raise LocalIOError(f"OCI layout {root} is not a directory",
                           hint="give the directory pkgloader export wrote (it holds oci-layout and index.json)")
    try:
        layout = (root / LAYOUT_FILE).read_bytes()[:4096]
        raw = (root / "index.json").read_bytes()
    except FileNotFoundError as exc:
        raise _bad(root, f"{Path(exc.filename).name} is missing", "this is not an OCI image layout") from None
    except OSError as exc:
        raise LocalIOError(f"cannot read the OCI layout {root}: {exc.strerror or exc}") from None
    version = _load_json(root, layout, LAYOUT_FILE).get("imageLayoutVersion")
    if not isinstance(version, str) or not version.startswith("1."):
        raise _bad(root, f"imageLayoutVersion {str(version)[:20]!r} is not 1.x")
    if len(raw) > MAX_JSON:
        raise _bad(root, "index.json is larger than 4 MiB")
    return _load_json(root, raw, "index.json")


def read_entries(root: Path) -> list[LayoutEntry]:
    """The entries of ``index.json`` whose ref name is ``<ns>/<name>:<tag>`` (others are
    ignored: a layout may hold container images too)."""
    from ._ref import PackageRef
    from ._semver import Version

    index = read_index(root)
    manifests = index.get("manifests")
    if not isinstance(manifests, list):
        raise _bad(root, "index.json has no manifests list")
    out = []
    for d in manifests:
        if not isinstance(d, dict):
            raise _bad(root, "index.json has an entry that is not an object")
        ann = d.get("annotations")
        name = ann.get(REF_NAME) if isinstance(ann, dict) else None
        if not isinstance(name, str) or ":" not in name or "/" not in name:
            continue
        repo, _, tag = name.rpartition(":")
        ns, _, pname = repo.partition("/")
        version = Version.from_tag(tag)
        try:
            package = PackageRef.parse(f"{ns}:{pname}")
        except ValueError:
            continue
        if version is None:
            continue
        out.append(LayoutEntry(package, version, d))
    return out


def manifest_of(root: Path, descriptor: dict[str, Any], what: str, *, strict: bool = False) -> tuple[Any, bytes]:
    """(oci.Manifest of the wasm image, its raw bytes), following an image index."""
    from .backends import oci

    def load(d: dict[str, Any]) -> tuple[Any, bytes]:
        digest = d.get("digest")
        size = d.get("size")
        if not isinstance(digest, str):
            raise _bad(root, f"the entry of {what} has no digest")
        raw = verify_blob(root, digest, size=size if isinstance(size, int) and not isinstance(size, bool) else None)
        assert raw is not None
        data = _load_json(root, raw, f"the manifest of {what}")
        mt = oci._media_type(data, d.get("mediaType") if isinstance(d.get("mediaType"), str) else None)
        return oci.Manifest(data, digest, mt, len(raw)), raw

    manifest, raw = load(descriptor)
    if manifest.media_type in (oci.OCI_INDEX, oci.DOCKER_LIST):
        entry = oci._pick_index_entry(manifest.data, what)
        manifest, raw = load(entry)
        if manifest.media_type in (oci.OCI_INDEX, oci.DOCKER_LIST):
            raise InvalidManifest(f"image index of {what} points at another index", code="invalid-manifest")
    return manifest, raw


def release_from(root: Path, entry: LayoutEntry, registry: str, *, backend: str, location: str,
                 strict: bool = False) -> Release:
    from .backends import oci
    from ._release import Release

    what = f"{entry.package}@{entry.version}"
    manifest, _raw = manifest_of(root, entry.descriptor, what, strict=strict)
    layer_type, digest, size, config_type = oci.pick_wasm_layer(manifest, what, strict=strict)
    annotations = manifest.data.get("annotations") if isinstance(manifest.data.get("annotations"), dict) else {}
    return Release(
        package=entry.package, version=entry.version, digest=digest, size=size, registry=registry, backend=backend,
        location=location, media_type=layer_type, manifest_digest=manifest.digest,
        manifest_media_type=manifest.media_type, config_media_type=config_type,
        annotations={str(k): str(v) for k, v in (annotations or {}).items()},
    )


# --- the read-only registry backend ---------------------------------------------------------


def _root(source: Source) -> Path:
    assert source.local_root is not None
    return source.local_root


def list_versions(source: Source) -> list[VersionInfo]:
    from ._release import VersionInfo

    found = {e.version for e in read_entries(_root(source)) if e.package == source.package}
    if not found:
        raise PackageNotFound(f"package {source.package} not found in the OCI layout {_root(source)}",
                              details=[f"registry {source.registry} chosen by {source.choice.rule} ({source.choice.origin})"],
                              hint="export it into the layout (pkgloader export DIR REF), or check the registry mapping")
    return [VersionInfo(v) for v in sorted(found, key=lambda v: v.sort_key)]


def release(source: Source, version: Version, *, strict: bool = False) -> Release:
    root = _root(source)
    for e in read_entries(root):
        if e.package == source.package and e.version == version:
            return release_from(root, e, source.registry, backend="oci-layout", location=f"{root}:{e.ref_name}",
                                strict=strict)
    raise PackageNotFound(f"{source.package}@{version} not found in the OCI layout {root}",
                          hint=f"list what it holds: pkgloader versions {source.package}")


def read_content(source: Source, rel: Release, sink: Callable[[bytes], None]) -> None:
    path = blob_path(_root(source), str(rel.digest))
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                sink(chunk)
    except FileNotFoundError:
        raise _bad(_root(source), f"the content blob {rel.digest} of {rel.package}@{rel.version} is missing") from None
    except OSError as exc:
        raise LocalIOError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None


# --- writing --------------------------------------------------------------------------------


def _dump(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def write_blob(root: Path, data: bytes | None = None, *, src: Path | None = None, digest: str | None = None) -> str:
    """Put a blob into the layout (atomically; an existing verified one is kept). Returns its digest."""
    from ._fsutil import atomic_write_bytes

    if data is not None:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert digest is not None
    path = blob_path(root, digest)
    if path.is_file():
        try:
            verify_blob(root, digest, max_bytes=None)
            return digest
        except Exception:  # noqa: BLE001 - a damaged blob is replaced
            pass
    path.parent.mkdir(parents=True, exist_ok=True)
    if data is None:
        assert src is not None
        data_path = src
        import shutil
        import tempfile

        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out, open(data_path, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    else:
        atomic_write_bytes(path, data)
    return digest


def write_layout(root: Path, entries: list[dict[str, Any]]) -> None:
    """Write ``oci-layout`` and ``index.json`` (entries merged with the layout's existing
    ones by ref name, sorted by ref name: the same entries give the same bytes)."""
    from ._fsutil import atomic_write_bytes

    merged: dict[str, dict[str, Any]] = {}
    if (root / "index.json").is_file():
        old = read_index(root).get("manifests")
        for d in old if isinstance(old, list) else []:
            if isinstance(d, dict):
                name = (d.get("annotations") or {}).get(REF_NAME, "")
                merged[str(name) or _dump(d).decode()] = d
    for d in entries:
        merged[d["annotations"][REF_NAME]] = d
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [merged[k] for k in sorted(merged)]}
    atomic_write_bytes(root / LAYOUT_FILE, LAYOUT_BYTES)
    atomic_write_bytes(root / "index.json", _dump(index))
