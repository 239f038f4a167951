"""Manifest handling against a real registry: odd but valid manifests pushed with the raw
``oci_client``, what pkgloader accepts (lenient v0 by default), what it rejects (with the
error code, the whole message, exit code 5) and that a rejection leaves nothing behind."""

from __future__ import annotations

import gzip
import json
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from pkgloader._client import Client
from pkgloader._config import Config
from pkgloader._errors import IntegrityError, InvalidContent, InvalidManifest
from support.oci import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    ORAS_DEFAULT_CONFIG,
    WASM_CONFIG,
    OciClient,
    digest_of,
    wasm_config,
)

REPO = "test/pkg"
REF = "test:pkg@=1.0.0"
WHAT = "test:pkg@1.0.0"
TAR_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
WASM_LAYER_V1 = "application/vnd.wasm.content.layer.v1+wasm"
WASM_TYPES_LINE = "wasm media types: application/wasm, application/vnd.wasm.content.layer.v1+wasm"
RETRY_HINT = "hint: retry; if it persists the registry is serving corrupted content"


# --------------------------------------------------------------------------- helpers


def write_config(registry: Any, tmp_path: Path, extra: str = "") -> Path:
    """A config file for ``test:*`` on ``registry`` (inline metadata: no well-known lookup)."""
    text = textwrap.dedent(f"""
        [namespace_registries]
        test = {{ registry = "{registry.host}", metadata = {{ preferredProtocol = "oci", oci = {{ registry = "{registry.host}" }} }} }}
        [registry."{registry.host}".oci]
        protocol = "{registry.scheme}"
        """) + textwrap.dedent(extra)
    f = tmp_path / "pkgloader-test.toml"
    f.write_text(text)
    return f


def client(registry: Any, tmp_path: Path, **kw: Any) -> Client:
    return Client(Config.load(config_files=[write_config(registry, tmp_path)], cache_dir=tmp_path / "cache"), **kw)


def blob_files(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "blobs").rglob("*") if p.is_file())


def part_files(directory: Path) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.endswith(".part")) if directory.is_dir() else []


def assert_nothing_left(cache: Path, out: Path) -> None:
    assert not out.exists()
    assert blob_files(cache) == []
    assert part_files(cache / "tmp") == []
    assert part_files(out.parent) == []


def push_manifest(oci: OciClient, reference: str, manifest: dict[str, Any]) -> tuple[str, bytes]:
    body = json.dumps(manifest, indent=2).encode()
    return oci.push_manifest(REPO, reference, body, manifest.get("mediaType", OCI_MANIFEST)), body


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest_of(data), "size": len(data), **extra}


def image(oci: OciClient, reference: str, layers: list[tuple[str, bytes]], *, config: bytes | None = None,
          config_type: str = WASM_CONFIG, media_type: str = OCI_MANIFEST) -> tuple[str, bytes]:
    """Push the blobs and an image manifest with these (media type, bytes) layers."""
    if config is None:
        config = wasm_config(layers[-1][1]) if config_type == WASM_CONFIG else b"{}"
    oci.push_blob(REPO, config)
    for _, data in layers:
        oci.push_blob(REPO, data)
    manifest = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": descriptor(config_type, config),
        "layers": [descriptor(mt, data) for mt, data in layers],
    }
    return push_manifest(oci, reference, manifest)


def linux_image(oci: OciClient, reference: str, arch: str = "amd64") -> tuple[str, bytes]:
    """A (tiny, fake) container image for linux/<arch>: no wasm anywhere."""
    config = json.dumps({"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    layer = gzip.compress(f"not a wasm package, a {arch} rootfs".encode(), mtime=0)
    return image(oci, reference, [(TAR_GZ, layer)], config=config, config_type=IMAGE_CONFIG)


def index(oci: OciClient, reference: str, entries: list[tuple[str, bytes, dict[str, str]]]) -> tuple[str, bytes]:
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [dict(descriptor(OCI_MANIFEST, body), platform=platform) for _, body, platform in entries],
    }
    return push_manifest(oci, reference, manifest)


# --------------------------------------------------------------------------- accepted


def test_image_index_resolves_to_its_wasm_entry_never_to_linux(registry, oci_client, wit_package, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    wasm = wit_package("test", "pkg", "1.0.0").read_bytes()
    oci = oci_client(registry)
    amd64_digest, amd64 = linux_image(oci, "amd64-only")
    arm64_digest, arm64 = linux_image(oci, "arm64-only", "arm64")
    wasm_digest, wasm_manifest = image(oci, "wasm-only", [("application/wasm", wasm)])
    index(oci, "1.0.0", [
        (amd64_digest, amd64, {"os": "linux", "architecture": "amd64"}),
        (wasm_digest, wasm_manifest, {"os": "wasip2", "architecture": "wasm"}),
        (arm64_digest, arm64, {"os": "linux", "architecture": "arm64"}),
    ])

    registry.mark()
    with client(registry, tmp_path) as c:
        res = c.fetch(REF, tmp_path / "out.wasm")
    assert res.path.read_bytes() == wasm
    assert str(res.release.digest) == digest_of(wasm)
    assert res.release.manifest_digest == wasm_digest
    assert (res.release.manifest_media_type, res.release.config_media_type) == (OCI_MANIFEST, WASM_CONFIG)
    # the index, then the wasm entry's manifest, then its layer: the linux images are never read
    assert registry.requests() == [
        ("GET", f"/v2/{REPO}/manifests/1.0.0"),
        ("GET", f"/v2/{REPO}/manifests/{wasm_digest}"),
        ("GET", f"/v2/{REPO}/blobs/{digest_of(wasm)}"),
    ]


def test_docker_v2_manifest_is_accepted(registry, oci_client, wit_package, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    wasm = wit_package("test", "pkg", "1.0.0").read_bytes()
    digest, _ = image(oci_client(registry), "1.0.0", [("application/wasm", wasm)],
                      config_type="application/vnd.docker.container.image.v1+json", config=b"{}",
                      media_type=DOCKER_MANIFEST)
    with client(registry, tmp_path) as c:
        res = c.fetch(REF, tmp_path / "out.wasm")
    assert res.path.read_bytes() == wasm
    assert (res.release.manifest_digest, res.release.manifest_media_type) == (digest, DOCKER_MANIFEST)


def test_wasm_layer_is_picked_by_media_type_not_position(registry, oci_client, wit_package, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    wasm = wit_package("test", "pkg", "1.0.0").read_bytes()
    readme = b"# test:pkg\nnot the package\n"
    image(oci_client(registry), "1.0.0", [("text/markdown", readme), ("application/wasm", wasm)])
    registry.mark()
    with client(registry, tmp_path) as c:
        res = c.fetch(REF, tmp_path / "out.wasm")
    assert res.path.read_bytes() == wasm
    assert (str(res.release.digest), res.release.size, res.release.media_type) == (digest_of(wasm), len(wasm), "application/wasm")
    assert ("GET", f"/v2/{REPO}/blobs/{digest_of(readme)}") not in registry.requests()


def test_wasm_content_layer_v1_media_type_is_accepted(registry, oci_client, wit_package, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    wasm = wit_package("test", "pkg", "1.0.0").read_bytes()
    image(oci_client(registry), "1.0.0", [(WASM_LAYER_V1, wasm)])
    with client(registry, tmp_path) as c:
        res = c.fetch(REF, tmp_path / "out.wasm")
        assert c.read_bytes(REF) == wasm
    assert res.path.read_bytes() == wasm
    assert res.release.media_type == WASM_LAYER_V1


def test_oras_default_config_is_lenient_but_not_strict(registry, oci_client, wit_package, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    wasm = wit_package("test", "pkg", "1.0.0").read_bytes()
    image(oci_client(registry), "1.0.0", [("application/wasm", wasm)], config_type=ORAS_DEFAULT_CONFIG)
    expected = "\n".join([
        f"error[strict-layout]: {WHAT} does not follow the CNCF Wasm artifact layout (strict mode)",
        f"  config media type is '{ORAS_DEFAULT_CONFIG}', not {WASM_CONFIG}",
        "  hint: fetch without --strict (and strict = false) to accept any manifest with one wasm layer",
    ])
    cache = tmp_path / "cache"
    out = tmp_path / "out" / "pkg.wasm"
    with client(registry, tmp_path, strict=True) as c:
        with pytest.raises(InvalidManifest) as ei:
            c.fetch(REF, out)
    assert (ei.value.code, ei.value.render()) == ("strict-layout", expected)
    assert_nothing_left(cache, out)

    cfg = write_config(registry, tmp_path)
    r = run_cli("fetch", REF, "-o", out, "--config", cfg, "--cache-dir", cache, "--strict", "--json")
    assert (r.code, r.err) == (5, expected + "\n")
    assert r.json()["error"]["code"] == "strict-layout" and r.json()["error"]["exit_code"] == 5
    assert_nothing_left(cache, out)

    # lenient (the default) takes it ...
    with client(registry, tmp_path) as c:
        assert c.fetch(REF, out).path.read_bytes() == wasm
        assert c.resolve(REF).config_media_type == ORAS_DEFAULT_CONFIG
    # ... and a release cached leniently is not served to a strict client
    out.unlink()
    r = run_cli("fetch", REF, "-o", out, "--config", cfg, "--cache-dir", cache, "--strict", "-q")
    assert (r.code, r.err) == (5, expected + "\n")
    assert not out.exists() and part_files(out.parent) == []
    # strict = true in the config file is the same as --strict
    strict_cfg = tmp_path / "strict.toml"
    strict_cfg.write_text("[pkgloader]\nstrict = true\n")
    r = run_cli("fetch", REF, "-o", out, "--config", cfg, "--config", strict_cfg, "--cache-dir", cache, "-q")
    assert (r.code, r.err) == (5, expected + "\n")


def test_strict_accepts_the_cncf_layout(registry, oci_client, wit_package, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    wasm = wit_package("test", "pkg", "1.0.0").read_bytes()
    oci_client(registry).push_wasm(REPO, "1.0.0", wasm)
    cfg = write_config(registry, tmp_path)
    out = tmp_path / "pkg.wasm"
    r = run_cli("fetch", REF, "-o", out, "--config", cfg, "--cache-dir", tmp_path / "cache", "--strict", "-q")
    assert (r.code, r.out, r.err) == (0, f"{out}\n", "")
    assert out.read_bytes() == wasm


# --------------------------------------------------------------------------- rejected


@dataclass
class Case:
    """Push an odd release of test:pkg@1.0.0; return the expected error text."""

    error: type[IntegrityError]
    code: str
    push: Callable[[OciClient, bytes], str]
    strict: bool = False


def _index_without_wasm(oci: OciClient, wasm: bytes) -> str:
    amd64_digest, amd64 = linux_image(oci, "amd64-only")
    arm64_digest, arm64 = linux_image(oci, "arm64-only", "arm64")
    index(oci, "1.0.0", [
        (amd64_digest, amd64, {"os": "linux", "architecture": "amd64"}),
        (arm64_digest, arm64, {"os": "linux", "architecture": "arm64"}),
    ])
    return "\n".join([
        f"error[no-wasm-layer]: image index of {WHAT} has no wasm entry",
        "  platforms found: linux/amd64, linux/arm64",
        "  hint: the tag points at a multi-platform image without a wasm (os wasip1/wasip2 or architecture wasm) entry",
    ])


def _zero_wasm_layers(oci: OciClient, wasm: bytes) -> str:
    layer = gzip.compress(b"a rootfs", mtime=0)
    image(oci, "1.0.0", [(TAR_GZ, layer)], config_type=IMAGE_CONFIG, config=b"{}")
    return "\n".join([
        f"error[no-wasm-layer]: manifest of {WHAT} has no wasm layer",
        f"  layers found: {TAR_GZ} ({len(layer)} bytes)",
        f"  {WASM_TYPES_LINE}",
        "  hint: this tag is not a wasm package (is it a container image?)",
    ])


def _two_wasm_layers(oci: OciClient, wasm: bytes) -> str:
    other = b"\0asm\x01\0\0\0"
    image(oci, "1.0.0", [("application/wasm", wasm), (WASM_LAYER_V1, other)])
    return "\n".join([
        f"error[multiple-wasm-layers]: manifest of {WHAT} has 2 wasm layers; exactly one is required",
        f"  layers found: application/wasm ({len(wasm)} bytes), {WASM_LAYER_V1} ({len(other)} bytes)",
        "  hint: pkgloader does not guess which layer is the package; republish with one wasm layer",
    ])


def _not_wasm(oci: OciClient, wasm: bytes) -> str:
    content = b"PK\x03\x04 this is a zip file, not wasm"
    image(oci, "1.0.0", [("application/wasm", content)])
    return "\n".join([
        f"error[not-wasm]: content of {WHAT} is not WebAssembly",
        "  first bytes: 50 4b 03 04 20 74 68 69",
        "  expected \\0asm followed by a module or component version",
        "  nothing was kept",
        "  hint: the registry holds something other than a wasm package under this tag",
    ])


def _core_module_header_of_wrong_version(oci: OciClient, wasm: bytes) -> str:
    content = b"\0asm\x02\0\0\0" + wasm[8:]  # core version 2, layer 0: no such thing
    image(oci, "1.0.0", [("application/wasm", content)])
    return "\n".join([
        f"error[not-wasm]: content of {WHAT} is not WebAssembly",
        "  first bytes: 00 61 73 6d 02 00 00 00",
        "  expected \\0asm followed by a module or component version",
        "  nothing was kept",
        "  hint: the registry holds something other than a wasm package under this tag",
    ])


def _strict_docker_two_layers(oci: OciClient, wasm: bytes) -> str:
    readme = b"readme"
    image(oci, "1.0.0", [("text/plain", readme), ("application/wasm", wasm)], config=b"{}",
          config_type="application/vnd.docker.container.image.v1+json", media_type=DOCKER_MANIFEST)
    return "\n".join([
        f"error[strict-layout]: {WHAT} does not follow the CNCF Wasm artifact layout (strict mode)",
        f"  manifest media type is {DOCKER_MANIFEST}, not {OCI_MANIFEST}",
        f"  config media type is 'application/vnd.docker.container.image.v1+json', not {WASM_CONFIG}",
        f"  layers are [text/plain ({len(readme)} bytes), application/wasm ({len(wasm)} bytes)], not exactly one application/wasm layer",
        "  hint: fetch without --strict (and strict = false) to accept any manifest with one wasm layer",
    ])


CASES = {
    "index-without-wasm-entry": Case(InvalidManifest, "no-wasm-layer", _index_without_wasm),
    "zero-wasm-layers": Case(InvalidManifest, "no-wasm-layer", _zero_wasm_layers),
    "two-wasm-layers": Case(InvalidManifest, "multiple-wasm-layers", _two_wasm_layers),
    "not-wasm-content": Case(InvalidContent, "not-wasm", _not_wasm),
    "bad-wasm-version": Case(InvalidContent, "not-wasm", _core_module_header_of_wrong_version),
    "strict-docker-manifest": Case(InvalidManifest, "strict-layout", _strict_docker_two_layers, strict=True),
}


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_rejected_manifest_or_content(case: Case, registry, oci_client, wit_package, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    wasm = wit_package("test", "pkg", "1.0.0").read_bytes()
    expected = case.push(oci_client(registry), wasm)
    cache = tmp_path / "cache"
    out = tmp_path / "out" / "pkg.wasm"

    with client(registry, tmp_path, strict=case.strict) as c:
        with pytest.raises(case.error) as ei:
            c.fetch(REF, out)
    assert (ei.value.code, ei.value.exit_code, ei.value.render()) == (case.code, 5, expected)
    assert_nothing_left(cache, out)

    flags = ["--strict"] if case.strict else []
    r = run_cli("fetch", REF, "-o", out, "--config", write_config(registry, tmp_path), "--cache-dir", cache, "--json", *flags)
    assert (r.code, r.err) == (5, expected + "\n")
    err = r.json()["error"]  # type: ignore[index]
    assert (err["code"], err["exit_code"]) == (case.code, 5)
    assert_nothing_left(cache, out)

    # a directory output gets the default file name: nothing there either
    r = run_cli("fetch", REF, "-o", f"{out.parent}/", "--config", write_config(registry, tmp_path), "--cache-dir", cache, "-q", *flags)
    assert (r.code, r.out, r.err) == (5, "", expected + "\n")
    assert (os.listdir(out.parent) if out.parent.exists() else []) == []
    assert blob_files(cache) == [] and part_files(cache / "tmp") == []
