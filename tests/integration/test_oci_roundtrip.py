"""Publish with pkgloader, then list, resolve and fetch from a real registry."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pkgloader._client import Client
from pkgloader._config import Config
from pkgloader._errors import NoMatchingVersion, OutputExists


def cfg_for(registry, tmp_path: Path, extra: str = "") -> Config:  # type: ignore[no-untyped-def]
    text = textwrap.dedent(f"""
        [namespace_registries]
        test = {{ registry = "{registry.host}", metadata = {{ preferredProtocol = "oci", oci = {{ registry = "{registry.host}" }} }} }}
        [registry."{registry.host}".oci]
        protocol = "{registry.scheme}"
        """) + extra
    f = tmp_path / "pkgloader-test.toml"
    f.write_text(text)
    return Config.load(config_files=[f], cache_dir=tmp_path / "cache")


def test_publish_list_fetch(registry, wit_package, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    wasm1 = wit_package("test", "hello", "0.1.0")
    wasm2 = wit_package("test", "hello", "0.2.0")
    with Client(cfg_for(registry, tmp_path)) as client:
        client.publish(wasm1, "test:hello@=0.1.0")
        client.publish(wasm2, "test:hello@=0.2.0")
        assert [str(v.version) for v in client.versions("test:hello")] == ["0.1.0", "0.2.0"]
        rel = client.resolve("test:hello@0.1")
        assert str(rel.version) == "0.1.0"
        res = client.fetch("test:hello", f"{tmp_path}/out/")
        assert res.path == tmp_path / "out" / "test_hello@0.2.0.wasm"
        assert res.path.read_bytes() == wasm2.read_bytes()
        assert client.fetch("test:hello", f"{tmp_path}/out/").up_to_date  # the same bytes: a re-run is fine
        res.path.write_bytes(b"other")
        with pytest.raises(OutputExists):
            client.fetch("test:hello", f"{tmp_path}/out/")
        with pytest.raises(NoMatchingVersion) as ei:
            client.resolve("test:hello@^1")
        assert "available: 0.1.0, 0.2.0" in ei.value.render()
