"""The ``[provenance]`` config table: validation errors naming file, line and key; field-by-
field layering over the built-in ``wasi:*`` policy; ``config show --origin``; policy lookup."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pkgloader._config import Config
from pkgloader._errors import ConfigError
from pkgloader._provenance import policy_for
from pkgloader._ref import PackageRef


def load(tmp_path: Path, text: str) -> Config:
    f = tmp_path / "c.toml"
    f.write_text(textwrap.dedent(text))
    return Config.load(config_files=[f], use_global=False, use_project=False)


def error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as ei:
        load(tmp_path, text)
    return ei.value.render().replace(str(tmp_path), "DIR")


def test_builtin_wasi_policy() -> None:
    cfg = Config.builtin()
    p = policy_for(cfg, PackageRef.parse("wasi:http"), "wasi.dev")
    assert p is not None and p.mode == "warn" and p.pattern == "wasi:*" and len(p.signers) == 2
    assert all(s.keyless and s.issuer == "https://token.actions.githubusercontent.com" for s in p.signers)
    assert policy_for(cfg, PackageRef.parse("wasi:http"), "127.0.0.1:5000") is None  # another registry
    assert policy_for(cfg, PackageRef.parse("other:pkg"), "wasi.dev") is None


def test_layering_is_field_by_field(tmp_path: Path) -> None:
    cfg = load(tmp_path, """
        [provenance."wasi:*"]
        mode = "require"
        [provenance."*"]
        signers = [{ key = "k.pub" }]
        [provenance."my-org:tool"]
        mode = "off"
        """)
    p = policy_for(cfg, PackageRef.parse("wasi:io"), "wasi.dev")
    assert p is not None and p.mode == "require" and len(p.signers) == 2  # the built-in signers kept
    assert p.origins["mode"] == f"flag {tmp_path / 'c.toml'}:3" and p.origins["signers"] == "built-in default"
    star = policy_for(cfg, PackageRef.parse("any:thing"), "r.example")
    assert star is not None and star.mode == "require" and star.signers[0].key == str(tmp_path / "k.pub")
    off = policy_for(cfg, PackageRef.parse("my-org:tool"), "r.example")
    assert off is not None and off.mode == "off"


def test_opt_out_of_the_wasi_policy(tmp_path: Path) -> None:
    cfg = load(tmp_path, '[provenance."wasi:*"]\nmode = "off"\n')
    p = policy_for(cfg, PackageRef.parse("wasi:http"), "wasi.dev")
    assert p is not None and p.mode == "off"


@pytest.mark.parametrize(("text", "message"), [
    ('[provenance."wasi"]\nmode = "off"\n',
     'error[invalid-config]: provenance.wasi: invalid policy pattern \'wasi\'\n  in DIR/c.toml:1 (flag layer)\n'
     '  hint: write "*", "NAMESPACE:*" or "NAMESPACE:NAME", e.g. [provenance."wasi:*"]'),
    ('[provenance."a:*"]\nmode = "strict"\n',
     'error[invalid-config]: provenance."a:*".mode: mode must be "require", "warn" or "off", got \'strict\'\n'
     '  in DIR/c.toml:2 (flag layer)'),
    ('[provenance."a:*"]\nsigners = [{ key = "k", issuer = "x" }]\n',
     'error[invalid-config]: provenance."a:*".signers: signer #1 is both a key and a keyless identity\n'
     '  in DIR/c.toml:2 (flag layer)\n  hint: write two signers'),
    ('[provenance."a:*"]\nsigners = [{ issuer = "https://i.example" }]\n',
     'error[invalid-config]: provenance."a:*".signers: keyless signer #1 needs san, san_regex or source_repository\n'
     '  in DIR/c.toml:2 (flag layer)\n  hint: an issuer alone would accept anyone it issues certificates to'),
    ('[provenance."a:*"]\nsigners = [{ issuer = "https://i.example", san_regex = "(" }]\n',
     "error[invalid-config]: provenance.\"a:*\".signers.0.san_regex: invalid regular expression: missing ), "
     "unterminated subpattern at position 0\n  in DIR/c.toml:2 (flag layer)"),
    ('[provenance."a:*"]\nsigner = []\n',
     'error[invalid-config]: provenance."a:*".signer: unknown provenance key \'signer\'\n'
     "  in DIR/c.toml:2 (flag layer)\n  hint: did you mean 'signers'?"),
])
def test_invalid_policies(tmp_path: Path, text: str, message: str) -> None:
    assert error(tmp_path, text) == message


def test_config_show_origin_lists_policies(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "c.toml"
    f.write_text('[provenance."wasi:*"]\nmode = "off"\n')
    r = run_cli("config", "show", "--origin", "--config", f)
    assert r.code == 0
    block = r.out.split('[provenance."wasi:*"]\n', 1)[1]
    assert block.splitlines()[0] == f'mode = "off"                                     # flag {f}:2'
    assert block.splitlines()[1].startswith('registry = "wasi.dev"') and block.splitlines()[1].endswith("# built-in default")
    data = run_cli("config", "show", "--origin", "--json", "--config", f).json()
    assert data["provenance"]["wasi:*"]["mode"] == {"value": "off", "origin": {"layer": "flag", "source": str(f), "line": 2}}  # type: ignore[index]


def test_unreadable_key_file_is_named(tmp_path: Path, registry, registry_config, oci_client, wit_package, run_cli) -> None:  # type: ignore[no-untyped-def]
    oci_client(registry).push_wasm("test/pkg", "1.0.0", wit_package("test", "pkg", "1.0.0"))
    cfg = registry_config(registry, extra='\n[provenance."test:*"]\nsigners = [{ key = "missing.pub" }]\n')
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "out.wasm")
    assert r.code == 2
    assert r.err.startswith(f"error[invalid-config]: cannot read the public key {cfg.parent / 'missing.pub'} of a "
                            "provenance signer: No such file or directory\n"), r
    assert not (tmp_path / "out.wasm").exists()


def test_offline_without_a_cached_verification(tmp_path: Path, registry, registry_config, oci_client, wit_package, run_cli,
                                               make_key) -> None:  # type: ignore[no-untyped-def]
    oci_client(registry).push_wasm("test/pkg", "1.0.0", wit_package("test", "pkg", "1.0.0"))
    key = make_key()
    registry_config(registry, extra=f'\n[provenance."test:*"]\nmode = "off"\nsigners = [{{ key = "{key.pub_path}" }}]\n')
    assert run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "a.wasm").code == 0  # cached, never verified
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "b.wasm", "--offline", "--verify")
    assert r.code == 3
    assert r.err.startswith(f"error[offline-cache-miss]: the signature check of test:pkg@1.0.0 from {registry.host} "
                            "is not in the cache (offline)\n")


def test_the_config_example() -> None:
    examples = Path(__file__).resolve().parents[2] / "config-examples"
    cfg = Config.load(config_files=[examples / "provenance.toml"], use_global=False, use_project=False)
    org = policy_for(cfg, PackageRef.parse("my-org:app"), "registry.example.com")
    assert org is not None and org.mode == "require" and org.signers[0].key == str(examples / "keys/my-org-release.pub")
    assert org.signers[1].source_repository == "https://github.com/my-org/packages"
    legacy = policy_for(cfg, PackageRef.parse("my-org:legacy-tool"), "registry.example.com")
    assert legacy is not None and legacy.mode == "off" and legacy.signers == ()  # its own policy: nothing inherited
    wasi = policy_for(cfg, PackageRef.parse("wasi:http"), "wasi.dev")
    assert wasi is not None and wasi.mode == "require" and len(wasi.signers) == 2
