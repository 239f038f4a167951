"""The OCI backend: tags -> versions, manifest -> release, blob -> verified content, publish.

Everything here is a sans-I/O flow (see ``pkgloader._http``), driven by the sync or async
client. Repository ``<oci registry>/<namespacePrefix><namespace>/<name>``, tag = version.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator
from urllib.parse import urljoin, urlsplit

from .._frozen import FACTORY, Frozen, Record, init_field
from .._lazyre import LazyPattern
from .._json import MAX_ANSWER_CONTAINERS, load_json
from .._auth import AuthSession, authed
from .._digest import Digest, sha256_digest
from .._errors import (
    AuthError,
    DigestMismatch,
    InvalidManifest,
    PackageNotFound,
    RegistryError,
    VersionExists,
)
from .._http import BodyTooLarge, Flow, Request, Response, printable, redact_url
from .._log import get_logger
from .._release import Release, VersionInfo
from .._semver import Version

if TYPE_CHECKING:  # pragma: no cover
    from .._credentials import Credentials
    from .._source import Source

log = get_logger()

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)
ACCEPT = ", ".join(MANIFEST_TYPES)
WASM_LAYER_TYPES = ("application/wasm", "application/vnd.wasm.content.layer.v1+wasm")
WASM_CONFIG_TYPE = "application/vnd.wasm.config.v0+json"
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_TAG_PAGES = 1000
MAX_ERROR_BODY = 64 * 1024


class OciContext(Record):
    """What the flows need besides the source: auth state, credentials, mode."""

    __fields__ = ("session", "credentials", "strict", "quiet_junk", "junk_tags")
    session: AuthSession
    credentials: Callable[[Source], Credentials | None]
    strict: bool = False
    quiet_junk: bool = True
    junk_tags: list[str]

    def __init__(self, session: AuthSession, credentials: Callable[[Source], Credentials | None], strict: bool = False,
                 quiet_junk: bool = True, junk_tags: list[str] = FACTORY) -> None:
        self.session = session
        self.credentials = credentials
        self.strict = strict
        self.quiet_junk = quiet_junk
        self.junk_tags = list() if junk_tags is FACTORY else junk_tags


def _base(source: Source) -> str:
    return f"{source.oci_scheme}://{source.oci_registry}/v2/{source.oci_repository}"


def _scope(source: Source, actions: str = "pull") -> str:
    return f"repository:{source.oci_repository}:{actions}"


def _send(ctx: OciContext, source: Source, req: Request, actions: str = "pull") -> Flow[Response]:
    return (yield from authed(ctx.session, req, host=source.oci_registry or "", scope=_scope(source, actions),
                              creds=ctx.credentials(source), registry=source.registry))


def _not_found(source: Source, what: str, resp: Response) -> Exception:
    ref = f"{source.oci_registry}/{source.oci_repository}"
    if resp.status in (401, 403):
        creds_hint = ("the configured credentials may not grant access" if resp.status == 403
                      else "configure credentials if the repository is private")
        return PackageNotFound(
            f"{what} {source.package} not found or not authorized at {ref} (HTTP {resp.status})",
            details=[f"registry {source.registry} chosen by {source.choice.rule} ({source.choice.origin})"],
            hint=f"check the package name; {creds_hint}",
        )
    return PackageNotFound(
        f"{what} {source.package} not found or not authorized at {ref}",
        details=[f"registry {source.registry} chosen by {source.choice.rule} ({source.choice.origin})"],
        hint="check the package name and the registry mapping (pkgloader config resolve REF)",
    )


def _unexpected(source: Source, what: str, resp: Response) -> RegistryError:
    body = printable(resp.content[:200].decode("utf-8", "replace").strip())
    return RegistryError(
        f"{source.oci_registry} answered HTTP {resp.status} to {what}",
        details=[f"url: {redact_url(resp.url)}"] + ([f"body: {body}"] if body else []),
        hint="retry later; if it persists the registry is failing",
    )


# ---------------------------------------------------------------------------------------
# tags


#: ``<url>; rel="next"`` in a ``Link`` header. ``[^<>]*``, not ``[^>]*``: the registry writes
#: this header, and a run of ``<`` without a ``>`` made the old pattern quadratic (a 64 KiB
#: header of ``<`` took 25 s of CPU)
_LINK_RE = LazyPattern(r'<([^<>]*)>\s*;\s*rel="?next"?', re.I)
#: a tag list larger than this is refused unread (16 MiB: about a million tags)
MAX_TAG_LIST_BYTES = 16 << 20


def parse_tag_page(content: bytes, source: Source) -> list[str]:
    """The tags of one page of a tag list (``{"tags": [...]}``; a missing or null list is
    empty). Anything else is a :class:`RegistryError`."""
    try:
        data = load_json(content, max_containers=MAX_ANSWER_CONTAINERS)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        page = data.get("tags")
        if page is None:  # distribution answers null for a repository without tags
            page = []
        if not isinstance(page, list) or not all(isinstance(t, str) for t in page):
            raise ValueError("tags is not a list of strings")
    except ValueError as exc:
        raise RegistryError(f"{source.oci_registry} sent an invalid tag list: {exc}") from None
    return page


def next_tag_page(link: str | None, url: str, source: Source) -> str | None:
    """The URL of the next tag-list page a ``Link`` header names (on the same host), or None."""
    m = _LINK_RE.search(link) if link else None
    if m is None:
        return None
    try:
        nxt = urljoin(url, m.group(1))
        other_host = urlsplit(nxt).netloc != urlsplit(url).netloc
    except ValueError:  # e.g. "Invalid IPv6 URL"
        raise RegistryError(f"{source.oci_registry} sent an invalid tag-list link: {printable(m.group(1))!r}") from None
    if other_host:
        raise RegistryError(f"{source.oci_registry} sent a tag-list link to another host: {redact_url(nxt)}")
    return nxt


def list_tags_flow(ctx: OciContext, source: Source) -> Flow[list[str]]:
    url: str | None = f"{_base(source)}/tags/list"
    seen: set[str] = set()
    tags: list[str] = []
    pages = 0
    while url is not None:
        if url in seen:
            raise RegistryError(f"{source.oci_registry} sent a tag-list page loop at {redact_url(url)}")
        if pages >= MAX_TAG_PAGES:
            raise RegistryError(f"{source.oci_registry} sent more than {MAX_TAG_PAGES} tag-list pages; giving up")
        seen.add(url)
        pages += 1
        try:
            resp = yield from _send(ctx, source, Request("GET", url, {"Accept": "application/json"},
                                                         max_body=MAX_TAG_LIST_BYTES))
        except BodyTooLarge:
            raise RegistryError(
                f"the tag list of {source.oci_repository} from {source.oci_registry} is larger than "
                f"{MAX_TAG_LIST_BYTES >> 20} MiB; refusing to read it",
                code="answer-too-large",
                details=[f"url: {redact_url(url)}"],
                hint="a tag list of a million tags is smaller; the registry is serving something else",
            ) from None
        if resp.status in (401, 403, 404):
            raise _not_found(source, "package", resp)
        if resp.status != 200:
            raise _unexpected(source, "a tag-list request", resp)
        tags.extend(parse_tag_page(resp.content, source))
        url = next_tag_page(resp.header("link"), resp.url, source)
    return tags


def tags_to_versions(tags: list[str], junk: list[str] | None = None) -> list[VersionInfo]:
    """SemVer tags (``_`` read as ``+``), every one: ``1.2.3`` and ``1.2.3_build.5`` are two
    artifacts and both are listed (selection prefers the plain one, see
    ``VersionReq.select``); cosign ``sha256-*`` tags dropped quietly, other junk collected
    into ``junk`` for ``-v``."""
    out: dict[str, Version] = {}
    for tag in tags:
        v = Version.from_tag(tag)
        if v is None:
            if junk is not None and not tag.startswith("sha256-"):
                junk.append(tag)
            continue
        out.setdefault(str(v), v)
    return [VersionInfo(v) for v in sorted(out.values(), key=lambda x: x.sort_key)]


def list_versions_flow(ctx: OciContext, source: Source) -> Flow[list[VersionInfo]]:
    tags = yield from list_tags_flow(ctx, source)
    junk: list[str] = []
    versions = tags_to_versions(tags, junk)
    if junk:
        log.info("ignored %d tag(s) of %s that are not versions: %s", len(junk), source.package,
                 ", ".join(printable(t, 80) for t in junk[:20]) + (" ..." if len(junk) > 20 else ""))
    return versions


# ---------------------------------------------------------------------------------------
# manifests


class Manifest(Frozen):
    __fields__ = ("data", "digest", "media_type", "size")
    data: dict[str, Any]
    digest: str
    media_type: str
    size: int

    def __init__(self, data: dict[str, Any], digest: str, media_type: str, size: int) -> None:
        init_field(self, "data", data)
        init_field(self, "digest", digest)
        init_field(self, "media_type", media_type)
        init_field(self, "size", size)


def _media_type(data: dict[str, Any], content_type: str | None) -> str:
    mt = data.get("mediaType")
    if isinstance(mt, str) and mt:
        return mt
    ct = (content_type or "").split(";")[0].strip()
    if ct in MANIFEST_TYPES:
        return ct
    if isinstance(data.get("manifests"), list):
        return OCI_INDEX
    return OCI_MANIFEST


def manifest_flow(ctx: OciContext, source: Source, reference: str, *, what: str) -> Flow[Manifest]:
    url = f"{_base(source)}/manifests/{reference}"
    try:
        resp = yield from _send(ctx, source, Request("GET", url, {"Accept": ACCEPT}, max_body=MAX_MANIFEST_BYTES))
    except BodyTooLarge:
        raise InvalidManifest(
            f"manifest of {what} is larger than {MAX_MANIFEST_BYTES // (1024 * 1024)} MiB; refusing to read it",
            code="manifest-too-large",
            details=[f"url: {redact_url(url)}"],
            hint="a wasm package manifest is a few KiB; the registry is serving something else",
        ) from None
    if resp.status == 404:
        raise _version_missing(source, reference, what)
    if resp.status in (401, 403):
        raise _not_found(source, "package", resp)
    if resp.status != 200:
        raise _unexpected(source, f"the manifest request for {what}", resp)
    got = sha256_digest(resp.content)
    expected: list[tuple[str, str]] = []
    if reference.startswith("sha256:"):
        expected.append((reference, "requested digest"))
    header = resp.header("docker-content-digest")
    if header and header.startswith("sha256:"):
        expected.append((header, "Docker-Content-Digest header"))
    for exp, why in expected:
        if exp != got:
            raise DigestMismatch(
                f"manifest of {what} does not match its digest",
                details=[f"expected {exp}  ({why})", f"got      {got}  ({len(resp.content)} bytes from {source.oci_registry})",
                         "nothing was written"],
                hint="retry; if it persists the registry is serving corrupted content",
            )
    try:
        data = load_json(resp.content, max_containers=MAX_ANSWER_CONTAINERS)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        raise InvalidManifest(f"manifest of {what} is not valid JSON: {exc}", code="invalid-manifest") from None
    mt = _media_type(data, resp.header("content-type"))
    if mt not in MANIFEST_TYPES:
        raise InvalidManifest(
            f"manifest of {what} has media type {mt!r}, which is not an OCI or Docker manifest",
            code="unsupported-media-type",
        )
    return Manifest(data, got, mt, len(resp.content))


def _version_missing(source: Source, reference: str, what: str) -> PackageNotFound:
    return PackageNotFound(
        f"{what} not found at {source.oci_registry}/{source.oci_repository}:{reference}",
        hint="list the published versions with: pkgloader versions " + str(source.package),
    )


def _pick_index_entry(index: dict[str, Any], what: str) -> dict[str, Any]:
    entries = index.get("manifests")
    if not isinstance(entries, list):
        raise InvalidManifest(f"image index of {what} has no manifests list", code="invalid-manifest")
    found = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        plat = entry.get("platform")
        plat = plat if isinstance(plat, dict) else {}
        if plat.get("os") in ("wasip1", "wasip2", "wasi") or plat.get("architecture") == "wasm":
            return entry
        found.append(f"{str(plat.get('os', '?'))[:40]}/{str(plat.get('architecture', '?'))[:40]}")
    raise InvalidManifest(
        f"image index of {what} has no wasm entry",
        code="no-wasm-layer",
        details=[f"platforms found: {', '.join(found) or 'none'}"],
        hint="the tag points at a multi-platform image without a wasm (os wasip1/wasip2 or architecture wasm) entry",
    )


def _descriptor(d: Any, what: str) -> tuple[str, Digest, int]:
    if not isinstance(d, dict):
        raise InvalidManifest(f"manifest of {what} has a malformed descriptor", code="invalid-manifest")
    mt = d.get("mediaType")
    size = d.get("size")
    if not isinstance(mt, str) or not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidManifest(f"manifest of {what} has a descriptor without mediaType/size", code="invalid-manifest")
    return mt, Digest.parse(d.get("digest", ""), what=f"layer digest in the manifest of {what}"), size


def pick_wasm_layer(manifest: Manifest, what: str, *, strict: bool) -> tuple[str, Digest, int, str | None]:
    """Lenient v0 (default): exactly one layer of a wasm media type, anything else allowed.
    Strict: the CNCF Wasm artifact layout. Returns (media type, digest, size, config type)."""
    data = manifest.data
    layers = data.get("layers")
    if not isinstance(layers, list):
        raise InvalidManifest(f"manifest of {what} has no layers list", code="invalid-manifest")
    described = [_descriptor(layer, what) for layer in layers]
    config = data.get("config") if isinstance(data.get("config"), dict) else None
    config_type = config.get("mediaType") if config else None
    wasm = [d for d in described if d[0] in WASM_LAYER_TYPES]
    listing = ", ".join(f"{mt} ({size} bytes)" for mt, _, size in described) or "none"
    if strict:
        problems = []
        if manifest.media_type != OCI_MANIFEST:
            problems.append(f"manifest media type is {manifest.media_type}, not {OCI_MANIFEST}")
        if config_type != WASM_CONFIG_TYPE:
            problems.append(f"config media type is {config_type!r}, not {WASM_CONFIG_TYPE}")
        if len(described) != 1 or described[0][0] != "application/wasm":
            problems.append(f"layers are [{listing}], not exactly one application/wasm layer")
        if problems:
            raise InvalidManifest(
                f"{what} does not follow the CNCF Wasm artifact layout (strict mode)",
                code="strict-layout",
                details=problems,
                hint="fetch without --strict (and strict = false) to accept any manifest with one wasm layer",
            )
    if not wasm:
        raise InvalidManifest(
            f"manifest of {what} has no wasm layer",
            code="no-wasm-layer",
            details=[f"layers found: {listing}", f"wasm media types: {', '.join(WASM_LAYER_TYPES)}"],
            hint="this tag is not a wasm package (is it a container image?)",
        )
    if len(wasm) > 1:
        raise InvalidManifest(
            f"manifest of {what} has {len(wasm)} wasm layers; exactly one is required",
            code="multiple-wasm-layers",
            details=[f"layers found: {listing}"],
            hint="pkgloader does not guess which layer is the package; republish with one wasm layer",
        )
    mt, digest, size = wasm[0]
    return mt, digest, size, config_type


def release_flow(ctx: OciContext, source: Source, version: Version) -> Flow[Release]:
    what = f"{source.package}@{version}"
    manifest = yield from manifest_flow(ctx, source, version.to_tag(), what=what)
    index_digest = None
    if manifest.media_type in (OCI_INDEX, DOCKER_LIST):
        index_digest = manifest.digest  # what `cosign sign IMAGE:TAG` signs (see _provenance)
        entry = _pick_index_entry(manifest.data, what)
        mt, digest, _ = _descriptor(entry, what)
        manifest = yield from manifest_flow(ctx, source, str(digest), what=what)
        if manifest.media_type in (OCI_INDEX, DOCKER_LIST):
            raise InvalidManifest(f"image index of {what} points at another index", code="invalid-manifest")
    layer_type, digest, size, config_type = pick_wasm_layer(manifest, what, strict=ctx.strict)
    annotations = manifest.data.get("annotations") if isinstance(manifest.data.get("annotations"), dict) else {}
    return Release(
        package=source.package,
        version=version,
        digest=digest,
        size=size,
        registry=source.registry,
        backend="oci",
        location=f"{source.oci_registry}/{source.oci_repository}:{version.to_tag()}",
        media_type=layer_type,
        manifest_digest=manifest.digest,
        manifest_media_type=manifest.media_type,
        config_media_type=config_type,
        annotations={str(k): str(v) for k, v in (annotations or {}).items()},
        index_digest=index_digest,
    )


# ---------------------------------------------------------------------------------------
# blobs


def blob_flow(ctx: OciContext, source: Source, release: Release, sink: Callable[[bytes], None],
              reset: Callable[[], None]) -> Flow[None]:
    url = f"{_base(source)}/blobs/{release.digest}"
    req = Request("GET", url, {"Accept-Encoding": "identity"}, sink=sink, on_retry=reset, max_body=MAX_ERROR_BODY)
    resp = yield from _send(ctx, source, req)
    if resp.status in (401, 403, 404):
        raise _not_found(source, "content of", resp)
    if not 200 <= resp.status < 300:
        raise _unexpected(source, f"the content request for {source.package}@{release.version}", resp)


# ---------------------------------------------------------------------------------------
# publish


class PublishResult(Frozen):
    __fields__ = (
        "package", "version", "reference", "manifest_digest", "layer_digest", "size", "signature", "skipped",
        "dry_run", "manifest", "config"
    )
    package: str
    version: str
    reference: str
    manifest_digest: str
    layer_digest: str
    size: int
    signature: str | None = None  # the referrer digest of its signature (publish --sign-key)
    skipped: bool = False  # publish --skip-dupes: the version existed, nothing was pushed
    dry_run: bool = False  # publish --dry-run: nothing was pushed; manifest and config are what would be
    manifest: dict[str, Any] | None = None  # (dry run and local registry) the manifest built
    config: dict[str, Any] | None = None  # (dry run and local registry) the config built

    def __init__(self, package: str, version: str, reference: str, manifest_digest: str, layer_digest: str, size: int,
                 signature: str | None = None, skipped: bool = False, dry_run: bool = False,
                 manifest: dict[str, Any] | None = None, config: dict[str, Any] | None = None) -> None:
        init_field(self, "package", package)
        init_field(self, "version", version)
        init_field(self, "reference", reference)
        init_field(self, "manifest_digest", manifest_digest)
        init_field(self, "layer_digest", layer_digest)
        init_field(self, "size", size)
        init_field(self, "signature", signature)
        init_field(self, "skipped", skipped)
        init_field(self, "dry_run", dry_run)
        init_field(self, "manifest", manifest)
        init_field(self, "config", config)

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        for key in ("manifest", "config"):
            if out[key] is None:
                del out[key]
        return out


def _file_chunks(path: Path, progress: Callable[[int], None] | None) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            if progress:
                progress(len(chunk))
            yield chunk


def _push_refused(ctx: OciContext, source: Source, message: str) -> AuthError:
    creds = ctx.credentials(source)
    if creds is None:
        from .._credentials import env_host_key

        key = env_host_key(source.oci_registry or source.registry)
        return AuthError(message, details=["no credentials are configured for this registry"],
                         hint=f'configure credentials to push: auth under [registry."{source.registry}".oci], docker login, '
                              f"or PKGLOADER_REGISTRY_{key}_USERNAME/_PASSWORD")
    return AuthError(message, details=[f"credentials from {creds.source}"],
                     hint="check that these credentials may push to this repository")


def _upload_blob_flow(ctx: OciContext, source: Source, digest: str, size: int, body: bytes | None, path: Path | None,
                      progress: Callable[[int], None] | None = None) -> Flow[None]:
    base = _base(source)
    head = yield from _send(ctx, source, Request("HEAD", f"{base}/blobs/{digest}", max_body=0), "pull,push")
    if head.status == 200:
        return
    try:
        resp = yield from _send(ctx, source, Request("POST", f"{base}/blobs/uploads/", {"Content-Length": "0"},
                                                     content=b"", max_body=MAX_ERROR_BODY), "pull,push")
    except BodyTooLarge:
        raise RegistryError(f"{source.oci_registry} answered the upload start with more than "
                            f"{MAX_ERROR_BODY >> 10} KiB; refusing to read it", code="answer-too-large",
                            details=[f"url: {redact_url(base)}/blobs/uploads/"],
                            hint="the registry is failing; report it to its operator") from None
    if resp.status in (401, 403):
        raise _push_refused(ctx, source, f"registry {source.registry} refused to accept an upload to {source.oci_repository} "
                                         f"(HTTP {resp.status})")
    if resp.status != 202 or not resp.header("location"):
        raise _unexpected(source, "the upload start", resp)
    try:
        location = urljoin(resp.url, resp.header("location") or "")
        if urlsplit(location).scheme not in ("http", "https"):
            raise ValueError("not an http(s) URL")
    except ValueError as exc:
        raise RegistryError(f"{source.oci_registry} answered the upload start with an unusable Location "
                            f"{printable(resp.header('location') or '')!r}: {exc}",
                            hint="the registry is failing; report it to its operator") from None
    sep = "&" if "?" in location else "?"
    content: Any = body if body is not None else _file_chunks(path, progress)  # type: ignore[arg-type]
    put = Request("PUT", f"{location}{sep}digest={digest}",
                  {"Content-Type": "application/octet-stream", "Content-Length": str(size)}, content=content)
    resp = yield from _send(ctx, source, put, "pull,push")
    if resp.status != 201:
        raise _unexpected(source, "the blob upload", resp)


def publish_flow(ctx: OciContext, source: Source, path: Path, version: Version, *, annotations: dict[str, str],
                 force: bool, progress: Callable[[int], None] | None = None,
                 skip_dupes: bool = False) -> Flow[PublishResult]:
    from .._publishmeta import build_artifact

    tag = version.to_tag()
    base = _base(source)
    what = f"{source.package}@{version}"
    if not force:
        head = yield from _send(ctx, source, Request("HEAD", f"{base}/manifests/{tag}", {"Accept": ACCEPT}, max_body=0),
                                "pull,push")
        if head.status == 200:
            if skip_dupes:  # as wkg publish --skip-dupes: an existing version is no error, and not replaced
                digest = head.header("docker-content-digest") or ""
                return PublishResult(str(source.package), str(version),
                                     f"{source.oci_registry}/{source.oci_repository}:{tag}", digest, "", 0, skipped=True)
            raise VersionExists(
                f"{what} is already published at {source.oci_registry}/{source.oci_repository}:{tag}",
                hint="publish a new version, pass --skip-dupes to skip existing versions, or --force to replace it",
            )
        if head.status not in (401, 403, 404):  # (a refusal is worded by the upload that follows)
            # only "not found" says the version is free: anything else could hide an existing one
            raise _unexpected(source, f"the check whether {what} is already published", head)
    art = build_artifact(path, source.package, version, annotations)
    layer_digest, size, config, config_digest = art.layer_digest, art.size, art.config_bytes, art.config_digest
    yield from _upload_blob_flow(ctx, source, layer_digest, size, None, path, progress)
    yield from _upload_blob_flow(ctx, source, config_digest, len(config), config, None)
    manifest = art.manifest
    body = json.dumps(manifest, separators=(",", ":")).encode()
    resp = yield from _send(ctx, source, Request("PUT", f"{base}/manifests/{tag}", {"Content-Type": OCI_MANIFEST}, content=body),
                            "pull,push")
    if resp.status in (401, 403):
        raise _push_refused(ctx, source, f"registry {source.registry} refused the manifest for {what} (HTTP {resp.status})")
    if resp.status != 201:
        raise _unexpected(source, f"the manifest upload for {what}", resp)
    return PublishResult(str(source.package), str(version), f"{source.oci_registry}/{source.oci_repository}:{tag}",
                         sha256_digest(body), layer_digest, size)
