"""Helpers for integration tests against the real registry."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest


def write_config(tmp_path: Path, registry: Any, *, namespace: str = "test", extra: str = "", inline: bool = True) -> Path:
    """A config file mapping ``namespace`` to ``registry`` (inline metadata: no well-known lookup)."""
    if inline:
        mapping = (f'{{ registry = "{registry.host}", metadata = {{ preferredProtocol = "oci", '
                   f'oci = {{ registry = "{registry.host}" }} }} }}')
    else:
        mapping = f'"{registry.host}"'
    text = textwrap.dedent(f"""
        [namespace_registries]
        {namespace} = {mapping}
        [registry."{registry.host}".oci]
        protocol = "{registry.scheme}"
        """) + textwrap.dedent(extra)
    f = tmp_path / "pkgloader-test.toml"
    f.write_text(text)
    return f


@pytest.fixture
def registry_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """``registry_config(registry)`` writes a config for it and exports it as PKGLOADER_CONFIG
    (so the CLI and ``Config.load()`` both see it); the cache goes to ``tmp_path/cache``."""

    def make(registry: Any, **kw: Any) -> Path:
        f = write_config(tmp_path, registry, **kw)
        monkeypatch.setenv("PKGLOADER_CONFIG", str(f))
        monkeypatch.setenv("PKGLOADER_CACHE_DIR", str(tmp_path / "cache"))
        return f

    return make
