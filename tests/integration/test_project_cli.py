"""Starting and finding projects from the command line: init, the error outside a project,
the same root from any subdirectory, an existing wkg.lock, update of a package the project
does not have, -q."""

from __future__ import annotations

import json
import os
import stat
import textwrap
from pathlib import Path
from typing import Any, Callable

import pytest

from pkgloader import Client
from support.wit import WitSpec, build_spec

BASE = WitSpec("test", "base", "1.0.0")


@pytest.fixture
def published(registry: Any, registry_config: Callable[..., Path], tmp_path: Path) -> Any:
    registry_config(registry)
    with Client() as c:
        c.publish(build_spec(tmp_path / "built", BASE), BASE.package_id)
    return registry


def _wit(root: Path) -> Path:
    wit = root / "wit"
    wit.mkdir(parents=True)
    (wit / "world.wit").write_text("package my:app@0.1.0;\n\nworld app {\n  import test:base/api@1.0.0;\n}\n")
    return wit


def test_init_writes_a_commented_project_file_and_detects_wit(run_cli: Callable[..., Any], tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _wit(tmp_path)
    monkeypatch.chdir(tmp_path)
    r = run_cli("init")
    assert r.code == 0, r.err
    assert r.out == f"{tmp_path / 'pkgloader.toml'}\n"
    text = (tmp_path / "pkgloader.toml").read_text()
    assert "#   test:base@1.0.0  (wit/world.wit:4)" in text and "[dependencies]\n" in text
    import tomllib

    assert tomllib.loads(text) == {"dependencies": {}}  # every example is a comment
    again = run_cli("init")
    assert again.code == 7
    assert again.err.startswith(f"error[output-exists]: {tmp_path / 'pkgloader.toml'} already exists; "
                                "pkgloader init never overwrites it")


@pytest.mark.parametrize("command", ["lock", "sync", "update"])
def test_project_commands_outside_a_project_say_how_to_start_one(command: str, run_cli: Callable[..., Any],
                                                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    r = run_cli(command)
    assert r.code == 2
    assert r.err == (f"error[usage]: no project in {empty} or above: lock, sync and update need a pkgloader.toml, "
                     "a [tool.pkgloader] table in pyproject.toml, a lock file or a wit/ directory\n"
                     "  hint: run 'pkgloader init' to start one here (it detects wit/), or pass --wit DIR\n")
    assert list(empty.iterdir()) == []  # no empty lock written


def test_the_root_is_found_from_a_subdirectory(published: Any, run_cli: Callable[..., Any], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    proj = tmp_path / "proj"
    wit = _wit(proj)
    (wit / "sub").mkdir()
    monkeypatch.chdir(wit / "sub")
    r = run_cli("sync", "-q")
    assert r.code == 0, r.err
    assert (proj / "pkgloader.lock").is_file() and not (wit / "pkgloader.lock").exists()
    assert (wit / "deps" / "test-base-1.0.0.wasm").is_file()
    assert r.out == f"{wit / 'deps' / 'test-base-1.0.0.wasm'}\n" and r.err == ""  # -q: results, no messages


def test_an_existing_wkg_lock_is_the_project_lock(published: Any, run_cli: Callable[..., Any], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    proj = tmp_path / "proj"
    _wit(proj)
    monkeypatch.chdir(proj)
    assert run_cli("lock", "-q").code == 0
    (proj / "pkgloader.lock").rename(proj / "wkg.lock")
    before = (proj / "wkg.lock").read_bytes()
    r = run_cli("sync", "--frozen", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["lock_file"] == str(proj / "wkg.lock")
    assert not (proj / "pkgloader.lock").exists() and (proj / "wkg.lock").read_bytes() == before


def test_update_of_a_package_the_project_does_not_have_is_an_error(published: Any, run_cli: Callable[..., Any],
                                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proj = tmp_path / "proj"
    _wit(proj)
    monkeypatch.chdir(proj)
    assert run_cli("lock", "-q").code == 0
    r = run_cli("update", "test:nope")
    assert r.code == 2
    assert r.err == textwrap.dedent("""\
        error[usage]: test:nope is not a dependency of project proj
          dependencies: test:base
          hint: add it to [dependencies] in pkgloader.toml ("test:nope" = "VERSION"), or run pkgloader update with no REF to update every package
        """)
    assert run_cli("update", "test:base", "-q").code == 0


def test_sync_reports_every_package_when_some_fail(published: Any, run_cli: Callable[..., Any], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """One package that cannot be written does not hide the others: the ones written are
    reported, each failure gets its own line (and --json entry), the exit code is the worst."""
    other = WitSpec("test", "other", "2.0.0")
    with Client() as c:
        c.publish(build_spec(tmp_path / "built-other", other), other.package_id)
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "pkgloader.toml").write_text('[dependencies]\n"test:base" = "1.0.0"\n"test:other" = "2.0.0"\n')
    monkeypatch.chdir(proj)
    assert run_cli("lock", "-q").code == 0
    blocked = proj / "wit" / "deps" / "test-other-2.0.0.wasm"
    blocked.parent.mkdir(parents=True)
    os.mkfifo(blocked)  # never replaced: writing this package fails, the other one's does not

    r = run_cli("sync")
    assert r.code == 8, r
    base = proj / "wit" / "deps" / "test-base-1.0.0.wasm"
    assert (r.out, base.is_file()) == (f"{base}\n", True), r.err
    lines = r.err.splitlines()
    assert lines[0].startswith("test:other@2.0.0: error[not-a-regular-file]: ")
    assert lines[-1] == "1 of 2 packages failed; the lock file is written, run sync again to retry them"
    assert stat.S_ISFIFO(os.lstat(blocked).st_mode)

    r = run_cli("sync", "--json")
    assert r.code == 8
    doc = json.loads(r.out)
    assert doc["fetched"] == [str(base)]
    assert [(e["package"], e["code"], e["exit_code"]) for e in doc["errors"]] == [
        ("test:other@2.0.0", "not-a-regular-file", 8)]
    assert doc["error"]["code"] == "not-a-regular-file"


def test_json_of_lock_sync_update_always_has_fetched_and_errors(published: Any, run_cli: Callable[..., Any],
                                                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "pkgloader.toml").write_text('[dependencies]\n"test:base" = "1.0.0"\n')
    monkeypatch.chdir(proj)
    for command in ("lock", "update", "sync"):
        doc = json.loads(run_cli(command, "--json").out)
        assert doc["errors"] == [] and isinstance(doc["fetched"], list), command
    assert json.loads(run_cli("sync", "--json").out)["fetched"] == [str(proj / "wit" / "deps" / "test-base-1.0.0.wasm")]
    # a failure of the whole command: the same lists, the error in both places
    (proj / "pkgloader.toml").write_text('[dependencies]\n"test:base" = "9.0.0"\n')
    r = run_cli("lock", "--json")
    doc = json.loads(r.out)
    assert r.code == 3 and doc["fetched"] == [] and doc["errors"] == [doc["error"]]
    assert doc["error"]["code"] == "no-matching-version"
