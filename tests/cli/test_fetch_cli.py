"""``pkgloader fetch | versions | info | publish | cache`` against a real registry."""

from __future__ import annotations

import hashlib
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
    # a re-run is success: the output holds these bytes already (untouched, not downloaded)
    before = os.stat(out)
    registry.mark()
    r = run_cli("fetch", "test:app")
    assert (r.code, r.out) == (0, f"{out}\n")
    assert r.err.startswith("up to date test:app@0.2.0 (sha256:")
    assert os.stat(out).st_mtime_ns == before.st_mtime_ns and os.stat(out).st_ino == before.st_ino
    assert [m for m, p in registry.requests() if "/blobs/" in p] == []
    r = run_cli("fetch", "test:app", "--overwrite")
    assert r.code == 0 and r.err.startswith("up to date test:app@0.2.0")
    assert os.stat(out).st_ino == before.st_ino
    # other bytes still need --overwrite
    out.write_bytes(b"the user's own")
    r = run_cli("fetch", "test:app")
    assert r.code == 7
    assert r.err == (f"error[output-exists]: '{out}' already exists; not overwriting it\n"
                     f"  would write test:app@0.2.0 (sha256:{hashlib.sha256(files['0.2.0'].read_bytes()).hexdigest()[:12]})\n"
                     "  it holds other content\n"
                     "  hint: pass --overwrite to replace it, or choose another path with -o\n")
    assert out.read_bytes() == b"the user's own"
    r = run_cli("fetch", "test:app", "--overwrite")
    assert r.code == 0 and r.err.startswith("cached test:app@0.2.0")
    assert out.read_bytes() == files["0.2.0"].read_bytes()


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
        "  hint: publish a new version, pass --skip-dupes to skip existing versions, or --force to replace it\n"
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


def test_fetch_check_reports_without_writing(registry, registry_config, wit_package, run_cli,  # type: ignore[no-untyped-def]
                                             tmp_path: Path) -> None:
    files = setup(registry, registry_config, wit_package, run_cli)
    deps = tmp_path / "deps"
    a, b = deps / "test_app@0.1.0.wasm", deps / "test_app@0.2.0.wasm"
    digest = {v: hashlib.sha256(files[v].read_bytes()).hexdigest()[:12] for v in ("0.1.0", "0.2.0")}
    # nothing there yet: both would be written; nothing is (not even the directory)
    r = run_cli("fetch", "--check", "test:app@=0.1.0", "test:app@0.2", "-o", f"{deps}/")
    assert r.code == 7
    assert r.out == f"{a}\n{b}\n"
    assert r.err == (f"would write (missing) test:app@0.1.0 (sha256:{digest['0.1.0']}, 948 bytes)\n"
                     f"would write (missing) test:app@0.2.0 (sha256:{digest['0.2.0']}, 948 bytes)\n"
                     "error[output-out-of-date]: 2 of 2 outputs are not up to date\n"
                     f"  {a}: missing\n  {b}: missing\n"
                     "  hint: run the same fetch without --check to write them\n")
    assert not deps.exists()
    assert run_cli("fetch", "test:app@=0.1.0", "test:app@0.2", "-o", f"{deps}/", "-q").code == 0
    # current: exit 0; the same REF twice is checked once
    r = run_cli("fetch", "--check", "test:app@=0.1.0", "test:app@0.2", "test:app@0.2", "-o", f"{deps}/")
    assert (r.code, r.out) == (0, f"{a}\n{b}\n")
    assert r.err == (f"up to date test:app@0.1.0 (sha256:{digest['0.1.0']}, 948 bytes)\n"
                     f"up to date test:app@0.2.0 (sha256:{digest['0.2.0']}, 948 bytes)\n")
    # other bytes in one output: named, exit 7, the file untouched; --json has every state
    b.write_bytes(b"edited")
    r = run_cli("fetch", "--check", "test:app@=0.1.0", "test:app@0.2", "-o", f"{deps}/", "--json")
    assert r.code == 7
    doc = r.json()
    assert [(e["path"], e["state"], e["version"]) for e in doc["checked"]] == [
        (str(a), "up-to-date", "0.1.0"), (str(b), "different", "0.2.0")]
    assert doc["errors"] == [] and b.read_bytes() == b"edited"
    # an error in one REF: reported with its own code, the others still checked
    r = run_cli("fetch", "--check", "test:app@=0.1.0", "test:nope", "-o", f"{deps}/")
    assert r.code == 3 and r.out == f"{a}\n"
    assert r.err.startswith(f"up to date test:app@0.1.0 (sha256:{digest['0.1.0']}, 948 bytes)\n"
                            "test:nope: error[package-not-found]: ")
    # --check of a project is a usage error that says what to use
    r = run_cli("fetch", "--check")
    assert r.code == 2


def test_client_check_and_up_to_date_results(registry, registry_config, wit_package, run_cli,  # type: ignore[no-untyped-def]
                                             tmp_path: Path) -> None:
    import asyncio

    from pkgloader import AsyncClient, Client, OutputStatus

    files = setup(registry, registry_config, wit_package, run_cli)
    out = tmp_path / "x.wasm"
    with Client() as c:
        st = c.check("test:app@0.1", out)
        assert isinstance(st, OutputStatus) and (st.state, st.up_to_date, st.path) == ("missing", False, out)
        first = c.fetch("test:app@0.1", out)
        assert (first.up_to_date, first.to_json()["up_to_date"]) == (False, False)
        again = c.fetch("test:app@0.1", out)
        assert (again.up_to_date, again.from_cache) == (True, True)
        assert c.check("test:app@0.1", out).state == "up-to-date"
        out.write_bytes(b"x")
        assert c.check("test:app@0.1", out).to_json()["state"] == "different"
    assert out.read_bytes() == b"x"

    async def main() -> str:
        async with AsyncClient() as ac:
            return (await ac.check("test:app@0.1", out)).state

    assert asyncio.run(main()) == "different"
    assert files["0.1.0"].read_bytes() != b"x"
