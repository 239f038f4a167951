"""Config tolerance as wkg has it (issue 15): every config in wkg's docs and tests
(bytecodealliance/wasm-pkg-tools: docs/configuration.md, wasm-pkg-common/src/config/toml.rs,
wasm-pkg-client/src/oci/config.rs, wasm-pkg-client/tests/*.rs) loads; an unknown backend
table, an unknown key in a backend table and an invalid registry entry are a warning naming
file, line and key and make only that registry unusable (using it is an error repeating the
reason); unknown top-level keys and TOML syntax errors stay errors."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Callable

import pytest

from pkgloader import Client
from pkgloader._config import Config
from pkgloader._errors import ConfigError
from support.wit import WitSpec, build_spec

# --- wkg's own configs, verbatim (the Rust toml! macro bodies written as TOML) --------------

DOCS_SUMMARY = """\
default_registry = "acme.registry.com"

[namespace_registries]
wasi = "wasi.dev"
example = "example.com"
another = { registry = "another", metadata = { preferredProtocol = "oci", "oci" = { registry = "ghcr.io", namespacePrefix = "webassembly/" } } }

[package_registry_overrides]
"example:foo" = "example.com"
"example:bar" = { registry = "another", metadata = { preferredProtocol = "oci", "oci" = { registry = "ghcr.io", namespacePrefix = "webassembly/" } } }

[registry."acme.registry.com".oci]
auth = { username = "open", password = "sesame" }
protocol = "https"

[registry."acme.registry.com".local]
root = "/a/path"

[registry."example.com".oci]
auth = { username = "open", password = "sesame" }

[registry."another".oci]
auth = { username = "open", password = "sesame" }
"""

DOCS_SNIPPETS = [
    'default_registry = "acme.registry.com"\n',
    '[namespace_registries]\nwasi = "wasi.dev"\nanother = { registry = "another", metadata = { preferredProtocol = "oci", '
    '"oci" = { registry = "ghcr.io", namespacePrefix = "webassembly/" } } }\n',
    '[package_registry_overrides]\n"example:foo" = "example.com"\n',
    '[registry."example.com"]\ndefault = "oci"\n',
    '[registry."acme.registry.com".oci]\nauth = { username = "open", password = "sesame" }\n',
    '[registry."acme.registry.com".oci]\nprotocol = "https"\n',
    '[[registry."internal.example.com".oci.extra_root_certificates]]\nencoding = "pem"\ndata = """\n'
    '-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n"""\n',
    '[registry."acme.registry.com".local]\nroot = "/a/path"\n',
]

COMMON_SMOKE = """\
default_registry = "example.com"

[namespace_registries]
wasi = "wasi.dev"

[package_registry_overrides]
"example:foo" = "example.com"

[registry."wasi.dev".oci]
auth = { username = "open", password = "sesame" }

[registry."example.com"]
type = "test"
test = { token = "top_secret" }
"""

TYPE_PARSES = [
    '[namespace_registries]\ntest = "localhost:1234"\n\n[package_registry_overrides]\n\n'
    '[registry."localhost:1234".oci]\nauth = { username = "open", password = "sesame" }\n',
    '[namespace_registries]\ntest = "localhost:1234"\n\n[package_registry_overrides]\n\n'
    '[registry."localhost:1234".oci]\nauth = { username = "open", password = "sesame" }\n'
    '[registry."localhost:1234".other]\nconfig = "value"\n',
    '[namespace_registries]\ntest = "localhost:1234"\n\n[package_registry_overrides]\n\n'
    '[registry."localhost:1234"]\ntype = "foobar"\n[registry."localhost:1234".oci]\n'
    'auth = { username = "open", password = "sesame" }\n[registry."localhost:1234".other]\nconfig = "value"\n',
    '[namespace_registries]\ntest = "localhost:1234"\n\n'
    '[registry."localhost:1234"]\ndefault = "foobar"\n[registry."localhost:1234".oci]\n'
    'auth = { username = "open", password = "sesame" }\n[registry."localhost:1234".other]\nconfig = "value"\n',
]

CUSTOM_NAMESPACE = """\
[namespace_registries]
test = { registry = "localhost", metadata = { preferredProtocol = "oci", "oci" = {registry = "ghcr.io", namespacePrefix = "webassembly/" } } }
foo = "foo:1234"

[package_registry_overrides]
"foo:bar" = { registry = "localhost", metadata = { preferredProtocol = "oci", "oci" = {registry = "ghcr.io", namespacePrefix = "webassembly/" } } }

[registry."localhost".oci]
auth = { username = "open", password = "sesame" }
"""

CLIENT_OCI_SMOKE = """\
[registry."example.com"]
type = "oci"
[registry."example.com".oci]
auth = { username = "open", password = "sesame" }
protocol = "http"

[registry."wasi.dev"]
type = "oci"
[registry."wasi.dev".oci]
auth = "cGluZzpwb25n"
"""

CLIENT_CUSTOM_NAMESPACE = """\
[namespace_registries]
test = { registry = "localhost:1234", metadata = { preferredProtocol = "oci", "oci" = { registry = "ghcr.io", namespacePrefix = "webassembly/" } } }
"""

E2E = [
    'default_registry = "localhost:5001"\n\n[registry."localhost:5001"]\ntype = "oci"\n[registry."localhost:5001".oci]\nprotocol = "http"\n',
    'default_registry = "localhost:5002"\n\n[registry."localhost:5002"]\ntype = "oci"\n[registry."localhost:5002".oci]\nprotocol = "https"\n'
    "accept_invalid_certificates = true\n",
    '[namespace_registries]\nwasi = { registry = "fake.com:1234", metadata = { preferredProtocol = "oci", "oci" = '
    '{registry = "ghcr.io", namespacePrefix = "bytecodealliance/wasm-pkg/" } } }\n',
    "default_registry = \"local\"\n\n[registry.\"local\"]\ntype = \"local\"\n\n[registry.\"local\".local]\nroot = '/tmp/wkg-local'\n",
]

CLEAN = [DOCS_SUMMARY, *DOCS_SNIPPETS, TYPE_PARSES[0], TYPE_PARSES[1], CUSTOM_NAMESPACE, CLIENT_OCI_SMOKE,
         CLIENT_CUSTOM_NAMESPACE, *E2E]


def _load(tmp_path: Path, text: str) -> tuple[Config, Path]:
    f = tmp_path / "config.toml"
    f.write_text(text)
    return Config.load(config_files=[f], use_global=False, use_project=False), f


@pytest.mark.parametrize("text", CLEAN, ids=[f"clean{i}" for i in range(len(CLEAN))])
def test_every_wkg_config_loads_and_its_registries_are_usable(text: str, tmp_path: Path) -> None:
    cfg, f = _load(tmp_path, text)
    for name, rc in cfg.registries.items():
        rc.check_usable()
    # only the ignored 'other' backend table of wkg's type_parses_correctly is worth a word
    assert all("backend table 'other' is not one pkgloader speaks" in w and "pkgloader ignores it" in w
               for w in cfg.warnings), cfg.warnings


def test_wkg_config_values_mean_what_they_mean_in_wkg(tmp_path: Path) -> None:
    cfg, _ = _load(tmp_path, CLIENT_OCI_SMOKE)
    oci = cfg.registry_config("example.com").oci()
    assert oci.auth is not None and (oci.auth.username, oci.auth.password) == ("open", "sesame")
    assert oci.protocol == "http" and not oci.accept_invalid_certificates and not oci.extra_root_certificates
    wasi = cfg.registry_config("wasi.dev").oci()
    assert wasi.auth is not None and (wasi.auth.username, wasi.auth.password) == ("ping", "pong")
    cfg, _ = _load(tmp_path, CUSTOM_NAMESPACE)
    assert cfg.choose_registry("foo:x").registry == "foo:1234"
    choice = cfg.choose_registry("test:x")
    assert choice.registry == "localhost" and choice.metadata is not None
    assert (choice.metadata.oci_registry, choice.metadata.oci_namespace_prefix) == ("ghcr.io", "webassembly/")
    assert cfg.choose_registry("foo:bar").registry == "localhost"
    # two backend tables, one of them another tool's: oci is the one pkgloader speaks
    cfg, _ = _load(tmp_path, TYPE_PARSES[1])
    assert cfg.registry_config("localhost:1234").default_backend() == "oci"


def test_wkg_custom_backend_type_fails_that_registry_only(tmp_path: Path) -> None:
    cfg, f = _load(tmp_path, COMMON_SMOKE)
    assert cfg.warnings == [
        f"{f}:13 (flag layer): registry.\"example.com\".type: unknown backend 'test': registry 'example.com' cannot be "
        "used until this is fixed; other registries are unaffected (hint: use oci, local or warg)",
        f"{f}:14 (flag layer): registry.\"example.com\".test: backend table 'test' is not one pkgloader speaks "
        "(oci, local, warg): pkgloader ignores it",
    ]
    assert all("top_secret" not in w for w in cfg.warnings)
    cfg.registry_config("wasi.dev").check_usable()  # the other registry works
    assert cfg.choose_registry("wasi:http").registry == "wasi.dev"
    with pytest.raises(ConfigError) as ei:
        cfg.registry_config("example.com").check_usable()
    assert ei.value.render() == (
        "error[registry-unusable]: registry 'example.com' cannot be used: its config entry is invalid\n"
        f"  {f}:13 (flag layer): registry.\"example.com\".type: unknown backend 'test'\n"
        '  hint: fix [registry."example.com"] (pkgloader speaks the oci, local and warg backends), '
        "or map the package to another registry")


@pytest.mark.parametrize("text", TYPE_PARSES[2:], ids=["type-foobar", "default-foobar"])
def test_wkg_type_naming_an_unknown_backend_fails_that_registry(text: str, tmp_path: Path) -> None:
    cfg, f = _load(tmp_path, text)
    with pytest.raises(ConfigError) as ei:
        cfg.registry_config("localhost:1234").check_usable()
    assert "unknown backend 'foobar'" in ei.value.details[0] and ei.value.details[0].startswith(f"{f}:")


def test_only_an_unknown_backend_table_is_unusable_when_used(tmp_path: Path) -> None:
    cfg, f = _load(tmp_path, '[registry."r.example".custom]\nx = 1\n')
    with pytest.raises(ConfigError) as ei:
        cfg.registry_config("r.example").check_usable()
    assert ei.value.details == ["its only backend table (custom) is not one pkgloader speaks"]


# --- what wkg accepts and pkgloader refused whole, now a warning for one registry --------------

BAD_ENTRIES = [
    ("unknown-oci-key", '[registry."bad.example".oci]\nprotocol = "http"\nmirror_of = "x"\n', 3,
     "registry.\"bad.example\".oci.mirror_of: unknown oci key 'mirror_of'"),
    ("bad-protocol", '[registry."bad.example".oci]\nprotocol = "ftp"\n', 2,
     'registry."bad.example".oci.protocol: protocol must be "http" or "https", got \'ftp\''),
    ("extra-auth-field", '[registry."bad.example".oci]\nauth = { username = "a", password = "s3cr3t", token = "t" }\n', 2,
     "registry.\"bad.example\".oci.auth.token: unknown auth key 'token'"),
    ("base64-without-colon", '[registry."bad.example".oci]\nauth = "' + "YWxpY2Vz" + '"\n', 2,
     "registry.\"bad.example\".oci.auth: decoded auth has no ':' between user and password"),
    ("registry-not-a-table", '[registry]\n"bad.example" = 5\n', 2,
     'registry."bad.example": expected a table, got an integer'),
]


@pytest.fixture
def good(registry: Any, tmp_path: Path) -> Any:
    with Client(config=Config.load(config_files=[_good_config(tmp_path, registry)], use_global=False)) as c:
        c.publish(build_spec(tmp_path / "built", WitSpec("test", "base", "1.0.0")), "test:base@1.0.0")
    return registry


def _good_config(tmp_path: Path, registry: Any, bad: str = "") -> Path:
    f = tmp_path / "shared.toml"
    f.write_text(textwrap.dedent(f"""\
        [namespace_registries]
        test = "{registry.host}"
        other = "bad.example"
        [registry."{registry.host}".oci]
        protocol = "{registry.scheme}"
        """) + bad)
    return f


@pytest.mark.parametrize(("name", "bad", "line", "problem"), BAD_ENTRIES, ids=[b[0] for b in BAD_ENTRIES])
def test_a_bad_registry_entry_fails_that_registry_only(name: str, bad: str, line: int, problem: str, good: Any,
                                                       run_cli: Callable[..., Any], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    f = _good_config(tmp_path, good, bad)
    line += 5  # after the good registry's lines
    monkeypatch.setenv("PKGLOADER_CACHE_DIR", str(tmp_path / "cache"))
    where = f"{f}:{line} (flag layer)"
    r = run_cli("fetch", "test:base@=1.0.0", "--config", f, "-o", tmp_path / "out.wasm")
    assert r.code == 0, r.err  # the good registry works
    assert (tmp_path / "out.wasm").read_bytes()[:4] == b"\0asm"
    warning = f"warning: {where}: {problem}: registry 'bad.example' cannot be used until this is fixed; other registries are unaffected"
    assert r.err.startswith(warning)
    assert "s3cr3t" not in r.err
    r = run_cli("fetch", "other:pkg@1", "--config", f)
    assert r.code == 2
    assert r.err.endswith(
        "error[registry-unusable]: registry 'bad.example' cannot be used: its config entry is invalid\n"
        f"  {where}: {problem}\n"
        '  hint: fix [registry."bad.example"] (pkgloader speaks the oci, local and warg backends), '
        "or map the package to another registry\n")
    assert "s3cr3t" not in r.err


@pytest.mark.parametrize(("text", "start"), [
    ('default_registry = "x.example"\nregistries = {}\n', "error[invalid-config]: registries: unknown key 'registries'"),
    ('[registry."r.example".oci]\nprotocol = "http\n', "error[invalid-config]: config file"),
], ids=["unknown-top-level-key", "toml-syntax"])
def test_top_level_and_syntax_errors_stay_errors(text: str, start: str, tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    f = tmp_path / "c.toml"
    f.write_text(text)
    r = run_cli("config", "show", "--config", f)
    assert r.code == 2 and r.err.startswith(start), r.err
