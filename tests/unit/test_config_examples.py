"""Every file in config-examples/ loads and means what its comments say."""

from __future__ import annotations

from pathlib import Path

import pytest

from pkgloader._config import Config

EXAMPLES = Path(__file__).resolve().parents[2] / "config-examples"


def load(name: str) -> Config:
    return Config.load(config_files=[EXAMPLES / name], use_global=False, use_project=False)


def test_every_example_is_covered() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.toml")) == [
        "ci-mirrors.toml", "local-directory.toml", "pkgloader.toml", "private-registry.toml", "provenance.toml",
        "warg-registry.toml", "wasi-dev.toml"]  # provenance.toml: tests/provenance/test_policy_config.py


def test_wasi_dev() -> None:
    c = load("wasi-dev.toml").choose_registry("wasi:http")
    assert c.registry == "wasi.dev"
    assert c.metadata is not None and (c.metadata.oci_registry, c.metadata.oci_namespace_prefix) == ("ghcr.io", "webassembly/")


def test_private_registry() -> None:
    cfg = load("private-registry.toml")
    assert cfg.choose_registry("my-org:app").registry == "registry.example.com"
    assert cfg.choose_registry("my-org:legacy-tool").registry == "mirror.example.com"
    oci = cfg.registry_config("registry.example.com").oci()
    assert oci.auth is not None and oci.auth.username == "ci-bot"
    assert oci.extra_root_certificates and oci.extra_root_certificates[0].startswith(b"-----BEGIN CERTIFICATE-----")
    mirror = cfg.registry_config("mirror.example.com").oci().auth
    assert mirror is not None and (mirror.username, mirror.password) == ("user", "password")


def test_local_directory() -> None:
    cfg = load("local-directory.toml")
    rc = cfg.registry_config(cfg.choose_registry("my-org:greeter").registry)
    assert rc.default_backend() == "local"
    assert rc.local().root == EXAMPLES / "packages"  # type: ignore[union-attr]


def test_warg_registry() -> None:
    cfg = load("warg-registry.toml")
    rc = cfg.registry_config(cfg.choose_registry("acme:thing").registry)
    assert rc.default_backend() == "warg" and rc.warg().url == "https://warg.acme.example"


def test_project_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pkgloader.toml").write_text((EXAMPLES / "pkgloader.toml").read_text())
    monkeypatch.chdir(tmp_path)
    cfg = Config.load()
    c = cfg.choose_registry("wasi:http")
    assert (c.registry, c.origin.layer) == ("wasm-mirror.internal.example:5000", "project")
    assert cfg.settings.strict.value is True
    assert cfg.cache_dir == tmp_path / ".pkgloader-cache"
    assert set(cfg.dependencies) == {"wasi:http", "wasi:cli"}
