"""Config files for tests that talk to a real registry."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any


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
