"""``pkgloader config ...`` in-process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from pkgloader._config import global_config_path, legacy_config_path
from support.httpserver import StaticServer


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_show_defaults(run_cli) -> None:  # type: ignore[no-untyped-def]
    r = run_cli("config", "show")
    assert r.code == 0, r
    assert '#   ba = "bytecodealliance.org"\n#   wasi = "wasi.dev"' in r.out  # built in: comments
    assert "[pkgloader]" in r.out


def test_show_origin_names_layer_file_and_line(run_cli) -> None:  # type: ignore[no-untyped-def]
    write(global_config_path(), """
        default_registry = "example.com"
        [registry."example.com".oci]
        auth = { username = "alice", password = "hunter2" }
        """)
    r = run_cli("config", "show", "--origin")
    assert r.code == 0, r
    assert f'default_registry = "example.com"' in r.out
    assert f"# global {global_config_path()}:1" in r.out
    assert "# built-in default" in r.out
    assert "hunter2" not in r.out and 'password = "********"' in r.out


def test_show_json(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = write(tmp_path / "c.toml", '[namespace_registries]\nacme = "acme.example"\n')
    r = run_cli("config", "show", "--json", "--origin", "--config", f)
    data = r.json()
    assert data["namespace_registries"]["acme"] == {
        "value": "acme.example", "origin": {"layer": "flag", "source": str(f), "line": 2}}


def test_path_lists_every_file(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = run_cli("config", "path", "--json")
    data = r.json()
    paths = [(f["layer"], f["path"], f["found"]) for f in data["files"]]
    assert ("global", str(global_config_path()), False) in paths
    assert any(str(legacy_config_path()) == p for _, p, _ in paths)
    assert any(layer == "project" and not found for layer, _, found in paths)
    text = run_cli("config", "path").out
    assert f"{global_config_path()}  (not found)" in text


def test_init_writes_then_refuses(run_cli) -> None:  # type: ignore[no-untyped-def]
    r = run_cli("config", "init", "-q")
    assert (r.code, r.out, r.err) == (0, f"{global_config_path()}\n", "")  # -q: the result only, as everywhere
    text = global_config_path().read_text()
    assert text.startswith("# wasm-pkg configuration")
    assert run_cli("config", "show").code == 0  # the template itself is a valid config
    r = run_cli("config", "init")
    assert r.code == 7
    assert r.err == (
        f"error[output-exists]: config file '{global_config_path()}' already exists; not overwriting it\n"
        "  hint: edit it, or choose another file with --path\n"
    )
    assert global_config_path().read_text() == text


def test_init_migrate_legacy(run_cli) -> None:  # type: ignore[no-untyped-def]
    write(legacy_config_path(), """
        default_registry = "legacy.example"
        [namespace.acme]
        registry = "acme.example"
        [registry."acme.example"]
        type = "oci"
        auth = "dXNlcjpwYXNz"
        """)
    r = run_cli("config", "show")
    assert "warning: read the legacy warg-loader config" in r.err
    r = run_cli("config", "init", "--migrate")
    assert r.code == 0, r
    r = run_cli("config", "show", "--origin")
    assert "legacy" not in r.err
    assert 'acme = "acme.example"' in r.out


def test_bad_config_exit_2_no_traceback(run_cli) -> None:  # type: ignore[no-untyped-def]
    write(global_config_path(), 'default_registy = "x.example"\n')
    r = run_cli("config", "show")
    assert r.code == 2
    assert r.err == (
        "error[invalid-config]: default_registy: unknown key 'default_registy'\n"
        f"  in {global_config_path()}:1 (global layer)\n"
        "  hint: did you mean 'default_registry'?\n"
    )
    assert "Traceback" not in r.err


def test_resolve_builtin_offline(run_cli) -> None:  # type: ignore[no-untyped-def]
    r = run_cli("config", "resolve", "wasi:http@0.2", "--offline")
    assert r.code == 0, r
    assert r.out.splitlines() == [
        "package:   wasi:http  (requirement ^0.2)",
        "registry:  wasi.dev  (by built-in namespace wasi; built-in default)",
        "backend:   oci  (default (oci))",
        "metadata:  not fetched (offline)",
        "oci:       https://wasi.dev  repository wasi/http",
    ]


def test_resolve_json_with_discovery(run_cli) -> None:  # type: ignore[no-untyped-def]
    meta = {"preferredProtocol": "oci", "oci": {"registry": "ghcr.io", "namespacePrefix": "webassembly/"}}
    with StaticServer({"/.well-known/wasm-pkg/registry.json": (200, {}, json.dumps(meta).encode())}) as srv:
        write(global_config_path(), f'[namespace_registries]\nwasi = "{srv.host}"\n')
        r = run_cli("config", "resolve", "wasi:http", "--json")
    assert r.code == 0, r
    data = r.json()
    assert data["reference"] == "ghcr.io/webassembly/wasi/http"
    assert data["registry"] == srv.host and data["registry_rule"] == "namespace_registries.wasi"
    assert data["registry_origin"] == {"layer": "global", "source": str(global_config_path()), "line": 2}
    assert data["backend"] == "oci" and data["requirement"] is None


def test_resolve_registry_flag(run_cli) -> None:  # type: ignore[no-untyped-def]
    r = run_cli("config", "resolve", "wasi:http", "--registry", "other.example", "--offline", "--json")
    assert r.json()["registry"] == "other.example"
    assert r.json()["registry_rule"] == "--registry"


def test_resolve_unmapped_namespace(run_cli) -> None:  # type: ignore[no-untyped-def]
    r = run_cli("config", "resolve", "acme:tool", "--offline")
    assert r.code == 2
    assert r.err.startswith("error[no-registry]: no registry is configured for namespace 'acme' (package acme:tool)\n")
    assert '  hint: add  acme = "REGISTRY"  under [namespace_registries]' in r.err


def test_resolve_bad_ref(run_cli) -> None:  # type: ignore[no-untyped-def]
    r = run_cli("config", "resolve", "wasi:HTTP")
    assert r.code == 2
    assert r.err.startswith("error[invalid-package-ref]:")
    assert "Traceback" not in r.err
    r = run_cli("config", "resolve", "wasi:HTTP", "--json")
    assert r.json()["error"]["code"] == "invalid-package-ref"


def test_usage_error_exit_2(run_cli) -> None:  # type: ignore[no-untyped-def]
    r = run_cli("config", "frobnicate")
    assert r.code == 2 and "error[usage]" in r.err
    assert run_cli("--version").code == 0


def test_console_script_and_module_entry() -> None:
    exe = Path(sys.executable).parent / "pkgloader"
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("pkgloader ")
    out2 = subprocess.run([sys.executable, "-m", "pkgloader", "--version"], capture_output=True, text=True, check=True).stdout
    assert out2 == out
    # --help lists the exit codes
    helptext = subprocess.run([sys.executable, "-m", "pkgloader", "--help"], capture_output=True, text=True, check=True).stdout
    assert "exit codes:" in helptext and "integrity" in helptext


def test_show_output_loads_back_as_a_config(run_cli, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """README: config show prints TOML that loads back (secrets masked); with --origin too."""
    import tomllib

    write(global_config_path(), """
        default_registry = "r.example"
        [namespace_registries]
        my-org = "r.example"
        acme = { registry = "acme", metadata = { preferredProtocol = "oci", oci = { registry = "ghcr.io", namespacePrefix = "acme/" } } }
        [package_registry_overrides]
        "my-org:special" = "other.example"
        [registry."r.example".oci]
        auth = { username = "alice", password = "s3cr3t" }
        protocol = "http"
        [registry."other.example"]
        default = "oci"
        [registry."w.example".warg]
        url = "https://w.example"
        [pkgloader]
        timeout = 12
        """)
    proj = tmp_path / "proj"
    write(proj / "pkgloader.toml", """
        [pkgloader]
        retries = 2
        [dependencies]
        "my-org:x" = "1.0"
        """)
    monkeypatch.chdir(proj)
    for flags in ((), ("--origin",)):
        first = run_cli("config", "show", *flags)
        assert first.code == 0, first
        assert "s3cr3t" not in first.out
        tomllib.loads(first.out)  # valid TOML
        shown = tmp_path / "shown.toml"
        shown.write_text(first.out)
        again = run_cli("--config", shown, "config", "show")
        assert (again.code, again.err) == (0, "")
        plain = run_cli("config", "show").out
        # the same effective config (the password is the masked text now, shown masked again)
        assert again.out == plain
    origin = run_cli("config", "show", "--origin").out
    assert f"retries = 2 " in origin and f"# project {proj / 'pkgloader.toml'}:2" in origin
    assert f"# project {proj / 'pkgloader.toml'}:4" in origin  # [dependencies] entries too
    assert f"# global {global_config_path()}:3" in origin
