"""``pkgloader fetch | versions | info | publish | cache`` against a real registry."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pkgloader._config import global_config_path


def setup(registry, registry_config, wit_package, run_cli, versions=("0.1.0", "0.2.0", "0.3.0-rc.1")):  # type: ignore[no-untyped-def]
    registry_config(registry)
    files = {}
    for v in versions:
        files[v] = wit_package("test", "app", v.split("-")[0])
        r = run_cli("publish", files[v], "--package", f"test:app@{v}", "-q")
        assert r.code == 0, r
    return files


def test_fetch_default_output_name(registry, registry_config, wit_package, run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    files = setup(registry, registry_config, wit_package, run_cli)
    r = run_cli("fetch", "test:app")
    assert r.code == 0, r
    out = Path.cwd() / "test_app@0.2.0.wasm"
    assert r.out == f"{out}\n"
    assert out.read_bytes() == files["0.2.0"].read_bytes()
    assert r.err.startswith("fetched test:app@0.2.0 (sha256:")
    r = run_cli("fetch", "test:app")
    assert r.code == 7
    assert r.err.startswith(f"error[output-exists]: '{out}' already exists; not overwriting it\n")
    assert "hint: pass --overwrite to replace it, or choose another path with -o" in r.err
    r = run_cli("fetch", "test:app", "--overwrite")
    assert r.code == 0 and r.err.startswith("cached test:app@0.2.0")


def test_fetch_json_and_many(registry, registry_config, wit_package, run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    setup(registry, registry_config, wit_package, run_cli)
    r = run_cli("fetch", "test:app@=0.1.0", "test:app@>=0.3.0-rc.1", "-o", f"{tmp_path}/deps/", "--json")
    assert r.code == 0, r
    data = r.json()
    assert [(f["version"], Path(f["path"]).name) for f in data["fetched"]] == [
        ("0.1.0", "test_app@0.1.0.wasm"), ("0.3.0-rc.1", "test_app@0.3.0-rc.1.wasm")]
    assert all(f["digest"].startswith("sha256:") and f["size"] > 0 for f in data["fetched"])
    r = run_cli("fetch", "test:app@=0.1.0", "test:app@=0.2.0", "-o", str(tmp_path / "single.wasm"))
    assert r.code == 2 and "error[usage]" in r.err


def test_versions(registry, registry_config, wit_package, run_cli) -> None:  # type: ignore[no-untyped-def]
    setup(registry, registry_config, wit_package, run_cli)
    r = run_cli("versions", "test:app")
    assert (r.code, r.out) == (0, "0.1.0\n0.2.0\n")
    assert "1 pre-release/yanked version(s) hidden; use --all" in r.err
    r = run_cli("versions", "test:app", "--all")
    assert r.out == "0.1.0\n0.2.0\n0.3.0-rc.1  (pre-release)\n"
    r = run_cli("versions", "test:app", "--all", "--json")
    assert r.json() == {"package": "test:app", "versions": [
        {"version": "0.1.0", "prerelease": False, "yanked": False},
        {"version": "0.2.0", "prerelease": False, "yanked": False},
        {"version": "0.3.0-rc.1", "prerelease": True, "yanked": False}]}


def test_info(registry, registry_config, wit_package, run_cli) -> None:  # type: ignore[no-untyped-def]
    setup(registry, registry_config, wit_package, run_cli)
    r = run_cli("info", "test:app@0.1", "--json")
    assert r.code == 0, r
    d = r.json()
    assert d["version"] == "0.1.0" and d["registry"] == registry.host
    assert d["location"] == f"{registry.host}/test/app:0.1.0"
    assert d["media_type"] == "application/wasm"
    assert d["config_media_type"] == "application/vnd.wasm.config.v0+json"
    assert d["annotations"]["org.opencontainers.image.version"] == "0.1.0"
    text = run_cli("info", "test:app@0.1").out
    assert f"location:   {registry.host}/test/app:0.1.0\n" in text


def test_no_matching_version_lists_what_exists(registry, registry_config, wit_package, run_cli) -> None:  # type: ignore[no-untyped-def]
    setup(registry, registry_config, wit_package, run_cli)
    r = run_cli("fetch", "test:app@^1")
    assert r.code == 3
    assert r.err == (
        "error[no-matching-version]: no version of test:app matches '^1'\n"
        f"  registry: {registry.host}\n"
        "  available: 0.1.0, 0.2.0\n"
        "  pre-releases: 0.3.0-rc.1\n"
        "  hint: pick one of the available versions, e.g. test:app@=0.2.0\n"
    )


def test_missing_package_exit_3(registry, registry_config, run_cli) -> None:  # type: ignore[no-untyped-def]
    registry_config(registry)
    r = run_cli("versions", "test:nothing")
    assert r.code == 3
    assert r.err.startswith(f"error[package-not-found]: package test:nothing not found or not authorized at {registry.host}/test/nothing\n")


def test_bad_reference_exit_2(run_cli) -> None:  # type: ignore[no-untyped-def]
    r = run_cli("fetch", "wasi:Http@0.2")
    assert r.code == 2 and r.err.startswith("error[invalid-package-ref]:") and "Traceback" not in r.err


def test_publish_refuses_existing_and_non_wasm(registry, registry_config, wit_package, run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    files = setup(registry, registry_config, wit_package, run_cli, versions=("1.0.0",))
    r = run_cli("publish", files["1.0.0"], "--package", "test:app@1.0.0")
    assert r.code == 7
    assert r.err == (
        f"error[version-exists]: test:app@1.0.0 is already published at {registry.host}/test/app:1.0.0\n"
        "  hint: publish a new version, or pass --force to replace it\n"
    )
    assert run_cli("publish", files["1.0.0"], "--package", "test:app@1.0.0", "--force", "-q").code == 0
    junk = tmp_path / "junk.wasm"
    junk.write_bytes(b"not wasm at all")
    r = run_cli("publish", junk, "--package", "test:app@2.0.0")
    assert r.code == 5 and r.err.startswith(f"error[not-wasm]: '{junk}' is not a WebAssembly module or component")
    r = run_cli("publish", files["1.0.0"], "--package", "test:app@^2")
    assert r.code == 2


def test_cache_commands(registry, registry_config, wit_package, run_cli) -> None:  # type: ignore[no-untyped-def]
    setup(registry, registry_config, wit_package, run_cli, versions=("1.0.0",))
    assert run_cli("fetch", "test:app@=1.0.0", "-q").code == 0
    cache = Path(os.environ["PKGLOADER_CACHE_DIR"])
    assert run_cli("cache", "dir").out == f"{cache}\n"
    listing = run_cli("cache", "list", "--json").json()["releases"]
    assert [(e["package"], e["version"], e["content_cached"]) for e in listing] == [("test:app", "1.0.0", True)]
    assert run_cli("cache", "verify").out == "checked 1 blob(s); removed 0 corrupted\n"
    blob = next((cache / "blobs" / "sha256").iterdir())
    blob.chmod(0o644)
    blob.write_bytes(b"\0asm garbage")
    r = run_cli("cache", "verify", "--json")
    assert r.json() == {"checked": 1, "removed": [str(blob)]}
    assert run_cli("cache", "clean", "--older-than", "30d").code == 0
    assert run_cli("cache", "list", "--json").json()["releases"] != []
    assert run_cli("cache", "clean").code == 0
    assert run_cli("cache", "list", "--json").json()["releases"] == []
    r = run_cli("cache", "clean", "--older-than", "soon")
    assert r.code == 2 and "invalid duration 'soon'" in r.err
