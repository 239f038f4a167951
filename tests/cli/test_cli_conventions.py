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


def test_did_you_mean_for_namespaces_and_local_packages(tmp_path: Path, run_cli: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # a namespace close to a built-in one
    r = run_cli("config", "resolve", "wasii:http")
    assert r.code == 2
    assert r.err.splitlines()[0] == "error[no-registry]: no registry is configured for namespace 'wasii' (package wasii:http)"
    assert r.err.splitlines()[-1].startswith(
        "  hint: did you mean wasi:http? (namespace 'wasi' is built in); otherwise add  wasii = \"REGISTRY\"  ")
    # ... and to a configured one
    cfg = tmp_path / "c.toml"
    root = tmp_path / "files"
    (root / "my-org" / "greeter").mkdir(parents=True)
    (root / "my-org" / "greeter" / "0.1.0.wasm").write_bytes(b"\0asm\x01\0\0\0")
    (root / "other").mkdir()
    cfg.write_text(f'[namespace_registries]\nmy-org = "files"\nother = "files"\n'
                   f'[registry."files".local]\nroot = "{root}"\n')
    r = run_cli("--config", cfg, "info", "my-orgg:greeter")
    assert r.code == 2 and "hint: did you mean my-org:greeter? (namespace 'my-org' is configured)" in r.err
    # nothing close: only the way to configure it
    r = run_cli("--config", cfg, "info", "zzzz:greeter")
    assert r.code == 2 and "did you mean" not in r.err
    # a package name close to one the local registry holds (a cheap listing)
    r = run_cli("--config", cfg, "info", "my-org:greter")
    assert r.code == 3
    assert r.err.splitlines()[0] == "error[package-not-found]: package my-org:greter not found in local registry files"
    assert "  hint: did you mean my-org:greeter? put releases there as <version>.wasm" in r.err
    # the same name in a close namespace
    r = run_cli("--config", cfg, "info", "other:greeter")
    assert r.code == 3 and "hint: did you mean my-org:greeter?" not in r.err
