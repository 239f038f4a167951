"""Registry metadata parsing, discovery on a loopback server, and source resolution."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from pkgloader._config import Config, global_config_path
from pkgloader._metadata import RegistryMetadata
from pkgloader._ref import PackageRef
from pkgloader._source import resolve_source
from support.httpserver import StaticServer


def write_global(text: str) -> None:
    p = global_config_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text).lstrip())


def js(data: object) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "application/json"}, json.dumps(data).encode()


# --- metadata shapes ---------------------------------------------------------------------


def test_current_shape() -> None:
    m = RegistryMetadata.from_json({"preferredProtocol": "oci", "oci": {"registry": "ghcr.io", "namespacePrefix": "webassembly/"}})
    assert (m.protocol, m.oci_registry, m.oci_namespace_prefix) == ("oci", "ghcr.io", "webassembly/")


def test_single_protocol_implied() -> None:
    assert RegistryMetadata.from_json({"warg": {"url": "https://w.example"}}).protocol == "warg"
    assert RegistryMetadata.from_json({"oci": {}, "warg": {}}).protocol is None


def test_legacy_shapes() -> None:
    m = RegistryMetadata.from_json({"ociRegistry": "ghcr.io", "ociNamespacePrefix": "x/"})
    assert (m.protocol, m.oci_registry, m.oci_namespace_prefix) == ("oci", "ghcr.io", "x/")
    w = RegistryMetadata.from_json({"wargUrl": "https://warg.example"})
    assert (w.protocol, w.warg_url) == ("warg", "https://warg.example")


@pytest.mark.parametrize("bad", [[], {"preferredProtocol": 3}, {"oci": "x"}, {"ociRegistry": 1}, {"oci": {"registry": 5}}])
def test_invalid_metadata(bad: object) -> None:
    with pytest.raises(ValueError):
        RegistryMetadata.from_json(bad)


# --- discovery ---------------------------------------------------------------------------


def test_discovery_current_path_and_disk_cache() -> None:
    meta = {"preferredProtocol": "oci", "oci": {"registry": "oci.example:5000", "namespacePrefix": "pre/"}}
    with StaticServer({"/.well-known/wasm-pkg/registry.json": js(meta)}) as srv:
        write_global(f'[namespace_registries]\nacme = "{srv.host}"\n')
        src = resolve_source(Config.load(), PackageRef.parse("acme:tool"))
        assert (src.backend, src.oci_registry, src.oci_repository) == ("oci", "oci.example:5000", "pre/acme/tool")
        assert src.metadata.how == f"fetched http://{srv.host}/.well-known/wasm-pkg/registry.json"
        assert srv.requests == [("GET", "/.well-known/wasm-pkg/registry.json")]
        # a second resolution (think: a second process) is answered from the disk cache
        src2 = resolve_source(Config.load(), PackageRef.parse("acme:other"))
        assert src2.metadata.how.startswith("cached ")
        assert src2.oci_repository == "pre/acme/other"
        assert len(srv.requests) == 1


def test_discovery_legacy_path_fallback() -> None:
    with StaticServer({"/.well-known/warg/registry.json": js({"ociRegistry": "legacy.example", "ociNamespacePrefix": "l/"})}) as srv:
        write_global(f'default_registry = "{srv.host}"\n')
        src = resolve_source(Config.load(), PackageRef.parse("acme:tool"))
        assert src.oci_registry == "legacy.example" and src.oci_repository == "l/acme/tool"
        assert [p for _, p in srv.requests] == ["/.well-known/wasm-pkg/registry.json", "/.well-known/warg/registry.json"]


def test_discovery_404_means_registry_is_the_oci_host() -> None:
    with StaticServer() as srv:
        write_global(f'default_registry = "{srv.host}"\n')
        src = resolve_source(Config.load(), PackageRef.parse("acme:tool"))
        assert (src.backend, src.oci_registry, src.oci_repository, src.oci_scheme) == ("oci", srv.host, "acme/tool", "http")
        assert src.metadata.warning is None


def test_discovery_failure_warns_with_assumed_host(caplog: pytest.LogCaptureFixture) -> None:
    with StaticServer({"/.well-known/wasm-pkg/registry.json": (200, {}, b"{not json")}) as srv:
        write_global(f'default_registry = "{srv.host}"\n')
        src = resolve_source(Config.load(), PackageRef.parse("acme:tool"))
    assert src.oci_registry == srv.host
    assert src.metadata.warning == (
        f"could not read registry metadata for {srv.host} (registry metadata at "
        f"http://{srv.host}/.well-known/wasm-pkg/registry.json is invalid: Expecting property name enclosed in "
        f"double quotes: line 1 column 2 (char 1)); assuming {srv.host} is itself an OCI registry "
        f"(registry chosen by default_registry ({src.choice.origin}))"
    )
    assert src.metadata.warning in caplog.text


def test_unreachable_registry_warns() -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    write_global(f'default_registry = "127.0.0.1:{port}"\n')
    src = resolve_source(Config.load(), PackageRef.parse("acme:tool"))
    assert src.metadata.warning is not None and "cannot connect" in src.metadata.warning


def test_inline_metadata_skips_fetch() -> None:
    with StaticServer() as srv:
        write_global(f"""
            [namespace_registries]
            acme = {{ registry = "{srv.host}", metadata = {{ oci = {{ registry = "inline.example" }} }} }}
            """)
        src = resolve_source(Config.load(), PackageRef.parse("acme:tool"))
        assert src.oci_registry == "inline.example" and src.metadata.how == "inline config"
        assert srv.requests == []


def test_local_backend_needs_no_metadata(tmp_path: Path) -> None:
    write_global(f'default_registry = "files"\n[registry."files".local]\nroot = "{tmp_path}"\n')
    src = resolve_source(Config.load(), PackageRef.parse("acme:tool"))
    assert src.backend == "local" and src.location == str(tmp_path / "acme" / "tool")
    assert src.metadata.how == "not fetched (local backend)"


def test_warg_from_metadata() -> None:
    with StaticServer({"/.well-known/wasm-pkg/registry.json": js({"preferredProtocol": "warg", "warg": {"url": "http://127.0.0.1:1/"}})}) as srv:
        write_global(f'default_registry = "{srv.host}"\n')
        src = resolve_source(Config.load(), PackageRef.parse("acme:tool"))
        assert (src.backend, src.warg_url, src.backend_rule) == ("warg", "http://127.0.0.1:1", "registry metadata")


def test_metadata_cannot_force_local() -> None:
    from pkgloader._errors import RegistryError

    with StaticServer({"/.well-known/wasm-pkg/registry.json": js({"preferredProtocol": "local", "local": {}})}) as srv:
        write_global(f'default_registry = "{srv.host}"\n')
        with pytest.raises(RegistryError):
            resolve_source(Config.load(), PackageRef.parse("acme:tool"))


def test_offline_skips_discovery() -> None:
    with StaticServer() as srv:
        write_global(f'default_registry = "{srv.host}"\n')
        src = resolve_source(Config.load(), PackageRef.parse("acme:tool"), offline=True)
        assert src.metadata.how == "not fetched (offline)" and srv.requests == []
