"""Registry faults, injected by a ``fault_proxy`` in front of a real registry: corrupted,
truncated and dropped bodies, wrong sizes, oversized manifests, 429/5xx/4xx answers, tag
list pagination and Link loops. Each failure is checked for its error code, whole message,
exit code, request count and that nothing is left behind."""

from __future__ import annotations

import asyncio
import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pkgloader._client import AsyncClient, Client
from pkgloader._config import Config
from pkgloader._errors import (
    DigestMismatch,
    InvalidManifest,
    NetworkError,
    PackageNotFound,
    RegistryError,
    SizeMismatch,
)
from support.oci import OCI_MANIFEST, OciClient, digest_of, wasm_config

REPO = "test/pkg"
REF = "test:pkg@=1.0.0"
WHAT = "test:pkg@1.0.0"
RETRY_HINT = "  hint: retry; if it persists the registry is serving corrupted content"
RETRIES = 3  # the default [pkgloader] retries


# --------------------------------------------------------------------------- helpers


def write_config(registry: Any, tmp_path: Path, extra: str = "") -> Path:
    text = textwrap.dedent(f"""
        [namespace_registries]
        test = {{ registry = "{registry.host}", metadata = {{ preferredProtocol = "oci", oci = {{ registry = "{registry.host}" }} }} }}
        [registry."{registry.host}".oci]
        protocol = "{registry.scheme}"
        """) + textwrap.dedent(extra)
    f = tmp_path / "pkgloader-test.toml"
    f.write_text(text)
    return f


def config(registry: Any, tmp_path: Path) -> Config:
    return Config.load(config_files=[write_config(registry, tmp_path)], cache_dir=tmp_path / "cache")


def client(registry: Any, tmp_path: Path, **kw: Any) -> Client:
    return Client(config(registry, tmp_path), **kw)


def cli_args(registry: Any, tmp_path: Path) -> list[Any]:
    return ["--config", write_config(registry, tmp_path), "--cache-dir", tmp_path / "cache"]


def part_files(directory: Path) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.endswith(".part")) if directory.is_dir() else []


def assert_nothing_left(cache: Path, out: Path) -> None:
    assert not out.exists()
    assert sorted(p for p in (cache / "blobs").rglob("*") if p.is_file()) == []
    assert part_files(cache / "tmp") == []
    assert part_files(out.parent) == []


def only(reqs: list[tuple[str, str]], fragment: str) -> list[tuple[str, str]]:
    return [r for r in reqs if fragment in r[1]]


@pytest.fixture
def wasm(wit_package) -> bytes:  # type: ignore[no-untyped-def]
    return wit_package("test", "pkg", "1.0.0").read_bytes()


@pytest.fixture
def published(registry, oci_client, wasm):  # type: ignore[no-untyped-def]
    """test:pkg@1.0.0 in the CNCF layout, pushed directly to the registry."""
    return oci_client(registry).push_wasm(REPO, "1.0.0", wasm)


# --------------------------------------------------------------------------- body faults


def test_corrupted_blob_is_a_digest_mismatch(registry, published, wasm, fault_proxy, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    proxy = fault_proxy(registry)
    proxy.corrupt(r"/blobs/" + published.layer_digest, offset=100)
    bad = bytearray(wasm)
    bad[100] ^= 0xFF
    expected = "\n".join([
        f"error[digest-mismatch]: content of {WHAT} does not match its digest",
        f"  expected {published.layer_digest}  (manifest layer)",
        f"  got      {digest_of(bytes(bad))}  ({len(wasm)} bytes from {proxy.host})",
        "  nothing was kept",
        RETRY_HINT,
    ])
    out = tmp_path / "out" / "pkg.wasm"
    with client(proxy, tmp_path) as c:
        with pytest.raises(DigestMismatch) as ei:
            c.fetch(REF, out)
    assert ei.value.render() == expected
    assert_nothing_left(tmp_path / "cache", out)
    # an integrity failure is not retried: one blob request
    assert only(proxy.requests(), "/blobs/") == [("GET", f"/v2/{REPO}/blobs/{published.layer_digest}")]

    proxy.mark()
    r = run_cli("fetch", REF, "-o", out, *cli_args(proxy, tmp_path), "-q")
    assert (r.code, r.out, r.err) == (5, "", expected + "\n")
    assert_nothing_left(tmp_path / "cache", out)
    assert proxy.requests() == [("GET", f"/v2/{REPO}/blobs/{published.layer_digest}")]  # release was cached

    proxy.clear()
    r = run_cli("fetch", REF, "-o", out, *cli_args(proxy, tmp_path), "-q")
    assert r.code == 0 and out.read_bytes() == wasm


@pytest.mark.parametrize("fault", ["truncate", "drop"])
def test_broken_blob_download_is_retried_once_and_succeeds(fault: str, registry, published, wasm, fault_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = fault_proxy(registry)
    if fault == "truncate":
        proxy.truncate(r"/blobs/", after=len(wasm) // 2, times=1)
    else:
        proxy.drop(r"/blobs/", times=1)
    registry.mark()
    with client(proxy, tmp_path) as c:
        res = c.fetch(REF, tmp_path / "out.wasm")
    assert res.path.read_bytes() == wasm and res.from_cache is False
    blob = ("GET", f"/v2/{REPO}/blobs/{published.layer_digest}")
    assert proxy.requests() == [("GET", f"/v2/{REPO}/manifests/1.0.0"), blob, blob]
    assert [r.dropped for r in proxy.request_log()] == [False, True, False]
    # a dropped request never reached the registry; a truncated one did
    assert registry.requests() == [("GET", f"/v2/{REPO}/manifests/1.0.0")] + [blob] * (2 if fault == "truncate" else 1)
    assert part_files(tmp_path / "cache" / "tmp") == []


def test_dropped_manifest_request_is_retried(registry, published, wasm, fault_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = fault_proxy(registry)
    proxy.drop(r"/manifests/", times=2)
    with client(proxy, tmp_path) as c:
        assert c.read_bytes(REF) == wasm
    assert only(proxy.requests(), "/manifests/") == [("GET", f"/v2/{REPO}/manifests/1.0.0")] * 3


def test_async_client_retries_a_truncated_blob(registry, published, wasm, fault_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = fault_proxy(registry)
    proxy.truncate(r"/blobs/", after=10, times=1)
    proxy.respond(r"/manifests/", 429, headers={"Retry-After": "0"}, times=1)

    async def go() -> bytes:
        async with AsyncClient(config(proxy, tmp_path)) as c:
            return await c.read_bytes(REF)

    assert asyncio.run(go()) == wasm
    assert proxy.requests() == [("GET", f"/v2/{REPO}/manifests/1.0.0")] * 2 + [("GET", f"/v2/{REPO}/blobs/{published.layer_digest}")] * 2


def test_always_truncated_blob_fails_with_exit_6_after_the_retries(registry, published, wasm, fault_proxy, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    proxy = fault_proxy(registry)
    proxy.truncate(r"/blobs/", after=500)
    out = tmp_path / "out" / "pkg.wasm"
    r = run_cli("fetch", REF, "-o", out, *cli_args(proxy, tmp_path), "-q")
    url = f"{proxy.url}/v2/{REPO}/blobs/{published.layer_digest}"
    assert (r.code, r.out) == (6, ""), r.err
    assert r.err == (
        f"error[network-error]: connection to {url} broke: the body ended after 500 of {len(wasm)} bytes\n"
        "  hint: retry\n"
    )
    assert only(proxy.requests(), "/blobs/") == [("GET", f"/v2/{REPO}/blobs/{published.layer_digest}")] * (1 + RETRIES)
    assert_nothing_left(tmp_path / "cache", out)


def test_always_dropped_connection_fails_with_exit_6(registry, published, fault_proxy, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    proxy = fault_proxy(registry)
    proxy.drop(r"/manifests/")
    out = tmp_path / "pkg.wasm"
    r = run_cli("fetch", REF, "-o", out, *cli_args(proxy, tmp_path), "-q", "--json")
    assert r.code == 6
    assert r.err == (
        f"error[network-error]: connection to {proxy.url}/v2/{REPO}/manifests/1.0.0 broke: "
        "the server closed the connection without answering\n"
        "  hint: retry\n"
    )
    assert r.json()["error"]["code"] == "network-error"  # type: ignore[index]
    assert proxy.requests() == [("GET", f"/v2/{REPO}/manifests/1.0.0")] * (1 + RETRIES)
    assert not out.exists()


# --------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("delta", [-1, +1], ids=["manifest-says-smaller", "manifest-says-larger"])
def test_layer_size_mismatch(delta: int, registry, oci_client, wasm, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    # distribution checks that a manifest's blobs exist, not their sizes: the registry
    # stores (and serves) a manifest whose layer size is wrong
    oci = oci_client(registry)
    config_blob = wasm_config(wasm)
    oci.push_blob(REPO, config_blob)
    layer = oci.push_blob(REPO, wasm)
    size = len(wasm) + delta
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.wasm.config.v0+json", "digest": digest_of(config_blob), "size": len(config_blob)},
        "layers": [{"mediaType": "application/wasm", "digest": layer, "size": size}],
    }
    oci.push_manifest(REPO, "1.0.0", manifest)
    if delta < 0:
        lines = [
            f"error[size-mismatch]: content of {WHAT} is larger than its manifest says",
            f"  expected {size} bytes (manifest layer)",
            f"  got      more than {size} bytes from {registry.host}",
        ]
    else:
        lines = [
            f"error[size-mismatch]: content of {WHAT} is {len(wasm)} bytes, not the {size} its manifest says",
            f"  expected {size} bytes (manifest layer)",
            f"  got      {len(wasm)} bytes from {registry.host}",
        ]
    expected = "\n".join(lines + ["  nothing was kept", RETRY_HINT])
    out = tmp_path / "out" / "pkg.wasm"
    registry.mark()
    with client(registry, tmp_path) as c:
        with pytest.raises(SizeMismatch) as ei:
            c.fetch(REF, out)
    assert (ei.value.code, ei.value.render()) == ("size-mismatch", expected)
    assert_nothing_left(tmp_path / "cache", out)
    assert only(registry.requests(), "/blobs/") == [("GET", f"/v2/{REPO}/blobs/{layer}")]  # not retried
    r = run_cli("fetch", REF, "-o", out, *cli_args(registry, tmp_path), "-q")
    assert (r.code, r.err) == (5, expected + "\n")
    assert_nothing_left(tmp_path / "cache", out)


# --------------------------------------------------------------------------- manifests


def test_manifest_larger_than_4_mib_is_refused(registry, published, fault_proxy, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    proxy = fault_proxy(registry)
    huge = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "pad": "x" * (5 * 1024 * 1024)})
    # Connection: close, so that the proxy does not wait for another request on the connection
    # pkgloader abandons mid-body (it would print the reset to stderr)
    proxy.respond(r"/manifests/", 200, headers={"Content-Type": OCI_MANIFEST, "Connection": "close"}, body=huge)
    expected = "\n".join([
        f"error[manifest-too-large]: manifest of {WHAT} is larger than 4 MiB; refusing to read it",
        f"  url: {proxy.url}/v2/{REPO}/manifests/1.0.0",
        "  hint: a wasm package manifest is a few KiB; the registry is serving something else",
    ])
    out = tmp_path / "pkg.wasm"
    with client(proxy, tmp_path) as c:
        with pytest.raises(InvalidManifest) as ei:
            c.resolve(REF)
    assert (ei.value.code, ei.value.render()) == ("manifest-too-large", expected)
    r = run_cli("fetch", REF, "-o", out, *cli_args(proxy, tmp_path), "-q")
    assert (r.code, r.err) == (5, expected + "\n")
    assert proxy.requests() == [("GET", f"/v2/{REPO}/manifests/1.0.0")] * 2  # one per attempt, no retry
    assert_nothing_left(tmp_path / "cache", out)


def test_corrupted_manifest_body_with_its_digest_header_is_a_digest_mismatch(registry, published, fault_proxy, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    proxy = fault_proxy(registry)
    proxy.corrupt(r"/manifests/1\.0\.0$", offset=40)
    bad = bytearray(published.manifest)
    bad[40] ^= 0xFF
    expected = "\n".join([
        f"error[digest-mismatch]: manifest of {WHAT} does not match its digest",
        f"  expected {published.manifest_digest}  (Docker-Content-Digest header)",
        f"  got      {digest_of(bytes(bad))}  ({len(bad)} bytes from {proxy.host})",
        "  nothing was written",
        RETRY_HINT,
    ])
    out = tmp_path / "pkg.wasm"
    r = run_cli("fetch", REF, "-o", out, *cli_args(proxy, tmp_path), "-q")
    assert (r.code, r.out, r.err) == (5, "", expected + "\n")
    assert proxy.requests() == [("GET", f"/v2/{REPO}/manifests/1.0.0")]
    assert_nothing_left(tmp_path / "cache", out)
    assert not (tmp_path / "cache" / "releases").exists()  # nothing recorded either


def test_corrupted_manifest_fetched_by_digest_is_checked_against_the_digest(registry, oci_client, wasm, fault_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # an index points at the wasm manifest by digest; the proxy corrupts that manifest
    # and removes Docker-Content-Digest, so only the requested digest can catch it
    oci = oci_client(registry)
    inner = oci.push_wasm(REPO, None, wasm)
    oci.push_manifest(REPO, "1.0.0", {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": inner.manifest_digest, "size": len(inner.manifest),
                       "platform": {"os": "wasip2", "architecture": "wasm"}}],
    })
    proxy = fault_proxy(registry)
    proxy.corrupt(r"/manifests/sha256:", offset=3)
    proxy.set_header(r"/manifests/sha256:", "Docker-Content-Digest", None)
    bad = bytearray(inner.manifest)
    bad[3] ^= 0xFF
    with client(proxy, tmp_path) as c:
        with pytest.raises(DigestMismatch) as ei:
            c.fetch(REF, tmp_path / "pkg.wasm")
    assert ei.value.render() == "\n".join([
        f"error[digest-mismatch]: manifest of {WHAT} does not match its digest",
        f"  expected {inner.manifest_digest}  (requested digest)",
        f"  got      {digest_of(bytes(bad))}  ({len(bad)} bytes from {proxy.host})",
        "  nothing was written",
        RETRY_HINT,
    ])
    assert_nothing_left(tmp_path / "cache", tmp_path / "pkg.wasm")


# --------------------------------------------------------------------------- status codes


def test_429_with_retry_after_0_is_retried_exactly_once(registry, published, wasm, fault_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = fault_proxy(registry)
    rule = proxy.respond(r"/blobs/", 429, headers={"Retry-After": "0"}, body='{"errors":[{"code":"TOOMANYREQUESTS"}]}', times=1)
    registry.mark()
    with client(proxy, tmp_path) as c:
        res = c.fetch(REF, tmp_path / "pkg.wasm")
    assert res.path.read_bytes() == wasm and rule.hits == 1
    blob = ("GET", f"/v2/{REPO}/blobs/{published.layer_digest}")
    assert [(r.method, r.path, r.status) for r in proxy.request_log()] == [
        ("GET", f"/v2/{REPO}/manifests/1.0.0", 200), (*blob, 429), (*blob, 200)]
    assert registry.requests() == [("GET", f"/v2/{REPO}/manifests/1.0.0"), blob]  # the 429 never reached it


def test_503_is_retried(registry, published, wasm, fault_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = fault_proxy(registry)
    proxy.respond(r"/tags/list", 503, headers={"Retry-After": "0"}, times=2)
    proxy.respond(r"/manifests/", 502, headers={"Retry-After": "0"}, times=1)
    proxy.respond(r"/blobs/", 504, headers={"Retry-After": "0"}, times=1)
    with client(proxy, tmp_path) as c:
        assert c.read_bytes("test:pkg@1") == wasm
    assert [(r.path.rsplit("/", 2)[-2], r.status) for r in proxy.request_log()] == [
        ("tags", 503), ("tags", 503), ("tags", 200),
        ("manifests", 502), ("manifests", 200),
        ("blobs", 504), ("blobs", 200),
    ]


def test_persistent_503_fails_with_exit_6_after_the_retries(registry, published, fault_proxy, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    proxy = fault_proxy(registry)
    proxy.respond(r"/manifests/", 503, headers={"Retry-After": "0"}, body='{"errors":[{"code":"UNAVAILABLE","message":"maintenance"}]}')
    r = run_cli("fetch", REF, "-o", tmp_path / "pkg.wasm", *cli_args(proxy, tmp_path), "-q")
    assert (r.code, r.out) == (6, "")
    assert r.err == "\n".join([
        f"error[registry-error]: {proxy.host} answered HTTP 503 to the manifest request for {WHAT}",
        f"  url: {proxy.url}/v2/{REPO}/manifests/1.0.0",
        '  body: {"errors":[{"code":"UNAVAILABLE","message":"maintenance"}]}',
        "  hint: retry later; if it persists the registry is failing",
    ]) + "\n"
    assert proxy.requests() == [("GET", f"/v2/{REPO}/manifests/1.0.0")] * (1 + RETRIES)


def test_404_is_not_retried(registry, published, fault_proxy, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    proxy = fault_proxy(registry)
    r = run_cli("fetch", "test:pkg@=9.9.9", "-o", tmp_path / "pkg.wasm", *cli_args(proxy, tmp_path), "-q")
    assert (r.code, r.out) == (3, "")
    assert r.err == (
        f"error[package-not-found]: test:pkg@9.9.9 not found at {proxy.host}/{REPO}:9.9.9\n"
        "  hint: list the published versions with: pkgloader versions test:pkg\n"
    )
    # (a tag listing may follow, to look for the version with build metadata; the 404 is not repeated)
    assert only(proxy.requests(), "/manifests/") == [("GET", f"/v2/{REPO}/manifests/9.9.9")]


def test_404_on_the_blob_is_not_retried(registry, published, fault_proxy, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    proxy = fault_proxy(registry)
    proxy.respond(r"/blobs/", 404, body='{"errors":[{"code":"BLOB_UNKNOWN"}]}')
    out = tmp_path / "out" / "pkg.wasm"
    cfg = write_config(proxy, tmp_path)
    r = run_cli("fetch", REF, "-o", out, "--config", cfg, "--cache-dir", tmp_path / "cache", "-q")
    assert (r.code, r.out, r.err) == (3, "", "\n".join([
        f"error[package-not-found]: content of test:pkg not found or not authorized at {proxy.host}/{REPO}",
        f"  registry {proxy.host} chosen by namespace_registries.test (flag {cfg}:3)",
        "  hint: check the package name and the registry mapping (pkgloader config resolve REF)",
    ]) + "\n")
    assert proxy.requests() == [("GET", f"/v2/{REPO}/manifests/1.0.0"), ("GET", f"/v2/{REPO}/blobs/{published.layer_digest}")]
    assert_nothing_left(tmp_path / "cache", out)


MISSING_CASES = {
    "404": (None, "check the package name and the registry mapping (pkgloader config resolve REF)", ""),
    "403": (403, "check the package name; the configured credentials may not grant access", " (HTTP 403)"),
}


def test_missing_repository_answered_401_without_credentials_is_auth_required(registry, fault_proxy, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    """README's exit codes: a 401 with no credentials configured is 'authentication required'
    (4); the message says the repository may also not exist."""
    proxy = fault_proxy(registry)
    proxy.respond(r"/v2/test/nope/", 401, headers={"WWW-Authenticate": f'Basic realm="{proxy.host}"'},
                  body='{"errors":[{"code":"UNAUTHORIZED"}]}')
    h = proxy.host
    expected = (
        f"error[auth-required]: registry {h} requires authentication for repository:test/nope:pull (HTTP 401)\n"
        f"  no credentials are configured for {h}\n"
        "  a registry may answer so for a repository that does not exist, too\n"
        f'  hint: configure credentials: auth under [registry."{h}".oci], docker login, or '
        f"PKGLOADER_REGISTRY_{h.replace('.', '_').replace(':', '_')}_USERNAME/_PASSWORD; or check the package name\n"
    )
    r = run_cli("versions", "test:nope", *cli_args(proxy, tmp_path), "--json")
    assert (r.code, r.err) == (4, expected)
    r = run_cli("fetch", "test:nope@1", *cli_args(proxy, tmp_path), "-q")
    assert (r.code, r.err) == (4, expected)
    assert proxy.requests() == [("GET", "/v2/test/nope/tags/list")] * 2  # never retried


@pytest.mark.parametrize("status", list(MISSING_CASES))
def test_missing_repository_is_not_found_or_not_authorized(status: str, registry, fault_proxy, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    proxy = fault_proxy(registry)  # the registry has no test/nope at all
    code, hint, suffix = MISSING_CASES[status]
    if code == 403:
        proxy.respond(r"/v2/test/nope/", 403, body='{"errors":[{"code":"DENIED"}]}')
    setting = f"{proxy.host}"
    expected = "\n".join([
        f"error[package-not-found]: package test:nope not found or not authorized at {proxy.host}/test/nope{suffix}",
        f"  registry {setting} chosen by namespace_registries.test (flag {write_config(proxy, tmp_path)}:3)",
        f"  hint: {hint}",
    ]) + "\n"
    r = run_cli("versions", "test:nope", *cli_args(proxy, tmp_path), "--json")
    assert (r.code, r.err) == (3, expected)
    assert r.json()["error"]["exit_code"] == 3  # type: ignore[index]
    r = run_cli("fetch", "test:nope@1", *cli_args(proxy, tmp_path), "-q")
    assert (r.code, r.err) == (3, expected)
    assert proxy.requests() == [("GET", "/v2/test/nope/tags/list")] * 2  # never retried


# --------------------------------------------------------------------------- tag pagination


def _push_many_versions(oci: OciClient, count: int) -> list[str]:
    pushed = oci.push_wasm(REPO, "0.0.0", b"\0asm\x01\0\0\0")
    versions = ["0.0.0"] + [f"1.{i}.0" for i in range(1, count)]
    for v in versions[1:]:
        oci.push_manifest(REPO, v, pushed.manifest)
    return versions


@pytest.mark.parametrize("absolute", [False, True], ids=["relative-link", "absolute-link"])
def test_paginated_tag_list_is_followed(absolute: bool, registry, oci_client, fault_proxy, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    versions = _push_many_versions(oci_client(registry), 250)
    proxy = fault_proxy(registry)
    proxy.paginate_tags(100, absolute=absolute)
    with client(proxy, tmp_path) as c:
        listed = [str(i.version) for i in c.versions("test:pkg")]
    assert sorted(listed) == sorted(versions) and len(listed) == 250
    assert listed[-1] == "1.249.0"  # in version order
    log = proxy.request_log()
    assert [(r.path, r.status) for r in log] == [(f"/v2/{REPO}/tags/list", 200)] * 3
    tags = sorted(versions)
    assert [r.query for r in log] == ["", f"n=100&last={tags[99]}", f"n=100&last={tags[199]}"]

    proxy.mark()
    r = run_cli("versions", "test:pkg", *cli_args(proxy, tmp_path))
    assert r.code == 0 and r.out.splitlines() == listed
    assert len(proxy.requests()) == 3


def test_tag_list_link_loop_is_detected(registry, published, fault_proxy, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    proxy = fault_proxy(registry)
    link = f"/v2/{REPO}/tags/list?n=1&last=1.0.0"
    proxy.respond(r"/tags/list$", 200, headers={"Link": f'<{link}>; rel="next"'}, body=json.dumps({"name": REPO, "tags": ["1.0.0"]}))
    r = run_cli("versions", "test:pkg", *cli_args(proxy, tmp_path))
    assert (r.code, r.out) == (6, "")
    assert r.err == f"error[registry-error]: {proxy.host} sent a tag-list page loop at {proxy.url}{link}\n"
    assert [(x.path, x.query) for x in proxy.request_log()] == [
        (f"/v2/{REPO}/tags/list", ""), (f"/v2/{REPO}/tags/list", "n=1&last=1.0.0")]


def test_tag_list_link_to_another_host_is_refused(registry, published, fault_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = fault_proxy(registry)
    proxy.respond(r"/tags/list$", 200, headers={"Link": '<http://evil.example/v2/x/tags/list?last=a>; rel="next"'},
                  body=json.dumps({"name": REPO, "tags": ["1.0.0"]}))
    with client(proxy, tmp_path) as c:
        with pytest.raises(RegistryError) as ei:
            c.versions("test:pkg")
    assert ei.value.render() == (
        f"error[registry-error]: {proxy.host} sent a tag-list link to another host: http://evil.example/v2/x/tags/list?last=a")
    assert len(proxy.requests()) == 1
