"""Publish as wkg does (issue 15): manifest annotations from the wasm's metadata
(wasm-tools metadata add) and --annotation; the config's component block (exports,
imports, target) and author read from the binary by pkgloader's own reader; --dry-run;
--skip-dupes; a local registry. Compared field by field with what wkg's publisher produces:
``expected_by_wkg`` below is a line-by-line port of wasm-pkg-client/src/oci/publisher.rs and
oci-wasm's WasmConfig::from_raw_component / Component::from_world / from_package, fed by
wit-parser's own view of the binary (wasm-tools component wit --json, metadata show --json).
A fetched component runs in wasmtime-py and answers 42."""

from __future__ import annotations

import hashlib
import json
import re
import urllib.request
from pathlib import Path
from typing import Any, Callable

import pytest

from pkgloader import Client
from support.wit import WitSpec, build_spec
from wkg_helpers import WASI_CLI, WASI_HTTP, WASI_IO, build_answer_component, run_wasm_tools

METADATA = ["--description", "The answer to everything", "--licenses", "Apache-2.0 OR MIT",
            "--source", "https://github.com/example/answer", "--homepage", "https://answer.example/",
            "--authors", "Ann Author <ann@example.com>", "--revision", "abc123", "--version", "0.1.0"]

WORLDS = WitSpec("test", "worlds", "0.3.0", deps=(WASI_IO,), body="""\
interface api {
  f: func() -> u32;
}

interface other {
  use wasi:io/streams@0.2.3.{output-stream};
  g: func() -> output-stream;
}

world app {
  import other;
  export api;
  export run: func();
}

world lib {
  export api;
}
""")


# --- the oracle: wkg 0.16.1's publisher, ported ------------------------------------------------


def _id_of(resolve: dict[str, Any], iface: int) -> str:
    i = resolve["interfaces"][iface]
    pkg = resolve["packages"][i["package"]]["name"]  # ns:name[@version]
    base, _, ver = pkg.partition("@")
    return f"{base}/{i['name']}" + (f"@{ver}" if ver else "")


def _name_world_key(resolve: dict[str, Any], key: str, item: dict[str, Any]) -> str:
    if "interface" in item and key.startswith("interface-"):
        return _id_of(resolve, item["interface"]["id"])
    return key


def expected_by_wkg(wasm: Path, package: str, version: str) -> dict[str, Any]:
    """What wkg's OciBackend::publish pushes for ``wasm`` as ``package@version`` (config
    ``created`` left out: it is the time of the push)."""
    data = wasm.read_bytes()
    meta_doc = json.loads(run_wasm_tools("metadata", "show", "--json", wasm))
    meta = next(iter(meta_doc.values()))["metadata"]  # the top level (wasm_metadata Payload::metadata)
    annotations = {"org.opencontainers.image.version": version}
    for field, key in (("description", "org.opencontainers.image.description"),
                       ("licenses", "org.opencontainers.image.licenses"),
                       ("source", "org.opencontainers.image.source"),
                       ("homepage", "org.opencontainers.image.url"),
                       ("authors", "org.opencontainers.image.authors")):
        if meta.get(field) is not None:
            annotations[key] = meta[field]
    resolve = json.loads(run_wasm_tools("component", "wit", "--json", wasm))
    names = [p["name"] for p in resolve["packages"]]
    if "root:component" in names:  # DecodedWasm::Component -> Component::from_world
        pkg = resolve["packages"][names.index("root:component")]
        world = resolve["worlds"][pkg["worlds"]["root"]]
        component = {"exports": [_name_world_key(resolve, k, v) for k, v in world["exports"].items()],
                     "imports": [_name_world_key(resolve, k, v) for k, v in world["imports"].items()],
                     "target": None}
    else:  # DecodedWasm::WitPackage -> Component::from_package (a HashSet: order is not kept)
        pkg = next(p for p in resolve["packages"] if p["name"].split("@")[0] == package)
        exports: set[str] = set()
        for world_id in pkg["worlds"].values():
            world = resolve["worlds"][world_id]
            exports.update(_name_world_key(resolve, k, v) for k, v in world["exports"].items())
            base, _, ver = pkg["name"].partition("@")
            exports.add(f"{base}/{world['name']}" + (f"@{ver}" if ver else ""))
        exports.update(_id_of(resolve, i) for i in pkg["interfaces"].values())
        component = {"exports": exports, "imports": [], "target": None}
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    return {
        "manifest": {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config_mediaType": "application/vnd.wasm.config.v0+json",
            "layers": [{"mediaType": "application/wasm", "digest": digest, "size": len(data),
                        "annotations": {"org.opencontainers.image.title": f"{package.split(':')[1]}.wasm"}}],
            "annotations": annotations,
        },
        "config": {"author": None, "architecture": "wasm", "os": "wasip2", "layerDigests": [digest],
                   "component": component},
        "metadata_authors": meta.get("authors"),
    }


def _get(registry: Any, path: str, accept: str = "application/vnd.oci.image.manifest.v1+json") -> bytes:
    req = urllib.request.Request(f"{registry.url}/v2/{path}", headers={"Accept": accept})
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback test registry
        return bytes(resp.read())


def _pushed(registry: Any, repo: str, tag: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    manifest = json.loads(_get(registry, f"{repo}/manifests/{tag}"))
    config_bytes = _get(registry, f"{repo}/blobs/{manifest['config']['digest']}", "*/*")
    return manifest, json.loads(config_bytes), config_bytes


def _compare(manifest: dict[str, Any], config: dict[str, Any], expected: dict[str, Any]) -> None:
    want = expected["manifest"]
    assert manifest["schemaVersion"] == want["schemaVersion"]
    assert manifest["mediaType"] == want["mediaType"]
    assert manifest["config"]["mediaType"] == want["config_mediaType"]
    assert manifest["layers"] == want["layers"]
    annotations = dict(manifest["annotations"])
    created = annotations.pop("org.opencontainers.image.created")  # pkgloader's one addition
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", created)
    assert annotations == want["annotations"]
    # the config: the same keys in oci-wasm's order, the same values but created and author
    assert list(config) == ["created", "author", "architecture", "os", "layerDigests", "component"]
    assert config["created"] == created
    cwant = expected["config"]
    for key in ("architecture", "os", "layerDigests"):
        assert config[key] == cwant[key], key
    assert list(config["component"]) == ["exports", "imports", "target"]
    if isinstance(cwant["component"]["exports"], set):  # a WIT package: oci-wasm's HashSet, pkgloader sorts
        assert config["component"]["exports"] == sorted(cwant["component"]["exports"])
    else:
        assert config["component"]["exports"] == cwant["component"]["exports"]
    assert config["component"]["imports"] == cwant["component"]["imports"]
    assert config["component"]["target"] is None
    # author: wkg 0.16.1 passes None to oci-wasm; pkgloader writes the binary's authors
    assert cwant["author"] is None and config["author"] == expected["metadata_authors"]


@pytest.fixture
def reg(registry: Any, registry_config: Callable[..., Path]) -> Any:
    registry_config(registry, extra=f"""
        [namespace_registries.wasi]
        registry = "{registry.host}"
        """)
    return registry


def test_a_component_is_published_as_wkg_publishes_it(reg: Any, run_cli: Callable[..., Any], tmp_path: Path) -> None:
    wasm = build_answer_component(tmp_path / "c", metadata=METADATA)
    r = run_cli("publish", wasm, "--package", "test:answer@0.1.0")
    assert r.code == 0, r.err
    manifest, config, _ = _pushed(reg, "test/answer", "0.1.0")
    _compare(manifest, config, expected_by_wkg(wasm, "test:answer", "0.1.0"))
    assert config["component"] == {"exports": ["get"], "imports": [], "target": None}
    assert manifest["annotations"]["org.opencontainers.image.description"] == "The answer to everything"


def test_a_component_with_imports(reg: Any, run_cli: Callable[..., Any], tmp_path: Path) -> None:
    """A component importing interfaces: imports in the world's order."""
    d = tmp_path / "imp"
    (d / "wit" / "deps").mkdir(parents=True)
    for spec in (WASI_IO, WASI_CLI):
        (d / "wit" / "deps" / spec.dir_name).mkdir()
        (d / "wit" / "deps" / spec.dir_name / "package.wit").write_text(spec.source())
    (d / "wit" / "world.wit").write_text("package test:imp@0.1.0;\n\nworld imp {\n  import wasi:cli/environment@0.2.3;\n"
                                         "  import wasi:cli/exit@0.2.3;\n  export get: func() -> u32;\n}\n")
    (d / "core.wat").write_text('(module\n  (import "wasi:cli/exit@0.2.3" "exit" (func (param i32)))\n'
                                '  (memory (export "memory") 1)\n  (func (export "get") (result i32) i32.const 7))\n')
    run_wasm_tools("component", "embed", d / "wit", d / "core.wat", "-o", d / "e.wasm", "--world", "imp")
    run_wasm_tools("component", "new", d / "e.wasm", "-o", d / "imp.wasm")
    r = run_cli("publish", d / "imp.wasm", "--package", "test:imp@0.1.0")
    assert r.code == 0, r.err
    manifest, config, _ = _pushed(reg, "test/imp", "0.1.0")
    expected = expected_by_wkg(d / "imp.wasm", "test:imp", "0.1.0")
    _compare(manifest, config, expected)
    assert config["component"]["imports"] == ["wasi:cli/exit@0.2.3"] and config["author"] is None


@pytest.mark.parametrize("spec", [WORLDS, WASI_HTTP], ids=["worlds", "wasi-http"])
def test_a_wit_package_is_published_as_wkg_publishes_it(spec: WitSpec, reg: Any, run_cli: Callable[..., Any],
                                                        tmp_path: Path) -> None:
    wasm = build_spec(tmp_path / "b", spec)
    run_wasm_tools("metadata", "add", wasm, "--description", f"{spec.name} package", "-o", wasm)
    r = run_cli("publish", wasm, "--package", spec.package_id, "--annotation", "com.example.team=platform")
    assert r.code == 0, r.err
    manifest, config, _ = _pushed(reg, f"{spec.namespace}/{spec.name}", spec.version or "")
    expected = expected_by_wkg(wasm, f"{spec.namespace}:{spec.name}", spec.version or "")
    expected["manifest"]["annotations"]["com.example.team"] = "platform"  # --annotation adds to them
    _compare(manifest, config, expected)
    if spec is WORLDS:
        assert config["component"]["exports"] == ["run", "test:worlds/api@0.3.0", "test:worlds/app@0.3.0",
                                                  "test:worlds/lib@0.3.0", "test:worlds/other@0.3.0"]


def test_annotation_overrides_the_metadata(reg: Any, run_cli: Callable[..., Any], tmp_path: Path) -> None:
    wasm = build_answer_component(tmp_path / "c", metadata=METADATA)
    r = run_cli("publish", wasm, "--package", "test:answer@0.2.0",
                "--annotation", "org.opencontainers.image.description=Overridden")
    assert r.code == 0, r.err
    manifest, _, _ = _pushed(reg, "test/answer", "0.2.0")
    assert manifest["annotations"]["org.opencontainers.image.description"] == "Overridden"
    assert manifest["annotations"]["org.opencontainers.image.licenses"] == "Apache-2.0 OR MIT"


def test_dry_run_prints_manifest_and_config_and_pushes_nothing(reg: Any, run_cli: Callable[..., Any],
                                                               tmp_path: Path) -> None:
    wasm = build_answer_component(tmp_path / "c", metadata=METADATA)
    r = run_cli("publish", wasm, "--package", "test:answer@0.3.0", "--dry-run")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["reference"] == f"{reg.host}/test/answer:0.3.0"
    assert out["config"]["component"] == {"exports": ["get"], "imports": [], "target": None}
    assert out["manifest"]["annotations"]["org.opencontainers.image.authors"] == "Ann Author <ann@example.com>"
    assert "dry run: nothing pushed" in r.err
    assert run_cli("versions", "test:answer").code == 3  # nothing was pushed


def test_skip_dupes(reg: Any, run_cli: Callable[..., Any], tmp_path: Path) -> None:
    first = build_answer_component(tmp_path / "a")
    assert run_cli("publish", first, "--package", "test:answer@1.0.0").code == 0
    before = _get(reg, "test/answer/manifests/1.0.0")
    other = build_answer_component(tmp_path / "b", metadata=["--description", "other bytes"])
    r = run_cli("publish", other, "--package", "test:answer@1.0.0")
    assert r.code == 7 and "--skip-dupes" in r.err
    r = run_cli("publish", other, "--package", "test:answer@1.0.0", "--skip-dupes", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["skipped"] is True
    assert _get(reg, "test/answer/manifests/1.0.0") == before  # not replaced


def test_publish_to_a_local_registry(run_cli: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "local-root"
    cfg = tmp_path / "local.toml"
    cfg.write_text(f'default_registry = "local"\n\n[registry."local"]\ntype = "local"\n\n[registry."local".local]\n'
                   f"root = '{root}'\n")  # wkg's own local-backend test config
    monkeypatch.setenv("PKGLOADER_CONFIG", str(cfg))
    monkeypatch.setenv("PKGLOADER_CACHE_DIR", str(tmp_path / "cache"))
    wasm = build_answer_component(tmp_path / "c")
    r = run_cli("publish", wasm, "--package", "test:answer@0.1.0", "--json")
    assert r.code == 0, r.err
    dest = root / "test" / "answer" / "0.1.0.wasm"
    assert json.loads(r.out)["reference"] == str(dest) and dest.read_bytes() == wasm.read_bytes()
    assert run_cli("publish", wasm, "--package", "test:answer@0.1.0").code == 7
    assert run_cli("publish", wasm, "--package", "test:answer@0.1.0", "--skip-dupes").code == 0
    r = run_cli("fetch", "test:answer@0.1", "-o", tmp_path / "out.wasm")
    assert r.code == 0, r.err and (tmp_path / "out.wasm").read_bytes() == wasm.read_bytes()


def test_a_fetched_component_runs_in_wasmtime(reg: Any, tmp_path: Path) -> None:
    import wasmtime
    import wasmtime.component as wc

    with Client() as c:
        c.publish(build_answer_component(tmp_path / "c", metadata=METADATA), "test:answer@0.9.0")
        got = c.fetch("test:answer@0.9", tmp_path / "fetched.wasm")
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    instance = wc.Linker(engine).instantiate(store, wc.Component.from_file(engine, str(got.path)))
    get = instance.get_func(store, "get")
    assert get is not None and get(store) == 42


def test_publish_dir_builds_the_wit_directory_first(reg: Any, run_cli: Callable[..., Any], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "wit"
    (d / "deps" / WASI_IO.dir_name).mkdir(parents=True)
    (d / "deps" / WASI_IO.dir_name / "package.wit").write_text(WASI_IO.source())
    (d / "world.wit").write_text(WORLDS.source())
    r = run_cli("publish", d, "--json")  # no --package: the name and version the WIT declares
    assert r.code == 0, r.err
    assert json.loads(r.out)["reference"] == f"{reg.host}/test/worlds:0.3.0"
    manifest, config, _ = _pushed(reg, "test/worlds", "0.3.0")
    built = build_spec(tmp_path / "ref", WORLDS)
    assert manifest["layers"][0]["digest"] == "sha256:" + hashlib.sha256(built.read_bytes()).hexdigest()
    assert "test:worlds/app@0.3.0" in config["component"]["exports"]
    # a component names no package: --package is needed
    r = run_cli("publish", build_answer_component(tmp_path / "c"))
    assert r.code == 2 and "declares no package name and version" in r.err
    # not WIT: wasm-tools' reason, exit 2
    (tmp_path / "empty").mkdir()
    r = run_cli("publish", tmp_path / "empty", "--package", "my:pkg@0.1.0")
    assert r.code == 2 and r.err.startswith(f"error[invalid-wit]: {tmp_path / 'empty'} is not a WIT package wasm-tools can build")
    # without the extra
    from pkgloader import _wittext

    monkeypatch.setattr(_wittext, "_candidates", lambda: [])
    r = run_cli("publish", d)
    assert r.code == 2 and r.err.startswith("error[missing-extra]: publishing a WIT directory needs the wasm-tools binary")
