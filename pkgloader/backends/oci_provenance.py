"""Finding the signatures of an OCI manifest, and attaching one (``publish --sign-key``).

Discovery, in this order, every request bounded:

1. the OCI 1.1 referrers API, ``GET /v2/<name>/referrers/<digest>`` (an image index, paged
   with ``Link``, at most ``MAX_REFERRER_PAGES`` pages);
2. where the registry has no API (anything but a 200 image index), the *referrers tag
   schema*: an image index at tag ``sha256-<hex>``. A registry that answers that tag with
   the subject itself (GitLab resolves such tags as digests) is detected and ignored;
3. the legacy cosign tag ``sha256-<hex>.sig`` (one simplesigning layer per signature),
   consulted when the referrers gave nothing that meets the policy.

Index entries' ``artifactType`` is not trusted (cosign's fallback entries on ghcr carry the
empty-config type): each referrer manifest is read and its own ``artifactType`` decides.
At most ``MAX_CANDIDATES`` referrer manifests and signature layers are read per manifest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._digest import sha256_digest
from .._errors import PackageNotFound, PkgLoaderError, RegistryError
from .._http import BodyTooLarge, Flow, Request, redact_url
from .._json import MAX_ANSWER_CONTAINERS, load_json
from .._log import get_logger
from .._provenance._formats import BUNDLE_TYPES, BUNDLE_V03, SIMPLESIGNING, Candidate, parse_bundle, parse_simplesigning
from . import oci

if TYPE_CHECKING:  # pragma: no cover
    from .._source import Source

__all__ = ["Discovery", "referrers_flow", "legacy_flow", "attach_bundle_flow", "MAX_CANDIDATES"]

log = get_logger()

MAX_REFERRER_PAGES = 16
MAX_CANDIDATES = 32
MAX_SIGNATURE_BLOB = 1 << 20
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"


@dataclass
class Discovery:
    """What discovery found: the candidates, and notes for the error message."""

    candidates: list[Candidate] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    requests: int = 0


def _tag_for(subject: str, suffix: str = "") -> str:
    return subject.replace(":", "-", 1) + suffix


def _get_json(ctx: Any, source: Source, url: str, accept: str, max_body: int, d: Discovery) -> Flow[tuple[int, Any, bytes, Any]]:
    d.requests += 1
    try:
        resp = yield from oci._send(ctx, source, Request("GET", url, {"Accept": accept}, max_body=max_body))
    except BodyTooLarge:
        d.notes.append(f"note: {redact_url(url)} answered more than {max_body >> 10} KiB; ignored")
        return 0, None, b"", None
    data = None
    if resp.status == 200:
        try:
            data = load_json(resp.content, max_containers=MAX_ANSWER_CONTAINERS)
        except ValueError:
            data = None
    return resp.status, data, resp.content, resp


def _index_entries(data: Any) -> list[dict[str, Any]]:
    entries = data.get("manifests") if isinstance(data, dict) else None
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def _api_entries(ctx: Any, source: Source, subject: str, d: Discovery) -> Flow[list[dict[str, Any]] | None]:
    """The referrers API's entries, or None where the registry has no API."""
    url: str | None = f"{oci._base(source)}/referrers/{subject}"
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    pages = 0
    while url is not None and pages < MAX_REFERRER_PAGES and url not in seen:
        seen.add(url)
        pages += 1
        status, data, _, resp = yield from _get_json(ctx, source, url, oci.OCI_INDEX, oci.MAX_MANIFEST_BYTES, d)
        if status != 200 or not isinstance(data, dict) or not isinstance(data.get("manifests"), list) \
                or data.get("mediaType", oci.OCI_INDEX) != oci.OCI_INDEX:
            if pages == 1:
                return None
            d.notes.append(f"note: referrers page {pages} was not an image index; later pages ignored")
            break
        entries.extend(_index_entries(data))
        try:
            url = oci.next_tag_page(resp.header("link"), resp.url, source)
        except RegistryError as exc:
            d.notes.append(f"note: {exc.message}")
            url = None
    if url is not None and pages >= MAX_REFERRER_PAGES:
        d.notes.append(f"note: more than {MAX_REFERRER_PAGES} referrers pages; the rest were not read")
    return entries


def _fallback_entries(ctx: Any, source: Source, subject: str, d: Discovery) -> Flow[list[dict[str, Any]]]:
    tag = _tag_for(subject)
    url = f"{oci._base(source)}/manifests/{tag}"
    status, data, content, resp = yield from _get_json(ctx, source, url, oci.ACCEPT, oci.MAX_MANIFEST_BYTES, d)
    if status != 200:
        return []
    if sha256_digest(content) == subject or (resp is not None and resp.header("docker-content-digest") == subject):
        d.notes.append(f"note: the registry answered the fallback tag {tag} with the manifest itself "
                       "(it resolves such tags as digests); no referrers index there")
        return []
    mt = data.get("mediaType") if isinstance(data, dict) else None
    if mt != oci.OCI_INDEX:
        d.notes.append(f"note: tag {tag} is not an OCI image index (media type {str(mt)[:80]!r}); ignored")
        return []
    return _index_entries(data)


def _blob(ctx: Any, source: Source, desc: Any, d: Discovery) -> Flow[bytes | None]:
    if not isinstance(desc, dict):
        return None
    digest, size = desc.get("digest"), desc.get("size")
    if not isinstance(digest, str) or not digest.startswith("sha256:") or not isinstance(size, int) \
            or isinstance(size, bool) or not 0 <= size <= MAX_SIGNATURE_BLOB:
        return None
    d.requests += 1
    try:
        resp = yield from oci._send(ctx, source, Request("GET", f"{oci._base(source)}/blobs/{digest}",
                                                         {"Accept-Encoding": "identity"}, max_body=MAX_SIGNATURE_BLOB))
    except BodyTooLarge:
        return None
    if resp.status != 200 or len(resp.content) != size or sha256_digest(resp.content) != digest:
        return None
    return bytes(resp.content)


def referrers_flow(ctx: Any, source: Source, subject: str) -> Flow[Discovery]:
    """Sigstore bundles attached to ``subject`` as referrers (API, else the fallback tag)."""
    d = Discovery()
    entries = yield from _api_entries(ctx, source, subject, d)
    if entries is None:
        entries = yield from _fallback_entries(ctx, source, subject, d)
    if len(entries) > MAX_CANDIDATES:
        d.notes.append(f"note: {len(entries)} referrers; only the first {MAX_CANDIDATES} were read")
    for entry in entries[:MAX_CANDIDATES]:
        digest = entry.get("digest")
        if not isinstance(digest, str) or not digest.startswith("sha256:"):
            continue
        try:
            m = yield from oci.manifest_flow(ctx, source, digest, what=f"referrer {digest[:19]} of {source.package}")
        except PackageNotFound:
            d.notes.append(f"note: referrer {digest} is listed but missing")
            continue
        except PkgLoaderError as exc:
            d.notes.append(f"note: referrer {digest} is unusable: {exc.message}")
            continue
        d.requests += 1
        data = m.data
        config: dict[str, Any] = data["config"] if isinstance(data.get("config"), dict) else {}
        art = data.get("artifactType") or config.get("mediaType")
        if art not in BUNDLE_TYPES:
            continue  # the manifest's own type decides, not the index entry's
        subj = data.get("subject")
        if not isinstance(subj, dict) or subj.get("digest") != subject:
            d.notes.append(f"note: referrer {digest} names another subject; ignored")
            continue
        layers: list[Any] = data["layers"] if isinstance(data.get("layers"), list) else []
        bundle_layer = next((layer for layer in layers if isinstance(layer, dict)
                             and layer.get("mediaType") in BUNDLE_TYPES), layers[0] if layers else None)
        blob = yield from _blob(ctx, source, bundle_layer, d)
        if blob is None:
            d.candidates.append(Candidate("sigstore-bundle", f"referrer {digest}",
                                          problem="its bundle layer is missing, too large or does not match its digest"))
            continue
        d.candidates.append(parse_bundle(blob, f"referrer {digest}"))
    return d


def legacy_flow(ctx: Any, source: Source, subject: str, d: Discovery | None = None) -> Flow[Discovery]:
    """Legacy cosign signatures at tag ``sha256-<hex>.sig``."""
    d = d or Discovery()
    tag = _tag_for(subject, ".sig")
    try:
        m = yield from oci.manifest_flow(ctx, source, tag, what=f"signature tag {tag} of {source.package}")
    except PackageNotFound:
        return d
    except PkgLoaderError as exc:
        d.notes.append(f"note: signature tag {tag} is unusable: {exc.message}")
        return d
    d.requests += 1
    layers: list[Any] = m.data["layers"] if isinstance(m.data.get("layers"), list) else []
    sig_layers = [layer for layer in layers if isinstance(layer, dict) and layer.get("mediaType") == SIMPLESIGNING]
    for i, layer in enumerate(sig_layers[:MAX_CANDIDATES], 1):
        where = f"tag {tag}, layer {i}"
        ann: dict[str, Any] = layer["annotations"] if isinstance(layer.get("annotations"), dict) else {}
        payload = yield from _blob(ctx, source, layer, d)
        if payload is None:
            d.candidates.append(Candidate("cosign-simplesigning", where,
                                          problem="its payload is missing, too large or does not match its digest"))
            continue
        d.candidates.append(parse_simplesigning(payload, ann, where))
    return d


# ---------------------------------------------------------------------------------------
# attaching a bundle (publish --sign-key)


def attach_bundle_flow(ctx: Any, source: Source, subject: str, subject_size: int, bundle: bytes,
                       predicate_type: str) -> Flow[str]:
    """Push ``bundle`` as a referrer of ``subject``; where the registry has no referrers
    API (no ``OCI-Subject`` header in the answer), add it to the fallback index at tag
    ``sha256-<hex>`` (read-modify-write with ``If-Match``). Returns the referrer's digest."""
    bundle_digest = sha256_digest(bundle)
    yield from oci._upload_blob_flow(ctx, source, EMPTY_DIGEST, 2, b"{}", None)
    yield from oci._upload_blob_flow(ctx, source, bundle_digest, len(bundle), bundle, None)
    manifest = {
        "schemaVersion": 2,
        "mediaType": oci.OCI_MANIFEST,
        "artifactType": BUNDLE_V03,
        "config": {"mediaType": EMPTY_CONFIG, "digest": EMPTY_DIGEST, "size": 2},
        "layers": [{"mediaType": BUNDLE_V03, "digest": bundle_digest, "size": len(bundle)}],
        "subject": {"mediaType": oci.OCI_MANIFEST, "digest": subject, "size": subject_size},
        "annotations": {"dev.sigstore.bundle.content": "dsse-envelope",
                        "dev.sigstore.bundle.predicateType": predicate_type},
    }
    body = json.dumps(manifest, separators=(",", ":")).encode()
    digest = sha256_digest(body)
    base = oci._base(source)
    resp = yield from oci._send(ctx, source, Request("PUT", f"{base}/manifests/{digest}",
                                                     {"Content-Type": oci.OCI_MANIFEST}, content=body), "pull,push")
    if resp.status in (401, 403):
        raise oci._push_refused(ctx, source, f"registry {source.registry} refused the signature of {source.package} "
                                             f"(HTTP {resp.status})")
    if resp.status != 201:
        raise oci._unexpected(source, f"the signature upload for {source.package}", resp)
    if resp.header("oci-subject"):
        return digest  # the registry indexes referrers itself
    entry = {"mediaType": oci.OCI_MANIFEST, "digest": digest, "size": len(body), "artifactType": BUNDLE_V03,
             "annotations": manifest["annotations"]}
    tag = _tag_for(subject)
    url = f"{base}/manifests/{tag}"
    for _attempt in range(5):
        get = yield from oci._send(ctx, source, Request("GET", url, {"Accept": oci.OCI_INDEX},
                                                        max_body=oci.MAX_MANIFEST_BYTES), "pull,push")
        headers = {"Content-Type": oci.OCI_INDEX}
        if get.status == 200:
            try:
                index = load_json(get.content, max_containers=MAX_ANSWER_CONTAINERS)
            except ValueError:
                index = None
            if not isinstance(index, dict) or index.get("mediaType") != oci.OCI_INDEX:
                raise RegistryError(f"tag {tag} of {source.oci_repository} holds something other than a referrers index",
                                    hint="remove that tag, or publish to a registry with the referrers API")
            etag = get.header("etag") or f'"{sha256_digest(get.content)}"'
            headers["If-Match"] = etag
        elif get.status == 404:
            index = {"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": []}
            headers["If-None-Match"] = "*"
        else:
            raise oci._unexpected(source, f"the referrers index request for {source.package}", get)
        manifests = [e for e in _index_entries(index) if e.get("digest") != digest] + [entry]
        index["manifests"] = manifests
        put_body = json.dumps(index, separators=(",", ":")).encode()
        put = yield from oci._send(ctx, source, Request("PUT", url, headers, content=put_body), "pull,push")
        if put.status == 412:
            continue  # someone else updated it meanwhile: read again
        if put.status != 201:
            raise oci._unexpected(source, f"the referrers index update for {source.package}", put)
        return digest
    raise RegistryError(f"the referrers index of {source.package} kept changing while it was updated (5 attempts)",
                        hint="retry the publish")
