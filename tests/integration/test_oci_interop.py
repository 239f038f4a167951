"""Interop with other OCI clients: what oras-py pushes pkgloader fetches; what
``pkgloader publish`` pushes oras-py and skopeo pull intact, in the CNCF Wasm artifact layout;
republishing and build-metadata versions."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pkgloader._client import Client
from pkgloader._config import Config
from support.oci import ORAS_DEFAULT_CONFIG, OCI_MANIFEST, WASM_CONFIG, digest_of, push_with_oras
from support.registry import RegistryServer, find_binary

REPO = "test/pkg"


def write_config(registry: Any, tmp_path: Path, extra: str = "") -> Path:
    text = textwrap.dedent(f"""
        [namespace_registries]
        test = {{ registry = "{registry.host}", metadata = {{ preferredProtocol = "oci", oci = {{ registry = "{registry.host}" }} }} }}
        [registry."{registry.host}".oci]
        protocol = "{registry.scheme}"
        """) + extra
    f = tmp_path / "pkgloader-test.toml"
    f.write_text(text)
    return f


def registry_extra(registry: RegistryServer) -> str:
    """TLS trust and credentials for a TLS registry; nothing for the anonymous-pull ones."""
    if not registry.tls:
        return ""
    return (f'extra_root_certificates = [{{ encoding = "pem", data = """{registry.ca_pem}""" }}]\n'
            f'auth = {{ username = "{registry.username}", password = "{registry.password}" }}\n')


def cli_args(registry: Any, tmp_path: Path) -> list[Any]:
    return ["--config", write_config(registry, tmp_path, registry_extra(registry)), "--cache-dir", tmp_path / "cache"]


def skopeo(*args: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([find_binary("skopeo"), "--insecure-policy", *map(str, args)],
                          capture_output=True, text=True, timeout=60)


def publish(run_cli, registry: Any, tmp_path: Path, wasm: Path, package: str, *extra: str) -> str:  # type: ignore[no-untyped-def]
    """``pkgloader publish``; returns the manifest digest it printed."""
    r = run_cli("publish", wasm, "--package", package, *cli_args(registry, tmp_path), "-q", *extra)
    assert r.code == 0, r
    reference, _, digest = r.out.strip().partition("@")
    assert reference == f"{registry.host}/{REPO}:{package.split('@')[1].replace('+', '_')}"
    return digest


# --------------------------------------------------------------------------- oras-py -> pkgloader


@pytest.mark.parametrize("kind", ["registry", "tls_registry", "token_registry"])
def test_oras_pushed_artifact_is_fetched_byte_identically(kind: str, request, wit_package, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    reg: RegistryServer = request.getfixturevalue(kind)
    wasm = wit_package("test", "pkg", "1.0.0")
    manifest_digest = push_with_oras(reg, REPO, "1.0.0", wasm, annotations={"org.example.note": "from oras"})
    cfg = Config.load(config_files=[write_config(reg, tmp_path, registry_extra(reg))], cache_dir=tmp_path / "cache")
    with Client(cfg) as c:
        res = c.fetch("test:pkg", tmp_path / "out.wasm")
    assert res.path.read_bytes() == wasm.read_bytes()
    rel = res.release
    assert (str(rel.version), str(rel.digest), rel.size) == ("1.0.0", digest_of(wasm.read_bytes()), wasm.stat().st_size)
    assert (rel.manifest_digest, rel.config_media_type, rel.media_type) == (manifest_digest, ORAS_DEFAULT_CONFIG, "application/wasm")
    assert rel.annotations == {"org.example.note": "from oras"}


# --------------------------------------------------------------------------- pkgloader -> oras-py / skopeo


def test_published_artifact_is_pulled_intact_by_oras_and_skopeo(registry, oci_client, wit_package, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    import oras.client

    wasm = wit_package("test", "pkg", "1.0.0")
    data = wasm.read_bytes()
    manifest_digest = publish(run_cli, registry, tmp_path, wasm, "test:pkg@1.0.0",
                              "--annotation", "org.opencontainers.image.description=a test package",
                              "--annotation", "org.example.empty=")
    layer_digest = digest_of(data)

    # oras-py
    oras_out = tmp_path / "oras"
    files = oras.client.OrasClient(hostname=registry.host, insecure=True).pull(
        target=f"{registry.host}/{REPO}:1.0.0", outdir=str(oras_out))
    assert files == [str(oras_out / "pkg.wasm")]
    assert (oras_out / "pkg.wasm").read_bytes() == data

    # skopeo inspect --raw: exactly the manifest pkgloader pushed
    ref = f"docker://{registry.host}/{REPO}:1.0.0"
    raw = skopeo("inspect", "--raw", "--tls-verify=false", ref)
    assert raw.returncode == 0, raw.stderr
    assert digest_of(raw.stdout.encode()) == manifest_digest
    manifest = json.loads(raw.stdout)
    # ... in the CNCF Wasm artifact layout
    assert manifest["schemaVersion"] == 2 and manifest["mediaType"] == OCI_MANIFEST
    assert manifest["config"]["mediaType"] == WASM_CONFIG
    assert manifest["layers"] == [{
        "mediaType": "application/wasm",
        "digest": layer_digest,
        "size": len(data),
        "annotations": {"org.opencontainers.image.title": "pkg.wasm"},
    }]
    annotations = manifest["annotations"]
    assert annotations["org.opencontainers.image.version"] == "1.0.0"
    assert annotations["org.opencontainers.image.description"] == "a test package"
    assert annotations["org.example.empty"] == ""
    assert set(annotations) == {"org.opencontainers.image.version", "org.opencontainers.image.created",
                                "org.opencontainers.image.description", "org.example.empty"}
    config = json.loads(oci_client(registry).get_blob(REPO, manifest["config"]["digest"]))
    assert (config["architecture"], config["os"], config["layerDigests"]) == ("wasm", "wasip2", [layer_digest])
    assert config["created"] == annotations["org.opencontainers.image.created"]
    raw_config = skopeo("inspect", "--raw", "--config", "--tls-verify=false", ref)
    assert raw_config.returncode == 0, raw_config.stderr
    assert digest_of(raw_config.stdout.encode()) == manifest["config"]["digest"]

    # skopeo copy to an OCI layout and to a dir: the layer blob is the published file
    layout = tmp_path / "layout"
    copied = skopeo("copy", "--src-tls-verify=false", ref, f"oci:{layout}:1.0.0")
    assert copied.returncode == 0, copied.stderr
    assert (layout / "blobs" / "sha256" / layer_digest[7:]).read_bytes() == data
    index = json.loads((layout / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [manifest_digest]  # copied unchanged
    plain_dir = tmp_path / "dir"
    copied = skopeo("copy", "--src-tls-verify=false", ref, f"dir:{plain_dir}")
    assert copied.returncode == 0, copied.stderr
    assert (plain_dir / layer_digest[7:]).read_bytes() == data
    assert digest_of((plain_dir / "manifest.json").read_bytes()) == manifest_digest


def test_published_core_module_is_wasip1(registry, oci_client, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    module = tmp_path / "module.wasm"
    module.write_bytes(b"\0asm\x01\0\0\0")  # an empty core module
    publish(run_cli, registry, tmp_path, module, "test:pkg@0.1.0")
    oci = oci_client(registry)
    manifest = oci.get_manifest(REPO, "0.1.0").json
    assert json.loads(oci.get_blob(REPO, manifest["config"]["digest"]))["os"] == "wasip1"
    assert manifest["layers"][0]["annotations"] == {"org.opencontainers.image.title": "pkg.wasm"}


def test_publish_to_token_registry_is_pulled_by_skopeo(token_registry, wit_package, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    from support.fixtures import TOKEN_USERS

    user, password = next(iter(TOKEN_USERS.items()))
    wasm = wit_package("test", "pkg", "1.0.0")
    cfg = write_config(token_registry, tmp_path, f'auth = {{ username = "{user}", password = "{password}" }}\n')
    r = run_cli("publish", wasm, "--package", "test:pkg@1.0.0", "--config", cfg, "--cache-dir", tmp_path / "cache", "-q")
    assert r.code == 0, r
    out = tmp_path / "dir"
    copied = skopeo("copy", "--src-tls-verify=false", f"docker://{token_registry.host}/{REPO}:1.0.0", f"dir:{out}")
    assert copied.returncode == 0, copied.stderr  # anonymous pull
    assert (out / digest_of(wasm.read_bytes())[7:]).read_bytes() == wasm.read_bytes()


# --------------------------------------------------------------------------- republish


def test_publishing_an_existing_version_needs_force(registry, oci_client, wit_package, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    first = wit_package("test", "pkg", "1.0.0")
    second = wit_package("test", "pkg", "1.0.0", salt="rebuilt")
    assert first.read_bytes() != second.read_bytes()
    digest = publish(run_cli, registry, tmp_path, first, "test:pkg@1.0.0")

    registry.mark()
    r = run_cli("publish", second, "--package", "test:pkg@1.0.0", *cli_args(registry, tmp_path), "--json")
    assert (r.code, r.err) == (7, "\n".join([
        f"error[version-exists]: test:pkg@1.0.0 is already published at {registry.host}/{REPO}:1.0.0",
        "  hint: publish a new version, pass --skip-dupes to skip existing versions, or --force to replace it",
    ]) + "\n")
    assert r.json()["error"]["exit_code"] == 7  # type: ignore[index]
    assert registry.requests() == [("HEAD", f"/v2/{REPO}/manifests/1.0.0")]  # nothing uploaded
    assert oci_client(registry).get_manifest(REPO, "1.0.0").digest == digest

    new_digest = publish(run_cli, registry, tmp_path, second, "test:pkg@1.0.0", "--force")
    assert new_digest != digest
    assert oci_client(registry).get_manifest(REPO, "1.0.0").digest == new_digest
    out = tmp_path / "fresh.wasm"
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", out, "--config", write_config(registry, tmp_path),
                "--cache-dir", tmp_path / "fresh-cache", "-q")
    assert r.code == 0, r
    assert out.read_bytes() == second.read_bytes()


def test_build_metadata_version_is_published_as_an_underscore_tag(registry, oci_client, wit_package, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    wasm = wit_package("test", "pkg", "1.0.0")
    r = run_cli("publish", wasm, "--package", "test:pkg@1.0.0+build.5", *cli_args(registry, tmp_path), "--json")
    assert r.code == 0, r
    published = r.json()
    assert (published["version"], published["reference"]) == ("1.0.0+build.5", f"{registry.host}/{REPO}:1.0.0_build.5")  # type: ignore[index]
    oci = oci_client(registry)
    assert oci.list_tags(REPO) == ["1.0.0_build.5"]
    manifest = oci.get_manifest(REPO, "1.0.0_build.5")
    assert manifest.digest == published["manifest_digest"]  # type: ignore[index]
    assert manifest.json["annotations"]["org.opencontainers.image.version"] == "1.0.0+build.5"
    tags = skopeo("list-tags", "--tls-verify=false", f"docker://{registry.host}/{REPO}")
    assert tags.returncode == 0, tags.stderr
    assert json.loads(tags.stdout)["Tags"] == ["1.0.0_build.5"]
    r = run_cli("versions", "test:pkg", *cli_args(registry, tmp_path))
    assert (r.code, r.out) == (0, "1.0.0+build.5\n")


def test_build_metadata_tag_is_read_back_as_the_version(registry, oci_client, wit_package, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    wasm = wit_package("test", "pkg", "1.0.0")
    oci_client(registry).push_wasm(REPO, "1.0.0_build.5", wasm)
    args = cli_args(registry, tmp_path)
    r = run_cli("versions", "test:pkg", *args, "--json")
    assert r.json() == {"package": "test:pkg", "versions": [{"version": "1.0.0+build.5", "prerelease": False, "yanked": False}]}
    r = run_cli("fetch", "test:pkg@1", "-o", f"{tmp_path}/out/", *args, "--json")
    assert r.code == 0, r
    [fetched] = r.json()["fetched"]  # type: ignore[index]
    assert fetched["version"] == "1.0.0+build.5"
    assert Path(fetched["path"]) == tmp_path / "out" / "test_pkg@1.0.0+build.5.wasm"
    assert Path(fetched["path"]).read_bytes() == wasm.read_bytes()
    r = run_cli("info", "test:pkg", *args, "--json")
    assert (r.json()["version"], r.json()["location"]) == ("1.0.0+build.5", f"{registry.host}/{REPO}:1.0.0_build.5")  # type: ignore[index]


@pytest.mark.parametrize("req", ["=1.0.0+build.5", "=1.0.0"])
def test_exact_requirement_finds_the_build_metadata_tag(req: str, registry, oci_client, wit_package, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # Cargo rules: build metadata is ignored when matching, so both select 1.0.0+build.5,
    # the only release; its tag is 1.0.0_build.5, not 1.0.0
    wasm = wit_package("test", "pkg", "1.0.0")
    oci_client(registry).push_wasm(REPO, "1.0.0_build.5", wasm)
    with Client(Config.load(config_files=[write_config(registry, tmp_path)], cache_dir=tmp_path / "cache")) as c:
        res = c.fetch(f"test:pkg@{req}", tmp_path / "out.wasm")
    assert (str(res.release.version), res.release.location) == ("1.0.0+build.5", f"{registry.host}/{REPO}:1.0.0_build.5")
    assert res.path.read_bytes() == wasm.read_bytes()
