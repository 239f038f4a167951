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
    r = run_cli("publish", tmp_path / "wit", "--package", "my:pkg@0.1.0")  # a WIT directory is built first (issue 15)
    assert r.code == 2
    assert r.err.startswith(f"error[invalid-wit]: {tmp_path / 'wit'} is not a WIT package wasm-tools can build")
    assert "publish takes a .wasm file" in r.err


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


def test_an_unreachable_registry_warns_once_and_names_the_layer_that_chose_it(tmp_path: Path, run_cli: Any) -> None:
    """A registry nothing listens on (the quick start without a network, in small): one
    metadata warning, not one per operation; the error names the config rule (file and
    line) that chose the registry and the ways out."""
    from support.registry import free_port

    host = f"127.0.0.1:{free_port()}"  # nothing listens there
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[namespace_registries]\nlab = "{host}"\n')
    r = run_cli("--config", cfg, "--cache-dir", tmp_path / "cache", "fetch", "lab:pkg@0.2", "-o", tmp_path / "x.wasm")
    assert r.code == 6
    lines = r.err.splitlines()
    assert [line for line in lines if line.startswith("warning:")] == [
        f"warning: could not read registry metadata for {host} (cannot connect to "
        f"http://{host}/.well-known/wasm-pkg/registry.json: Connection refused); assuming {host} is itself an OCI "
        f"registry (registry chosen by namespace_registries.lab (flag {cfg}:2))"]
    assert lines[1:] == [
        f"error[network-error]: cannot connect to http://{host}/v2/lab/pkg/tags/list: Connection refused",
        f"  registry {host} chosen by namespace_registries.lab (flag {cfg}:2)",
        f"  hint: check that {host} is reachable (pkgloader config resolve lab:pkg shows how it was chosen); "
        "--offline answers from the cache, and a registry mirror can serve when the registry cannot "
        "(README: CI and fleets)"]
    assert not (tmp_path / "x.wasm").exists()


def test_a_built_in_default_is_named_as_such() -> None:
    from pkgloader._config import Config, Origin, RegistryChoice
    from pkgloader._ref import PackageRef
    from pkgloader._source import _chosen_by

    cfg = Config.load(config_files=[])
    choice = cfg.choose_registry(PackageRef.parse("wasi:http"))
    assert choice.rule == "built-in namespace wasi" and choice.registry == "wasi.dev"
    assert _chosen_by(choice) == "the built-in default for namespace wasi"
    other = RegistryChoice(PackageRef.parse("a:b"), "r.example", Origin("global", "/x/config.toml", 3), "default_registry")
    assert _chosen_by(other) == f"default_registry ({other.origin})"
