"""Command-line conventions users bring from pip, uv and git: common options before the
command, suggestions for mistyped commands and options."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from pkgloader.cli import hoist_common_options


@pytest.mark.parametrize("argv, expected", [
    (["-v", "fetch", "a:b"], ["fetch", "a:b", "-v"]),
    (["-vv", "-q", "fetch", "a:b"], ["fetch", "a:b", "-vv", "-q"]),
    (["--config", "c.toml", "--cache-dir=/c", "config", "show"], ["config", "show", "--config", "c.toml", "--cache-dir=/c"]),
    (["--registry", "r", "versions", "a:b", "--", "x"], ["versions", "a:b", "--registry", "r", "--", "x"]),
    (["fetch", "-v", "a:b"], ["fetch", "-v", "a:b"]),  # already after the command: untouched
    (["-v"], ["-v"]),  # no command: argparse says so
    (["-v", "--help"], ["-v", "--help"]),
    (["--version"], ["--version"]),
])
def test_common_options_before_the_command_are_moved_after_it(argv: list[str], expected: list[str]) -> None:
    assert hoist_common_options(argv) == expected


def test_verbose_before_the_command_works(run_cli: Callable[..., Any], tmp_path: Any) -> None:
    r = run_cli("-v", "--cache-dir", tmp_path / "c", "cache", "dir", "--json")
    assert r.code == 0, r.err
    assert r.json() == {"cache_dir": str(tmp_path / "c")}


@pytest.mark.parametrize("argv, hint", [
    (["fetc", "wasi:http"], "  hint: did you mean 'fetch'? (run 'pkgloader --help' for the commands)"),
    (["fetch", "wasi:http", "--overwite"], "  hint: did you mean --overwrite? (run 'pkgloader --help' for the options)"),
    (["config", "shwo"], "  hint: did you mean 'show'? (run 'pkgloader config --help' for the commands)"),
])
def test_mistyped_commands_and_options_get_a_suggestion(argv: list[str], hint: str, run_cli: Callable[..., Any]) -> None:
    r = run_cli(*argv)
    assert r.code == 2
    assert r.err.splitlines()[-1] == hint
    assert "error[usage]: " in r.err


def test_no_suggestion_for_something_unlike_any_command(run_cli: Callable[..., Any]) -> None:
    r = run_cli("zzzzzz")
    assert r.code == 2
    assert r.err.splitlines()[-1] == "  hint: run 'pkgloader --help'"


def test_version(run_cli: Callable[..., Any]) -> None:
    from pkgloader import __version__

    r = run_cli("--version")
    assert (r.code, r.out) == (0, f"pkgloader {__version__}\n")


def test_publish_of_a_directory_explains_what_it_expects(run_cli: Callable[..., Any], tmp_path: Any) -> None:
    (tmp_path / "wit").mkdir()
    r = run_cli("publish", tmp_path / "wit", "--package", "my:pkg@0.1.0")
    assert r.code == 2
    assert r.err.startswith(f"error[usage]: '{tmp_path / 'wit'}' is a directory; publish takes one .wasm file")
    assert "wasm-tools component wit" in r.err
