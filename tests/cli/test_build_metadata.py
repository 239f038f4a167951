"""Tags with build metadata on a real registry (README: Package references, build metadata).

OCI tags cannot hold ``+``: ``1.2.3+build.5`` is the tag ``1.2.3_build.5``, and a registry
can hold it beside ``1.2.3`` as another artifact. Every tag is listed; an exact requirement
naming build metadata selects that tag; otherwise the tag without build metadata wins a tie,
then the lexically lowest build.
"""

from __future__ import annotations

import hashlib
import json
import urllib.request
from pathlib import Path
from typing import Any

from support.wit import custom_section


def _publish(run_cli: Any, wit_package: Any, tmp_path: Path, name: str, tag_version: str, label: bytes) -> bytes:
    base = wit_package("test", name, tag_version.split("+")[0])
    data = base.read_bytes() + custom_section(b"label", label)
    f = tmp_path / f"{name}-{tag_version}.wasm"
    f.write_bytes(data)
    r = run_cli("publish", f, "--package", f"test:{name}@{tag_version}", "-q")
    assert r.code == 0, r
    return data


def test_tags_with_and_without_build_metadata(registry, registry_config, wit_package, run_cli,  # type: ignore[no-untyped-def]
                                              tmp_path: Path) -> None:
    registry_config(registry)
    plain = _publish(run_cli, wit_package, tmp_path, "tags", "1.2.3", b"plain")
    build = _publish(run_cli, wit_package, tmp_path, "tags", "1.2.3+build.5", b"build.5")
    older = _publish(run_cli, wit_package, tmp_path, "tags", "1.2.2", b"older")
    with urllib.request.urlopen(f"{registry.url}/v2/test/tags/tags/list") as resp:  # what the registry holds
        assert sorted(json.load(resp)["tags"]) == ["1.2.2", "1.2.3", "1.2.3_build.5"]

    # every tag is listed, build metadata included
    r = run_cli("versions", "test:tags")
    assert (r.code, r.out) == (0, "1.2.2\n1.2.3\n1.2.3+build.5\n")
    assert [v["version"] for v in run_cli("versions", "test:tags", "--json").json()["versions"]] == [
        "1.2.2", "1.2.3", "1.2.3+build.5"]

    def fetched(spec: str) -> tuple[str, bytes]:
        out = tmp_path / "out" / hashlib.sha256(spec.encode()).hexdigest()[:8]
        r = run_cli("fetch", spec, "-o", out, "--json")
        assert r.code == 0, r
        return r.json()["fetched"][0]["version"], out.read_bytes()

    # the tag without build metadata wins a tie, for a bare fetch and for =1.2.3 or ^1
    assert fetched("test:tags") == ("1.2.3", plain)
    assert fetched("test:tags@=1.2.3") == ("1.2.3", plain)
    assert fetched("test:tags@^1.2") == ("1.2.3", plain)
    # an exact requirement naming build metadata selects that tag
    assert fetched("test:tags@=1.2.3+build.5") == ("1.2.3+build.5", build)
    assert fetched("test:tags@=1.2.2") == ("1.2.2", older)
    r = run_cli("info", "test:tags@=1.2.3+build.5", "--json")
    assert (r.code, r.json()["version"], r.json()["location"].rsplit(":", 1)[1]) == (0, "1.2.3+build.5", "1.2.3_build.5")
    # ... and only that tag: other build metadata is not found (exit 3), not the plain tag
    r = run_cli("fetch", "test:tags@=1.2.3+build.6", "-o", tmp_path / "x.wasm")
    assert r.code == 3 and r.err.startswith("error[package-not-found]: ") and not (tmp_path / "x.wasm").exists()


def test_only_build_metadata_tags_take_the_lexically_lowest(registry, registry_config, wit_package,  # type: ignore[no-untyped-def]
                                                             run_cli, tmp_path: Path) -> None:
    registry_config(registry)
    b2 = _publish(run_cli, wit_package, tmp_path, "builds", "2.0.0+b.2", b"b.2")
    b10 = _publish(run_cli, wit_package, tmp_path, "builds", "2.0.0+b.10", b"b.10")
    b1 = _publish(run_cli, wit_package, tmp_path, "builds", "2.0.0+b.1", b"b.1")
    r = run_cli("versions", "test:builds")
    assert (r.code, r.out) == (0, "2.0.0+b.1\n2.0.0+b.10\n2.0.0+b.2\n")
    for spec in ("test:builds", "test:builds@=2.0.0", "test:builds@2"):  # "b.1" < "b.10" < "b.2"
        out = tmp_path / f"{spec.replace(':', '_')}.wasm"
        r = run_cli("fetch", spec, "-o", out, "-q")
        assert r.code == 0 and out.read_bytes() == b1, (spec, r)
    out = tmp_path / "b10.wasm"
    assert run_cli("fetch", "test:builds@=2.0.0+b.10", "-o", out, "-q").code == 0 and out.read_bytes() == b10
    assert b2 != b10
