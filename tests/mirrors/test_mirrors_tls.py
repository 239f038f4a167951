"""A mirror reached with its own TLS settings (the TLS keys of a mirror table): a TLS
pull-through cache whose throw-away CA only the mirror table names, one that wants a client
certificate (docker-registry's ``http.tls.clientcas``), and what happens without them.

The origin is a plain-HTTP registry behind a counting FaultProxy ("front")."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from pkgloader import Client
from support.config import write_config
from support.proxy import FaultProxy
from support.pullthrough import PullThroughRegistry
from support.registry import IssuedCert
from support.wit import WitSpec, build_spec

BASE = WitSpec("test", "base", "1.0.0")


class MutualTlsPullThrough(PullThroughRegistry):
    """A TLS pull-through cache that requires a client certificate issued by its own CA."""

    client: IssuedCert | None = None

    def _prepare_auth(self) -> Any:
        auth = super()._prepare_auth()
        assert self.ca is not None
        self.client = self.ca.issue("pkgloader test client", server=False)
        (self.workdir / "client.pem").write_text(self.client.cert_pem)
        (self.workdir / "client.key").write_text(self.client.key_pem)
        return auth

    def _config(self, auth: Any) -> dict[str, Any]:
        config = super()._config(auth)
        config["http"]["tls"]["clientcas"] = [str(self.ca_path)]
        return config

    def verify(self) -> Any:  # the readiness probe presents the client certificate
        ctx = super().verify()
        if self.client is not None and not isinstance(ctx, bool):
            ctx.load_cert_chain(self.workdir / "client.pem", self.workdir / "client.key")
        return ctx


@pytest.fixture
def origin(registry_factory: Callable[..., Any], tmp_path: Path) -> Any:
    reg = registry_factory()
    (tmp_path / "publish").mkdir()
    from pkgloader._config import Config

    cfg = Config.load(config_files=[write_config(tmp_path / "publish", reg)], cache_dir=tmp_path / "publish-cache", env={})
    with Client(cfg) as c:
        c.publish(build_spec(tmp_path / "built", BASE), BASE.package_id)
    return reg


@pytest.fixture
def front(origin: Any) -> Iterator[FaultProxy]:
    with FaultProxy(origin) as proxy:
        yield proxy


@pytest.fixture
def tls_mirror(origin: Any, registry_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PullThroughRegistry]:
    with PullThroughRegistry(tmp_path_factory.mktemp("tls-mirror"), binary=registry_binary, remote_url=origin.url,
                             tls=True) as m:
        yield m


def _ca(pem: str) -> str:
    return f'extra_root_certificates = [{{ encoding = "pem", data = """{pem}""" }}]'


def _fetch(run_cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, front: FaultProxy,
           mirror_table: str, name: str) -> Any:
    d = tmp_path / name
    d.mkdir()
    cfg = write_config(d, front, extra=f"mirrors = [{mirror_table}]\n")
    monkeypatch.setenv("PKGLOADER_CONFIG", str(cfg))
    monkeypatch.setenv("PKGLOADER_CACHE_DIR", str(d / "cache"))
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.delenv("SSL_CLIENT_CERT", raising=False)
    front.mark()
    return run_cli("fetch", "test:base@1.0.0", "-o", str(d / "out.wasm"), "--json")


def _mirror_warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning: mirror")]


def test_a_tls_mirror_whose_ca_only_the_mirror_table_names(origin: Any, front: FaultProxy, tls_mirror: PullThroughRegistry,
                                                            run_cli: Callable[..., Any], tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    table = f'{{ location = "{tls_mirror.host}", protocol = "https", resolve = true, {_ca(tls_mirror.ca_pem)} }}'
    r = _fetch(run_cli, monkeypatch, tmp_path, front, table, "own-ca")
    assert r.code == 0, r.err
    assert _mirror_warnings(r.err) == []
    (fetched,) = r.json()["fetched"]
    assert fetched["served_by"] == {"manifest": f"mirror {tls_mirror.host}", "content": f"mirror {tls_mirror.host}"}
    assert front.requests() == []  # tags, manifest and content all from the TLS mirror

    # the same mirror without its CA: certificate refused, the mirror skipped with one warning,
    # the origin serves (its registry entry has no CA either: nothing else trusts the mirror)
    bare = f'{{ location = "{tls_mirror.host}", protocol = "https", resolve = true }}'
    r = _fetch(run_cli, monkeypatch, tmp_path, front, bare, "no-ca")
    assert r.code == 0, r.err
    (warning,) = _mirror_warnings(r.err)
    assert warning.startswith(f"warning: mirror {tls_mirror.host} failed (tls-error: "), warning
    assert r.json()["fetched"][0]["served_by"] == {"manifest": f"origin {front.host}", "content": f"origin {front.host}"}

    # accept_invalid_certificates = true in the mirror table: no CA needed for that mirror
    lax = f'{{ location = "{tls_mirror.host}", protocol = "https", resolve = true, accept_invalid_certificates = true }}'
    r = _fetch(run_cli, monkeypatch, tmp_path, front, lax, "lax")
    assert r.code == 0 and _mirror_warnings(r.err) == [], r.err
    assert r.json()["fetched"][0]["served_by"]["content"] == f"mirror {tls_mirror.host}"


def test_a_mirror_with_a_client_certificate_of_its_own(origin: Any, front: FaultProxy, registry_binary: str,
                                                        run_cli: Callable[..., Any], tmp_path: Path,
                                                        tmp_path_factory: pytest.TempPathFactory,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    with MutualTlsPullThrough(tmp_path_factory.mktemp("mtls-mirror"), binary=registry_binary, remote_url=origin.url,
                              tls=True) as m:
        cert, key = m.workdir / "client.pem", m.workdir / "client.key"
        table = (f'{{ location = "{m.host}", protocol = "https", resolve = true, {_ca(m.ca_pem)}, '
                 f'client_certificate = {json.dumps(str(cert))}, client_key = {json.dumps(str(key))} }}')
        r = _fetch(run_cli, monkeypatch, tmp_path, front, table, "mtls")
        assert r.code == 0 and _mirror_warnings(r.err) == [], r.err
        assert r.json()["fetched"][0]["served_by"] == {"manifest": f"mirror {m.host}", "content": f"mirror {m.host}"}
        assert front.requests() == []

        # without the client certificate the mirror refuses the handshake: skipped, the origin serves
        table = f'{{ location = "{m.host}", protocol = "https", resolve = true, {_ca(m.ca_pem)} }}'
        r = _fetch(run_cli, monkeypatch, tmp_path, front, table, "no-client-cert")
        assert r.code == 0, r.err
        (warning,) = _mirror_warnings(r.err)
        assert warning.startswith(f"warning: mirror {m.host} failed ("), warning
        assert r.json()["fetched"][0]["served_by"]["content"] == f"origin {front.host}"

        # a mirror without TLS keys of its own gets the origin's trust settings (here the CA) but
        # never the origin's client certificate (a credential of the origin's): refused likewise
        d = tmp_path / "origin-cert"
        d.mkdir()
        cfg = write_config(d, front, extra=f'{_ca(m.ca_pem)}\nclient_certificate = {json.dumps(str(cert))}\n'
                                           f'client_key = {json.dumps(str(key))}\n'
                                           f'mirrors = [{{ location = "{m.host}", protocol = "https", resolve = true }}]\n')
        monkeypatch.setenv("PKGLOADER_CONFIG", str(cfg))
        monkeypatch.setenv("PKGLOADER_CACHE_DIR", str(d / "cache"))
        r = run_cli("fetch", "test:base@1.0.0", "-o", str(d / "out.wasm"), "--json")
        assert r.code == 0, r.err
        (warning,) = _mirror_warnings(r.err)
        assert "refused the client certificate" in warning, warning
        assert warning.startswith(f"warning: mirror {m.host} failed ("), warning
        assert r.json()["fetched"][0]["served_by"]["content"] == f"origin {front.host}"


def test_mirror_tls_keys_are_validated_as_the_oci_tables_are(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    from pkgloader._config import Config

    f = tmp_path / "c.toml"
    f.write_text(textwrap.dedent('''
        [registry."r.example".oci]
        mirrors = [{ location = "m.internal", client_certificate = "certs/client.pem", client_key = "certs/client.key", extra_root_certificates = [{ encoding = "pem", data = "-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----" }] }]
        '''))
    cfg = Config.load(config_files=[f], env={}, cwd=tmp_path)
    assert cfg.warnings == []
    (m,) = cfg.registries["r.example"].backends["oci"]["mirrors"].value
    assert m["client_certificate"] == str(tmp_path / "certs" / "client.pem")  # relative to the config file
    assert m["client_key"] == str(tmp_path / "certs" / "client.key")
    for bad, message in (
        ('[{ location = "m", accept_invalid_certificates = "yes" }]', "accept_invalid_certificates"),
        ('[{ location = "m", extra_root_certificates = [{ data = "not a cert" }] }]', "data is not a PEM certificate"),
        ('[{ location = "m", client_key = "k.pem" }]', "client_key without client_certificate"),
    ):
        f.write_text(f'[registry."r.example".oci]\nmirrors = {bad}\n')
        cfg = Config.load(config_files=[f], env={}, cwd=tmp_path)
        assert len(cfg.warnings) == 1 and message in cfg.warnings[0], cfg.warnings


def test_the_async_client_and_the_library_use_the_mirrors_tls_settings(origin: Any, front: FaultProxy,
                                                                        tls_mirror: PullThroughRegistry,
                                                                        tmp_path: Path) -> None:
    import asyncio

    from pkgloader import AsyncClient
    from pkgloader._config import Config

    table = f'{{ location = "{tls_mirror.host}", protocol = "https", resolve = true, {_ca(tls_mirror.ca_pem)} }}'
    (tmp_path / "lib").mkdir()
    cfg = Config.load(config_files=[write_config(tmp_path / "lib", front, extra=f"mirrors = [{table}]\n")],
                      cache_dir=tmp_path / "lib-cache", env={})
    front.mark()

    async def main() -> Any:
        async with AsyncClient(cfg) as client:
            return await client.fetch("test:base@=1.0.0", tmp_path / "async.wasm")

    result = asyncio.run(main())
    assert result.path.read_bytes()[:4] == b"\0asm"
    assert front.requests() == []  # all from the TLS mirror

    cfg = Config.load(config_files=[write_config(tmp_path / "lib", front, extra=f"mirrors = [{table}]\n")],
                      cache_dir=tmp_path / "sync-cache", env={})
    with Client(cfg) as client:
        client.fetch("test:base@=1.0.0", tmp_path / "sync.wasm")
    assert front.requests() == []
