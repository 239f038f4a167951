"""Layered configuration: files, env, flags, origins, errors."""

from __future__ import annotations

import base64
import textwrap
from pathlib import Path

import pytest

from pkgloader._config import Config, global_config_path, legacy_config_path
from pkgloader._errors import ConfigError, RegistryNotConfigured


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_builtins_only() -> None:
    cfg = Config.load()
    choice = cfg.choose_registry("wasi:http")
    assert (choice.registry, choice.rule, str(choice.origin)) == ("wasi.dev", "built-in namespace wasi", "built-in default")
    assert cfg.choose_registry("ba:x").registry == "bytecodealliance.org"


def test_global_file_is_the_wasm_pkg_config() -> None:
    assert global_config_path() == Path.home() / ".config" / "wasm-pkg" / "config.toml"
    write(global_config_path(), """
        default_registry = "example.com"

        [namespace_registries]
        my-org = "registry.my-org.dev"
        """)
    cfg = Config.load()
    c = cfg.choose_registry("my-org:thing")
    assert c.registry == "registry.my-org.dev"
    assert c.origin.layer == "global" and c.origin.line == 4
    assert c.origin.source == str(global_config_path())
    # default_registry beats the built-in fallbacks, as in wkg
    assert cfg.choose_registry("wasi:http").registry == "example.com"
    assert cfg.choose_registry("other:x").rule == "default_registry"


def test_resolution_order() -> None:
    write(global_config_path(), """
        default_registry = "default.example"
        [namespace_registries]
        acme = "ns.example"
        [package_registry_overrides]
        "acme:special" = "pkg.example"
        """)
    cfg = Config.load()
    assert cfg.choose_registry("acme:special").registry == "pkg.example"
    assert cfg.choose_registry("acme:plain").registry == "ns.example"
    assert cfg.choose_registry("zzz:plain").registry == "default.example"
    forced = Config.load(registry="flag.example")
    c = forced.choose_registry("acme:special")
    assert (c.registry, c.rule, c.origin.layer) == ("flag.example", "--registry", "flag")


def test_layers_project_env_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(global_config_path(), """
        [namespace_registries]
        acme = "global.example"
        [registry."global.example".oci]
        protocol = "https"
        accept_invalid_certificates = false
        """)
    proj = tmp_path / "proj"
    write(proj / "pkgloader.toml", """
        [namespace_registries]
        acme = "project.example"
        [registry."global.example".oci]
        accept_invalid_certificates = true
        """)
    sub = proj / "src" / "deep"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    cfg = Config.load()
    assert cfg.choose_registry("acme:x").registry == "project.example"
    # backend tables merge per key: protocol from global, accept_invalid_certificates from project
    table = cfg.registries["global.example"].backends["oci"]
    assert table["protocol"].origin.layer == "global"
    assert table["accept_invalid_certificates"].value is True
    assert table["accept_invalid_certificates"].origin.layer == "project"
    assert cfg.project_root == proj

    extra = write(tmp_path / "extra.toml", """
        [namespace_registries]
        acme = "env.example"
        """)
    monkeypatch.setenv("PKGLOADER_CONFIG", str(extra))
    assert Config.load().choose_registry("acme:x").registry == "env.example"

    flagfile = write(tmp_path / "flag.toml", """
        [namespace_registries]
        acme = "flag.example"
        """)
    cfg = Config.load(config_files=[flagfile])
    c = cfg.choose_registry("acme:x")
    assert (c.registry, c.origin.layer, c.origin.source, c.origin.line) == ("flag.example", "flag", str(flagfile), 2)
    # --config adds a layer; it never drops the built-ins
    assert cfg.choose_registry("wasi:http").registry == "wasi.dev"


def test_pyproject_tool_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "pyproject.toml", """
        [project]
        name = "x"
        [tool.pkgloader]
        default_registry = "py.example"
        [tool.pkgloader.pkgloader]
        strict = true
        """)
    monkeypatch.chdir(tmp_path)
    cfg = Config.load()
    assert cfg.default_registry is not None and cfg.default_registry.value == "py.example"
    assert cfg.settings.strict.value is True
    assert cfg.files[-1][0] == "project"


def test_pyproject_without_table_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "pkgloader.toml", 'default_registry = "outer.example"\n')
    write(tmp_path / "inner" / "pyproject.toml", '[project]\nname = "x"\n')
    monkeypatch.chdir(tmp_path / "inner")
    assert Config.load().default_registry.value == "outer.example"  # type: ignore[union-attr]


def test_env_vars(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PKGLOADER_DEFAULT_REGISTRY", "env.example:5000")
    monkeypatch.setenv("WKG_CACHE_DIR", str(tmp_path / "wkgcache"))
    cfg = Config.load()
    assert cfg.default_registry.value == "env.example:5000"  # type: ignore[union-attr]
    assert str(cfg.default_registry.origin) == "env PKGLOADER_DEFAULT_REGISTRY"  # type: ignore[union-attr]
    assert cfg.cache_dir == tmp_path / "wkgcache"
    monkeypatch.setenv("PKGLOADER_CACHE_DIR", str(tmp_path / "pl"))
    assert Config.load().cache_dir == tmp_path / "pl"
    assert Config.load(cache_dir=tmp_path / "flag").cache_dir == tmp_path / "flag"


def test_wkg_config_file_alias(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    f = write(tmp_path / "w.toml", 'default_registry = "wkg.example"\n')
    monkeypatch.setenv("WKG_CONFIG_FILE", str(f))
    cfg = Config.load()
    assert cfg.default_registry.value == "wkg.example"  # type: ignore[union-attr]
    assert cfg.default_registry.origin.layer == "env"  # type: ignore[union-attr]


def test_missing_env_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PKGLOADER_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError) as ei:
        Config.load()
    assert "named by PKGLOADER_CONFIG does not exist" in ei.value.message


def test_auth_forms_and_masking() -> None:
    b64 = base64.b64encode(b"user:s3cret").decode()
    write(global_config_path(), f"""
        [registry."a.example".oci]
        auth = {{ username = "alice", password = "hunter2" }}
        [registry."b.example".oci]
        auth = "{b64}"
        [registry."c.example".warg]
        url = "https://warg.c.example/"
        auth_token = "tok-123"
        """)
    cfg = Config.load()
    a = cfg.registry_config("a.example").oci().auth
    b = cfg.registry_config("b.example").oci().auth
    assert (a.username, a.password) == ("alice", "hunter2")  # type: ignore[union-attr]
    assert (b.username, b.password) == ("user", "s3cret")  # type: ignore[union-attr]
    assert "hunter2" not in repr(a)
    w = cfg.registry_config("c.example").warg()
    assert w.url == "https://warg.c.example" and "tok-123" not in repr(w)
    shown = repr(cfg.to_dict()) + repr(cfg.to_dict(origins=True))
    for secret in ("hunter2", b64, "tok-123"):
        assert secret not in shown


def test_local_root_relative_to_file(tmp_path: Path) -> None:
    f = write(tmp_path / "conf" / "c.toml", """
        [registry."local-pkgs".local]
        root = "../packages"
        """)
    cfg = Config.load(config_files=[f])
    rc = cfg.registry_config("local-pkgs")
    assert rc.default_backend() == "local"
    assert rc.local().root == tmp_path / "conf" / ".." / "packages"  # type: ignore[union-attr]


def test_default_backend_rules() -> None:
    write(global_config_path(), """
        [registry."a.example"]
        type = "warg"
        [registry."a.example".oci]
        protocol = "http"
        [registry."a.example".warg]
        url = "https://w.example"
        [registry."b.example".oci]
        protocol = "http"
        [registry."b.example".warg]
        url = "https://w.example"
        """)
    cfg = Config.load()
    assert cfg.registry_config("a.example").default_backend() == "warg"
    assert cfg.registry_config("b.example").default_backend() is None  # metadata decides, then oci
    assert cfg.registry_config("unknown.example").default_backend() is None


def test_inline_metadata() -> None:
    write(global_config_path(), """
        [namespace_registries]
        acme = { registry = "acme", metadata = { preferredProtocol = "oci", oci = { registry = "ghcr.io", namespacePrefix = "acme/" } } }
        """)
    c = Config.load().choose_registry("acme:tool")
    assert c.registry == "acme"
    assert c.metadata is not None and c.metadata.oci_registry == "ghcr.io" and c.metadata.oci_namespace_prefix == "acme/"


# --- errors -------------------------------------------------------------------------


def error_for(text: str) -> ConfigError:
    write(global_config_path(), text)
    with pytest.raises(ConfigError) as ei:
        Config.load()
    return ei.value


def test_unknown_key_with_did_you_mean() -> None:
    err = error_for("""
        default_registry = "x.example"
        namespace_registry = { a = "b.example" }
        """)
    path = global_config_path()
    assert err.render() == (
        "error[invalid-config]: namespace_registry: unknown key 'namespace_registry'\n"
        f"  in {path}:2 (global layer)\n"
        "  hint: did you mean 'namespace_registries'?"
    )
    assert err.exit_code == 2
    assert isinstance(err, ValueError)


def unusable_for(text: str, registry: str = "r.example") -> tuple[ConfigError, list[str]]:
    """A bad [registry] entry fails its registry only, as in wkg (issue 15): the config
    loads with a warning, and using the registry is the error returned here."""
    write(global_config_path(), text)
    cfg = Config.load()
    with pytest.raises(ConfigError) as ei:
        cfg.registry_config(registry).check_usable()
    assert ei.value.code == "registry-unusable" and ei.value.exit_code == 2
    return ei.value, cfg.warnings


def test_wrong_type_names_key_and_line() -> None:
    err, warnings = unusable_for("""
        [registry."r.example".oci]
        protocol = "http"
        accept_invalid_certificates = "yes"
        """)
    problem = (f"{global_config_path()}:3 (global layer): registry.\"r.example\".oci.accept_invalid_certificates: "
               "expected true or false, got a string 'yes'")
    assert err.render() == (
        "error[registry-unusable]: registry 'r.example' cannot be used: its config entry is invalid\n"
        f"  {problem}\n"
        '  hint: fix [registry."r.example"] (pkgloader speaks the oci, local and warg backends), '
        "or map the package to another registry"
    )
    assert warnings == [f"{problem}: registry 'r.example' cannot be used until this is fixed; other registries are unaffected"]


def test_bad_values() -> None:
    assert "protocol must be" in unusable_for('[registry."r.example".oci]\nprotocol = "ftp"\n')[0].details[0]
    err = error_for('default_registry = "https://r.example/"\n')
    assert "invalid registry name" in err.message and "drop the scheme" in (err.hint or "")
    assert "unknown oci key 'auht'" in unusable_for('[registry."r.example".oci]\nauht = "x"\n')[0].details[0]
    err, warnings = unusable_for('[registry."r.example"]\nauth = { username = "a", password = "b" }\n')
    assert "must be inside a backend table" in err.details[0]
    assert warnings[0].endswith('(hint: move it under [registry."r.example".oci])')
    assert "not valid base64" in unusable_for('[registry."r.example".oci]\nauth = "@@@"\n')[0].details[0]
    assert "unknown backend 'ocı'" in unusable_for('[registry."r.example"]\ndefault = "ocı"\n')[0].details[0]
    assert "invalid namespace 'Bad'" in error_for('[namespace_registries]\nBad = "r.example"\n').message
    assert "max_concurrency must be from 1 to 64" in error_for("[pkgloader]\nmax_concurrency = 0\n").message
    assert "[dependencies] belongs in a project file" in error_for('[dependencies]\n"a:b" = "1"\n').message


def test_secret_never_in_error() -> None:
    err, _ = unusable_for('[registry."r.example".oci]\nauth = { username = "u", password = 5 }\n')
    assert "auth table needs a string 'password'" in err.details[0]


def test_toml_syntax_error_points_at_position() -> None:
    err = error_for('default_registry = "x.example\n')
    rendered = err.render()
    assert rendered.startswith(f"error[invalid-config]: config file '{global_config_path()}' is not valid TOML")
    assert f"file: {global_config_path()}:1" in rendered
    assert "hint: fix the TOML syntax at the position shown" in rendered


def test_no_registry_for_namespace() -> None:
    with pytest.raises(RegistryNotConfigured) as ei:
        Config.load().choose_registry("acme:tool")
    err = ei.value
    assert err.message == "no registry is configured for namespace 'acme' (package acme:tool)"
    assert err.hint == (
        f'add  acme = "REGISTRY"  under [namespace_registries] in {global_config_path()} '
        "or pkgloader.toml, or pass --registry REGISTRY"
    )


# --- legacy warg-loader shape ------------------------------------------------------------


def test_legacy_file_read_with_hint() -> None:
    write(legacy_config_path(), """
        default_registry = "legacy.example"
        [namespace.acme]
        registry = "acme.example"
        [registry."acme.example"]
        type = "oci"
        auth = { username = "u", password = "p" }
        [registry."files"]
        type = "local"
        root = "/srv/wasm"
        """)
    cfg = Config.load()
    assert cfg.choose_registry("acme:x").registry == "acme.example"
    assert cfg.registry_config("acme.example").oci().auth.username == "u"  # type: ignore[union-attr]
    assert cfg.registry_config("files").local().root == Path("/srv/wasm")  # type: ignore[union-attr]
    assert cfg.registry_config("files").default_backend() == "local"
    assert len(cfg.warnings) == 1 and "pkgloader config init --migrate" in cfg.warnings[0]


def test_legacy_ignored_when_new_file_exists() -> None:
    write(legacy_config_path(), 'default_registry = "legacy.example"\n')
    write(global_config_path(), 'default_registry = "new.example"\n')
    cfg = Config.load()
    assert cfg.default_registry.value == "new.example"  # type: ignore[union-attr]
    assert cfg.warnings == []


def test_legacy_namespace_registries_v002() -> None:
    write(legacy_config_path(), '[namespace_registries]\nacme = "old.example"\n')
    assert Config.load().choose_registry("acme:x").registry == "old.example"


def test_fsync_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Config.load().settings.fsync.value is True  # durable by default
    write(tmp_path / "pkgloader.toml", "[pkgloader]\nfsync = false\n")
    monkeypatch.chdir(tmp_path)
    cfg = Config.load()
    assert cfg.settings.fsync.value is False
    assert cfg.settings.fsync.origin.layer == "project"
    assert cfg.to_dict()["pkgloader"]["fsync"] is False
    assert "expected true or false" in error_for("[pkgloader]\nfsync = 1\n").message
