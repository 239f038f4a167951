"""Deps folders (issue 15): sync refuses a package wit/deps/ already holds in another form
(a wkg text directory beside the .wasm sync would write), naming both, or replaces it with
--replace-deps; a component is never written into wit/deps/ (it goes to deps/ at the root),
and wasm-tools reads the result."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest

from pkgloader import Client
from support.wit import WitSpec, build_spec, wasm_tools
from wkg_helpers import build_answer_component, run_wasm_tools

BASE = WitSpec("test", "base", "1.0.0")
MIDDLE = WitSpec("test", "middle", "0.2.0", deps=(BASE,))


@pytest.fixture
def published(registry: Any, registry_config: Callable[..., Path], tmp_path: Path) -> Any:
    registry_config(registry)
    with Client() as c:
        for spec in (BASE, MIDDLE):
            c.publish(build_spec(tmp_path / "built", spec), spec.package_id)
        c.publish(build_answer_component(tmp_path / "comp"), "test:answer@0.1.0")
    return registry


def _project(root: Path, deps: str = "") -> Path:
    (root / "wit").mkdir(parents=True)
    (root / "wit" / "world.wit").write_text("package my:app@0.1.0;\n\nworld app {\n  import test:middle/api@0.2.0;\n}\n")
    (root / "pkgloader.toml").write_text("[dependencies]\n" + deps)
    return root


def _wkg_text_dir(proj: Path, tmp: Path) -> Path:
    """What 'wkg wit fetch' leaves: wit/deps/test-middle-0.2.0/package.wit (its text)."""
    wasm = build_spec(tmp / "wkgbuilt", MIDDLE)
    d = proj / "wit" / "deps" / "test-middle-0.2.0"
    d.mkdir(parents=True)
    out = tmp / "wkgtext"
    subprocess.run([wasm_tools(), "component", "wit", str(wasm), "--out-dir", str(out)], capture_output=True, check=True)
    (d / "package.wit").write_text((out / "middle.wit").read_text())  # the package alone, as wkg prints it
    return d


def test_a_package_present_as_wkg_text_is_refused_naming_both(published: Any, run_cli: Callable[..., Any],
                                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proj = _project(tmp_path / "proj")
    text_dir = _wkg_text_dir(proj, tmp_path)
    monkeypatch.chdir(proj)
    r = run_cli("sync")
    assert r.code == 7
    wasm = proj / "wit" / "deps" / "test-middle-0.2.0.wasm"
    assert r.err.startswith(
        f"error[deps-conflict]: test:middle@0.2.0 is already in {text_dir} (WIT text); sync would also write it as {wasm}\n")
    assert "--replace-deps" in r.err
    assert not wasm.exists() and (text_dir / "package.wit").is_file()  # nothing written
    # --replace-deps: the lock's package replaces the other form
    r = run_cli("sync", "--replace-deps", "--json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert str(text_dir) in out["removed"] and not text_dir.exists() and wasm.is_file()
    run_wasm_tools("component", "wit", proj / "wit")  # wasm-tools reads the result


def test_a_wasm_under_another_name_is_another_form(published: Any, run_cli: Callable[..., Any], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    proj = _project(tmp_path / "proj")
    other = proj / "wit" / "deps" / "middle.wasm"
    other.parent.mkdir()
    other.write_bytes(build_spec(tmp_path / "b", MIDDLE).read_bytes())
    monkeypatch.chdir(proj)
    r = run_cli("sync")
    assert r.code == 7 and f"is already in {other} (a binary WIT package)" in r.err


def test_text_and_binary_forms_switch_without_refusal(published: Any, run_cli: Callable[..., Any], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """What pkgloader wrote itself is replaced: .wasm -> text -> .wasm."""
    proj = _project(tmp_path / "proj")
    monkeypatch.chdir(proj)
    deps = proj / "wit" / "deps"
    assert run_cli("sync", "-q").code == 0
    assert sorted(p.name for p in deps.iterdir()) == ["test-base-1.0.0.wasm", "test-middle-0.2.0.wasm"]
    r = run_cli("sync", "--format", "wit")
    assert r.code == 0, r.err
    assert sorted(p.name for p in deps.iterdir()) == ["test-base-1.0.0", "test-middle-0.2.0"]
    assert (deps / "test-middle-0.2.0" / "package.wit").read_text().startswith("package test:middle@0.2.0;")
    run_wasm_tools("component", "wit", proj / "wit")
    assert run_cli("sync").code == 0
    assert sorted(p.name for p in deps.iterdir()) == ["test-base-1.0.0.wasm", "test-middle-0.2.0.wasm"]


def test_a_component_dependency_goes_to_deps_not_wit_deps(published: Any, run_cli: Callable[..., Any], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    proj = _project(tmp_path / "proj", '"test:answer" = "0.1"\n')
    monkeypatch.chdir(proj)
    r = run_cli("sync", "--json")
    assert r.code == 0, r.err
    comp = proj / "deps" / "test-answer-0.1.0.wasm"
    assert str(comp) in json.loads(r.out)["synced"] and comp.read_bytes()[:4] == b"\0asm"
    assert not (proj / "wit" / "deps" / "test-answer-0.1.0.wasm").exists()
    run_wasm_tools("component", "wit", proj / "wit")  # would say "found an actual component" otherwise


def test_a_local_component_override_goes_to_deps(published: Any, run_cli: Callable[..., Any], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    comp = build_answer_component(tmp_path / "local")
    proj = _project(tmp_path / "proj", f'"test:answer" = {{ path = "{comp}" }}\n')
    monkeypatch.chdir(proj)
    r = run_cli("sync", "-q")
    assert r.code == 0, r.err
    assert (proj / "deps" / "test-answer.wasm").is_file() and not (proj / "wit" / "deps" / "test-answer.wasm").exists()
