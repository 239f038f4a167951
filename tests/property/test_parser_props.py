"""Property tests: the parsers of what a registry answers raise nothing but documented
pkgloader errors, whatever the answer (or return a value). Grouped by parser:

* the **manifest** parser: ``oci.release_flow`` (``manifest_flow`` -> an image index's wasm
  entry -> ``pick_wasm_layer``), answered with near-miss manifests (every field possibly of
  the wrong type), arbitrary bytes, deep nesting and sizes over the 4 MiB cap;
* the **tag-list** parser: ``oci.list_tags_flow`` (pages, ``Link`` headers) and
  ``tags_to_versions``, answered with near-miss pages, bytes, nesting, hostile ``Link``
  headers and an answer over 16 MiB;
* the **registry.json** parser: ``RegistryMetadata.from_json`` and ``_source.source_flow``
  (discovery, the documented fallback, the metadata cache), answered with near-miss metadata,
  bytes, nesting and an answer over 64 KiB.

Each flow is driven here without a network: a request is answered by a ``Response`` built
from the drawn data (or, for an answer over the request's limit, by throwing the transport's
``BodyTooLarge`` into the flow, as the transports do).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any, Callable

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pkgloader._auth import AuthSession
from pkgloader._config import Config
from pkgloader._errors import (
    AuthError,
    DigestMismatch,
    InvalidManifest,
    PackageNotFound,
    PkgLoaderError,
    RegistryError,
)
from pkgloader._http import BodyTooLarge, Request, Response
from pkgloader._metadata import RegistryMetadata
from pkgloader._ref import PackageRef
from pkgloader._release import Release, VersionInfo
from pkgloader._semver import Version
from pkgloader._source import METADATA_MAX_BYTES, Source, source_flow
from pkgloader.backends import oci

#: a decorator, not a loaded profile: the settings of the other property modules stay theirs
PROPS = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

HOST = "127.0.0.1:5999"
PKG = PackageRef.parse("test:pkg")
_WORK = Path(tempfile.mkdtemp(prefix="pkgloader-props-"))


def _config(inline: bool) -> Config:
    mapping = (f'{{ registry = "{HOST}", metadata = {{ preferredProtocol = "oci", oci = {{ registry = "{HOST}" }} }} }}'
               if inline else f'"{HOST}"')
    path = _WORK / ("inline.toml" if inline else "discover.toml")
    path.write_text(textwrap.dedent(f"""
        [namespace_registries]
        test = {mapping}
        """))
    return Config.load(config_files=[path], cache_dir=_WORK / ("cache-inline" if inline else "cache"),
                       use_global=False, use_project=False)


INLINE = _config(inline=True)
DISCOVER = _config(inline=False)


def _source() -> Source:
    flow = source_flow(INLINE, PKG)
    try:
        next(flow)
    except StopIteration as stop:
        source: Source = stop.value
        return source
    raise AssertionError("inline metadata needs no request")


SOURCE = _source()


def _ctx() -> oci.OciContext:
    return oci.OciContext(AuthSession(), lambda source: None)


Answer = Callable[[Request], "Response | BaseException"]


def drive(flow: Any, answer: Answer, max_requests: int = 50) -> Any:
    """Run a flow, answering each request with ``answer(request)`` (an exception is thrown
    into the flow, as the transports do with theirs)."""
    req = next(flow)
    for _ in range(max_requests):
        outcome = answer(req)
        try:
            req = flow.throw(outcome) if isinstance(outcome, BaseException) else flow.send(outcome)
        except StopIteration as stop:
            return stop.value
    raise AssertionError(f"the flow made more than {max_requests} requests")


def response(req: Request, body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response | BaseException:
    if req.max_body is not None and len(body) > req.max_body:
        return BodyTooLarge(req.max_body, req.url)
    return Response(status, {k.lower(): v for k, v in (headers or {}).items()}, body, req.url, received=len(body))


# --- shared strategies ---------------------------------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                           max_leaves=12)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The right kind of value, or any JSON value."""
    return st.one_of(strategy, strategy, json_values)


def nested(depth: int) -> list[Any]:
    out: list[Any] = []
    for _ in range(depth):
        out = [out]
    return out


#: bodies that are not near-misses: bytes, deep nesting (closed or not), huge numbers
odd_bodies = st.one_of(
    st.binary(max_size=64),
    st.integers(min_value=500, max_value=100_000).map(lambda n: b"[" * n),
    st.integers(min_value=500, max_value=20_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(min_value=500, max_value=20_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.sampled_from([b"1e999999", b"-" + b"9" * 5000, b'"\\ud800"', b"NaN", b"[Infinity]", b"\xef\xbb\xbf{}",
                     b"{\"tags\": 1e400}", b"{}" + b" " * 1000 + b"x"]),
)

DIGEST_TEXTS = st.one_of(st.just("sha256:" + "a" * 64), st.just("sha512:" + "b" * 128), st.just("sha256:XYZ"),
                         st.text(max_size=80))
SIZES = st.one_of(st.integers(min_value=-1, max_value=1 << 40), st.integers(min_value=10**30, max_value=10**40))


# --- manifests ---------------------------------------------------------------------------

platforms = st.fixed_dictionaries({}, optional={
    "os": maybe(st.sampled_from(["wasip1", "wasip2", "wasi", "linux"])),
    "architecture": maybe(st.sampled_from(["wasm", "amd64"])),
})
descriptors = st.fixed_dictionaries({}, optional={
    "mediaType": maybe(st.sampled_from(list(oci.WASM_LAYER_TYPES) + [oci.WASM_CONFIG_TYPE, oci.OCI_MANIFEST,
                                                                      "application/octet-stream"])),
    "digest": maybe(DIGEST_TEXTS),
    "size": maybe(SIZES),
    "platform": maybe(platforms),
    "annotations": maybe(st.dictionaries(st.text(max_size=8), json_values, max_size=3)),
})
manifests = st.fixed_dictionaries({}, optional={
    "schemaVersion": maybe(st.just(2)),
    "mediaType": maybe(st.sampled_from(list(oci.MANIFEST_TYPES) + ["text/html"])),
    "config": maybe(descriptors),
    "layers": maybe(st.lists(maybe(descriptors), max_size=3)),
    "manifests": maybe(st.lists(maybe(descriptors), max_size=3)),
    "annotations": maybe(st.dictionaries(st.text(max_size=8), json_values, max_size=3)),
})
manifest_bodies = st.one_of(manifests.map(lambda m: json.dumps(m).encode()), json_values.map(lambda v: json.dumps(v).encode()),
                            odd_bodies)
content_types = st.one_of(st.none(), st.sampled_from(list(oci.MANIFEST_TYPES) + ["application/json", "text/html; x"]),
                          st.text(max_size=30))
MANIFEST_ERRORS = (InvalidManifest, DigestMismatch, PackageNotFound, RegistryError, AuthError)


def _manifest_answers(tag_body: bytes, tag_type: str | None, digest_body: bytes, status: int,
                      header_digest: str | None) -> Answer:
    def answer(req: Request) -> Response | BaseException:
        assert req.method == "GET" and "/manifests/" in req.url and req.max_body == oci.MAX_MANIFEST_BYTES
        headers = {"Content-Type": tag_type} if tag_type is not None else {}
        if req.url.endswith("/manifests/" + Version.parse("1.0.0").to_tag()):
            if header_digest is not None:
                headers["Docker-Content-Digest"] = header_digest
            return response(req, tag_body, status, headers)
        return response(req, digest_body, 200, headers)
    return answer


def _index_pointing_at(body: bytes, entries: list[Any]) -> bytes:
    """An image index whose wasm entry names ``body`` by its digest (so the by-digest path is
    reached), next to the drawn entries."""
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    wasm = {"mediaType": oci.OCI_MANIFEST, "digest": digest, "size": len(body), "platform": {"os": "wasip2"}}
    return json.dumps({"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": [*entries, wasm]}).encode()


def check_release(tag_body: bytes, tag_type: str | None = None, digest_body: bytes = b"{}", status: int = 200,
                  header_digest: str | None = None, strict: bool = False) -> None:
    ctx = _ctx()
    ctx.strict = strict
    try:
        rel = drive(oci.release_flow(ctx, SOURCE, Version.parse("1.0.0")),
                    _manifest_answers(tag_body, tag_type, digest_body, status, header_digest))
    except MANIFEST_ERRORS as exc:
        assert exc.message and "\n" not in exc.message
        return
    assert isinstance(rel, Release)
    assert rel.media_type in oci.WASM_LAYER_TYPES and isinstance(rel.size, int) and rel.size >= 0
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in rel.annotations.items())


@PROPS
@given(tag_body=manifest_bodies, tag_type=content_types, strict=st.booleans())
@example(tag_body=b"[" * 100_000, tag_type=None, strict=False)
@example(tag_body=b" " * (oci.MAX_MANIFEST_BYTES + 1), tag_type=None, strict=False)
@example(tag_body=json.dumps({"layers": "x"}).encode(), tag_type=None, strict=False)
@example(tag_body=json.dumps({"mediaType": oci.OCI_INDEX, "manifests": [{"platform": "x"}]}).encode(), tag_type=None,
         strict=False)
@example(tag_body=json.dumps({"mediaType": oci.OCI_INDEX, "manifests": [{"platform": {"os": "linux"}}, 5,
                                                                         {"platform": 7}]}).encode(),
         tag_type=None, strict=False)
def test_manifest_parser_raises_only_manifest_errors(tag_body: bytes, tag_type: str | None, strict: bool) -> None:
    check_release(tag_body, tag_type, strict=strict)


@PROPS
@given(inner=manifest_bodies, entries=st.lists(maybe(descriptors), max_size=3), tag_type=content_types)
@example(inner=json.dumps({"mediaType": oci.OCI_INDEX, "manifests": []}).encode(), entries=[], tag_type=None)
@example(inner=b"[" * 50_000, entries=[], tag_type=None)
def test_index_entries_and_the_manifest_they_name(inner: bytes, entries: list[Any], tag_type: str | None) -> None:
    check_release(_index_pointing_at(inner, entries), tag_type, digest_body=inner)


@PROPS
@given(status=st.integers(min_value=100, max_value=599), body=st.binary(max_size=300),
       header=st.one_of(st.none(), DIGEST_TEXTS))
def test_manifest_any_status_and_digest_header(status: int, body: bytes, header: str | None) -> None:
    check_release(body, None, status=status, header_digest=header)


def test_a_manifest_that_parses_is_a_release() -> None:
    """The oracle for the properties above: a well-formed manifest does give a release."""
    layer = {"mediaType": "application/wasm", "digest": "sha256:" + "c" * 64, "size": 8}
    body = json.dumps({"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST, "layers": [layer]}).encode()
    rel = drive(oci.release_flow(_ctx(), SOURCE, Version.parse("1.0.0")), _manifest_answers(body, None, b"", 200, None))
    assert (str(rel.digest), rel.size, rel.media_type) == (layer["digest"], 8, "application/wasm")


# --- tag lists -------------------------------------------------------------------------------

tag_texts = st.one_of(st.sampled_from(["1.0.0", "0.2.0-rc.1", "1.2.3_build.5", "latest", "v1.0.0", "sha256-abc.sig",
                                       "1.0.0+x", "01.0.0", "1.0", "1_2_3"]),
                      st.text(max_size=30),
                      st.integers(min_value=1, max_value=20_000).map(lambda n: "1.0.0-" + "a." * n + "a"),
                      st.integers(min_value=4000, max_value=10_000).map(lambda n: "9" * n + ".0.0"))
tag_pages = st.fixed_dictionaries({}, optional={"name": maybe(st.just("test/pkg")),
                                                "tags": maybe(st.lists(maybe(tag_texts), max_size=8))})
tag_bodies = st.one_of(tag_pages.map(lambda p: json.dumps(p).encode()), json_values.map(lambda v: json.dumps(v).encode()),
                       odd_bodies)
links = st.one_of(
    st.none(),
    st.sampled_from([
        '</v2/test/pkg/tags/list?last=1.0.0&n=1>; rel="next"',
        '<http://other.example/v2/test/pkg/tags/list>; rel="next"',
        '<http://[::1/x>; rel="next"', '<http://[>; rel=next', '<//[::1>; rel="next"', "<>; rel=next",
        '<http://127.0.0.1:5999:99/x>; rel="next"', "<" * 60_000, "<a" * 30_000, "<>" + " " * 60_000,
        '<\x00>; rel="next"', '<http://127.0.0.1:5999/v2/test/pkg/tags/list>; rel="next"',
    ]),
    st.text(max_size=80),
    st.text(max_size=40).map(lambda t: f"<{t}>; rel=\"next\""),
)
TAG_ERRORS = (RegistryError, PackageNotFound, AuthError)


def check_tags(pages: list[tuple[int, bytes, str | None]]) -> None:
    answers = iter(pages)

    def answer(req: Request) -> Response | BaseException:
        assert req.method == "GET" and req.url.startswith(f"http://{HOST}/") and req.max_body == 16 << 20
        status, body, link = next(answers, (200, b'{"tags": []}', None))
        return response(req, body, status, {"Link": link} if link is not None else None)

    started = time.monotonic()
    try:
        tags = drive(oci.list_tags_flow(_ctx(), SOURCE), answer, max_requests=oci.MAX_TAG_PAGES + 1)
    except TAG_ERRORS as exc:
        assert exc.message and "\n" not in exc.message
    else:
        assert isinstance(tags, list) and all(isinstance(t, str) for t in tags)
        junk: list[str] = []
        versions = oci.tags_to_versions(tags, junk)
        assert all(isinstance(v, VersionInfo) for v in versions)
        assert [v.version.sort_key for v in versions] == sorted(v.version.sort_key for v in versions)
    assert time.monotonic() - started < 5, "a tag list answer must not cost seconds of CPU"


@PROPS
@given(pages=st.lists(st.tuples(st.sampled_from([200, 200, 200, 401, 404, 500, 302]), tag_bodies, links),
                      min_size=1, max_size=4))
@example(pages=[(200, b"[" * 100_000, None)])
@example(pages=[(200, b" " * ((16 << 20) + 1), None)])
@example(pages=[(200, b'{"tags": 5}', None)])
@example(pages=[(200, b'{"tags": ["1.0.0"]}', "<" * 60_000)])
@example(pages=[(200, b'{"tags": ["1.0.0"]}', '<http://[::1/x>; rel="next"')])
@example(pages=[(200, b'{"tags": ["1.0.0"]}', '</v2/test/pkg/tags/list>; rel="next"')] * 3)
def test_tag_list_parser_raises_only_registry_errors(pages: list[tuple[int, bytes, str | None]]) -> None:
    check_tags(pages)


@PROPS
@given(tags=st.lists(tag_texts, max_size=20))
def test_tags_to_versions_takes_any_text(tags: list[str]) -> None:
    versions = oci.tags_to_versions(tags, [])
    for info in versions:
        assert Version.from_tag(info.version.to_tag()) == info.version


def test_a_tag_list_that_parses_gives_its_versions() -> None:
    """The oracle: two well-formed pages give their versions, junk reported aside."""
    pages = iter([(b'{"tags": ["1.0.0", "latest"]}', '</v2/test/pkg/tags/list?last=latest>; rel="next"'),
                  (b'{"tags": ["0.9.0", "1.0.1_b"]}', None)])

    def answer(req: Request) -> Response | BaseException:
        body, link = next(pages)
        return response(req, body, 200, {"Link": link} if link else None)

    tags = drive(oci.list_tags_flow(_ctx(), SOURCE), answer)
    junk: list[str] = []
    assert [str(v.version) for v in oci.tags_to_versions(tags, junk)] == ["0.9.0", "1.0.0", "1.0.1+b"]
    assert junk == ["latest"]


# --- registry.json ---------------------------------------------------------------------------

authorities = st.one_of(st.sampled_from([HOST, "ghcr.io", "oci.example:5000", "[::1]:5000", "[::1", "a b", "", "x/y",
                                         "host:99999", "http://ghcr.io", "h:p:q"]),
                        st.text(max_size=20))
urls = st.one_of(st.sampled_from(["https://warg.example", "http://127.0.0.1:1/", "ftp://x", "http://[::1", "", "x"]),
                 st.text(max_size=20))
metadata = st.fixed_dictionaries({}, optional={
    "preferredProtocol": maybe(st.sampled_from(["oci", "warg", "local", "foo"])),
    "oci": maybe(st.fixed_dictionaries({}, optional={"registry": maybe(authorities),
                                                     "namespacePrefix": maybe(st.sampled_from(["", "pre/", "../", "a b/"]))})),
    "warg": maybe(st.fixed_dictionaries({}, optional={"url": maybe(urls)})),
    "ociRegistry": maybe(authorities),
    "ociNamespacePrefix": maybe(st.text(max_size=10)),
    "wargUrl": maybe(urls),
})
metadata_bodies = st.one_of(metadata.map(lambda m: json.dumps(m).encode()), json_values.map(lambda v: json.dumps(v).encode()),
                            odd_bodies)


@PROPS
@given(data=st.one_of(metadata, json_values))
@example(data=nested(50))
@example(data={"oci": nested(30)})
def test_registry_metadata_from_json_raises_only_value_error(data: Any) -> None:
    try:
        meta = RegistryMetadata.from_json(data)
    except ValueError as exc:
        assert str(exc)
        return
    assert meta.protocol is None or isinstance(meta.protocol, str)
    again = RegistryMetadata.from_json(meta.to_json())
    assert again.to_json() == meta.to_json()
    assert (again.oci_registry, again.oci_namespace_prefix, again.warg_url) == \
        (meta.oci_registry, meta.oci_namespace_prefix, meta.warg_url)


def _clear_metadata_cache() -> None:
    shutil.rmtree(DISCOVER.cache_dir / "metadata", ignore_errors=True)
    vars(DISCOVER).pop("_metadata_failures", None)  # a failure is remembered for a minute in memory


def resolve_discovered(first: tuple[int, bytes], legacy: tuple[int, bytes]) -> Source | None:
    """``source_flow`` for a registry without inline metadata, answered ``first`` at the
    current path and ``legacy`` at the legacy one; None when it raised a documented error."""
    def answer(req: Request) -> Response | BaseException:
        assert req.max_body == METADATA_MAX_BYTES and req.method == "GET"
        status, body = first if req.url.endswith("/.well-known/wasm-pkg/registry.json") else legacy
        return response(req, body, status)

    _clear_metadata_cache()
    try:
        source: Source = drive(source_flow(DISCOVER, PKG), answer, max_requests=3)
    except RegistryError as exc:
        # only a metadata that asks for a protocol pkgloader refuses; never a broken answer
        assert "protocol" in exc.message, exc.message
        return None
    assert source.backend in ("oci", "warg")
    if source.backend == "oci":
        assert source.oci_registry and source.oci_scheme in ("http", "https")
    else:
        assert source.warg_url
    if source.metadata.warning is not None:
        assert source.metadata.warning.startswith(f"could not read registry metadata for {HOST} (")
        assert source.oci_registry == HOST and source.oci_repository == "test/pkg"
    return source


statuses = st.sampled_from([200, 200, 200, 404, 410, 500, 302])


@PROPS
@given(first=st.tuples(statuses, metadata_bodies), legacy=st.tuples(statuses, metadata_bodies))
@example(first=(200, b"[" * 60_000), legacy=(404, b""))
@example(first=(200, b" " * (METADATA_MAX_BYTES + 1)), legacy=(404, b""))
@example(first=(200, b'{"oci": {"registry": "[::1"}}'), legacy=(404, b""))
@example(first=(200, b'{"oci": "x"}'), legacy=(404, b""))
@example(first=(404, b""), legacy=(200, b'{"ociRegistry": "a b"}'))
def test_registry_json_parser_warns_and_falls_back(first: tuple[int, bytes], legacy: tuple[int, bytes]) -> None:
    resolve_discovered(first, legacy)


def test_oversized_registry_json_is_the_documented_fallback() -> None:
    source = resolve_discovered((200, b" " * (METADATA_MAX_BYTES + 1)), (404, b""))
    assert source is not None and source.backend == "oci" and source.oci_registry == HOST
    assert source.metadata.warning == (
        f"could not read registry metadata for {HOST} (registry metadata at "
        f"http://{HOST}/.well-known/wasm-pkg/registry.json is larger than 64 KiB; refusing to read it); "
        f"assuming {HOST} is itself an OCI registry (registry chosen by namespace_registries.test "
        f"({source.choice.origin}))")


@PROPS
@given(text=st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()),
                      st.fixed_dictionaries({"registry": st.just(HOST), "fetched_at": maybe(st.just(time.time())),
                                             "metadata": maybe(metadata)}).map(lambda v: json.dumps(v).encode()),
                      st.just(b"[" * 50_000)))
def test_a_damaged_metadata_cache_file_is_ignored(text: bytes) -> None:
    """The cached registry.json is a local file someone may have damaged: never a crash."""
    from pkgloader._source import read_cached_metadata

    path = DISCOVER.cache_dir / "metadata" / f"{HOST.replace(':', '_')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text)
    try:
        got = read_cached_metadata(DISCOVER.cache_dir, HOST, 86400)
        assert got is None or got.how.startswith("cached")
    finally:
        _clear_metadata_cache()


def test_pkgloader_errors_only() -> None:
    """What the properties above allow is documented: every class is a PkgLoaderError."""
    for cls in (*MANIFEST_ERRORS, *TAG_ERRORS):
        assert issubclass(cls, PkgLoaderError)
