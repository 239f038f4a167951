"""The paths users take: a ghcr-like registry (HTTPS with a throw-away CA, Docker token auth
with anonymous pull, blob downloads redirected to a second host with a signed URL, tag lists
paged 100 at a time), the same through a real forward proxy (Debian's tinyproxy, CONNECT
tunnels), and a plain-HTTP registry through the proxy.

Every README command the issue names (publish, versions, info, fetch, lock, sync) runs in each
of these worlds, through the CLI and the library, and the tests check what users cannot see:
one token per repository scope, no credentials sent to the blob host, traffic really going
through the proxy, the signed URL's query never printed.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from pkgloader._client import AsyncClient, Client
from pkgloader._config import Config
from pkgloader._credentials import env_host_key
from pkgloader._errors import PkgLoaderError, RegistryTimeout
from support.fixtures import TOKEN_USERS

PUSHER, PUSH_PASSWORD = next(iter(TOKEN_USERS.items()))


@dataclass
class World:
    """Where pkgloader talks to: ``host`` (the registry name it is configured with), the
    servers behind it (any may be None) and how to count what they saw."""

    name: str
    host: str
    scheme: str
    ghcr: Any = None  # support.ghcr.GhcrLike
    registry: Any = None  # support.registry.RegistryServer (plain world)
    proxy: Any = None  # support.tinyproxy.TinyProxy
    ca_path: Path | None = None

    def config(self, tmp_path: Path, extra: str = "") -> Path:
        ca = f'extra_root_certificates = [{{ encoding = "pem", data = """{self.ca_path.read_text()}""" }}]\n' if self.ca_path else ""
        text = (
            "[namespace_registries]\n"
            f'test = {{ registry = "{self.host}", metadata = {{ preferredProtocol = "oci", oci = {{ registry = "{self.host}" }} }} }}\n'
            f'[registry."{self.host}".oci]\n'
            f'protocol = "{self.scheme}"\n' + ca + extra
        )
        f = tmp_path / f"pkgloader-{self.name}.toml"
        f.write_text(text)
        return f

    def tokens(self) -> list[tuple[tuple[str, ...], int]]:
        if self.ghcr is None:
            return []
        return [(r.scopes, r.status) for r in self.ghcr.token_server.token_requests()]

    def mark(self) -> None:
        if self.ghcr is not None:
            self.ghcr.token_server.mark()
            self.ghcr.front.mark()
        if self.proxy is not None:
            self.proxy.mark()


WORLDS = ["ghcr", "ghcr-via-proxy", "plain-via-proxy"]


@pytest.fixture(params=WORLDS)
def world(request: pytest.FixtureRequest, ghcr_registry_factory: Any, registry_factory: Any,
          tinyproxy_factory: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> World:
    name = request.param
    monkeypatch.delenv("NO_PROXY", raising=False)  # conftest's "*" would keep every request off the proxy
    # pushing needs credentials for the registry pkgloader is configured with (env, as CI does)
    if name.startswith("ghcr"):
        ghcr = ghcr_registry_factory()
        w = World(name, ghcr.host, "https", ghcr=ghcr, ca_path=ghcr.ca_path)
    else:
        reg = registry_factory()
        w = World(name, reg.host, "http", registry=reg)
    key = env_host_key(w.host)
    monkeypatch.setenv(f"PKGLOADER_REGISTRY_{key}_USERNAME", PUSHER)
    monkeypatch.setenv(f"PKGLOADER_REGISTRY_{key}_PASSWORD", PUSH_PASSWORD)
    if name.endswith("via-proxy"):
        w.proxy = tinyproxy_factory()
        monkeypatch.setenv("HTTPS_PROXY" if w.scheme == "https" else "HTTP_PROXY", w.proxy.url)
        if w.ghcr is not None:
            # the token server (plain http://) goes through the proxy too
            monkeypatch.setenv("HTTP_PROXY", w.proxy.url)
    monkeypatch.setenv("PKGLOADER_CONFIG", str(w.config(tmp_path)))
    monkeypatch.setenv("PKGLOADER_CACHE_DIR", str(tmp_path / "cache"))
    return w


def _publish(run_cli: Callable[..., Any], wasm: Path, ref: str) -> None:
    r = run_cli("publish", wasm, "--package", ref, "-q")
    assert r.code == 0, r.err


def test_publish_versions_info_fetch(world: World, run_cli: Callable[..., Any], wit_package: Callable[..., Path],
                                     tmp_path: Path) -> None:
    wasms = {v: wit_package("test", "pkg", v) for v in ("0.1.0", "0.2.0", "0.2.1")}
    for v, wasm in wasms.items():
        _publish(run_cli, wasm, f"test:pkg@{v}")

    world.mark()
    r = run_cli("versions", "test:pkg", "--json")
    assert r.code == 0, r.err
    assert [v["version"] for v in r.json()["versions"]] == ["0.1.0", "0.2.0", "0.2.1"]  # type: ignore[index]
    assert world.tokens() in ([], [(("repository:test/pkg:pull",), 200)])

    r = run_cli("info", "test:pkg@0.2", "--json")
    assert r.code == 0, r.err
    assert r.json()["version"] == "0.2.1"  # type: ignore[index]

    world.mark()
    out = tmp_path / "out" / "pkg.wasm"
    r = run_cli("fetch", "test:pkg@0.2", "-o", out, "--json")
    assert r.code == 0, r.err
    assert out.read_bytes() == wasms["0.2.1"].read_bytes()
    assert world.tokens() in ([], [(("repository:test/pkg:pull",), 200)])  # one token for the whole command
    if world.ghcr is not None:
        cdn = world.ghcr.front.cdn_requests()
        assert [(c.method, c.had_authorization, c.status) for c in cdn] == [("GET", False, 200)]
    if world.proxy is not None:
        seen = world.proxy.requests()
        assert seen, "nothing went through the proxy"
        if world.scheme == "https":
            hosts = {t for m, t in seen if m == "CONNECT"}
            assert world.host in hosts and world.ghcr.cdn_host in hosts  # registry and blob host tunnelled
        else:
            assert all(t.startswith(f"http://{world.host}/v2/") for m, t in seen)


def test_project_lock_and_sync(world: World, run_cli: Callable[..., Any], wit_package: Callable[..., Path],
                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dep = wit_package("test", "dep", "1.0.0")
    _publish(run_cli, dep, "test:dep@1.0.0")
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pkgloader.toml").write_text('[dependencies]\n"test:dep" = "1"\n')
    monkeypatch.chdir(project)
    world.mark()
    r = run_cli("sync", "--json")
    assert r.code == 0, r.err
    assert (project / "wit" / "deps" / "test-dep-1.0.0.wasm").read_bytes() == dep.read_bytes()
    assert 'name = "test:dep"' in (project / "pkgloader.lock").read_text()
    r = run_cli("sync", "--frozen", "--json")  # from the cache alone
    assert r.code == 0, r.err


def test_many_versions_of_one_repository_share_one_token(world: World, run_cli: Callable[..., Any],
                                                          wit_package: Callable[..., Path], tmp_path: Path) -> None:
    versions = [f"1.{i}.0" for i in range(8)]
    for v in versions:
        _publish(run_cli, wit_package("test", "pkg", v), f"test:pkg@{v}")
    world.mark()
    r = run_cli("fetch", *[f"test:pkg@={v}" for v in versions], "-o", f"{tmp_path / 'out'}/", "--json")
    assert r.code == 0, r.err
    assert world.tokens() in ([], [(("repository:test/pkg:pull",), 200)])


def test_async_client_shares_one_token(world: World, wit_package: Callable[..., Path], tmp_path: Path,
                                       run_cli: Callable[..., Any]) -> None:
    import asyncio

    versions = [f"2.{i}.0" for i in range(6)]
    for v in versions:
        _publish(run_cli, wit_package("test", "pkg", v), f"test:pkg@{v}")
    world.mark()

    async def main() -> list[Any]:
        async with AsyncClient(cache_dir=tmp_path / "acache") as c:
            return await c.fetch_many([f"test:pkg@={v}" for v in versions], tmp_path / "aout")

    results = asyncio.run(main())
    assert sorted(str(r.release.version) for r in results) == versions
    assert world.tokens() in ([], [(("repository:test/pkg:pull",), 200)])
    if world.ghcr is not None:
        assert all(not c.had_authorization for c in world.ghcr.front.cdn_requests())


# --------------------------------------------------------------------------- ghcr-only behaviour


@pytest.fixture
def ghcr(ghcr_registry: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wit_package: Callable[..., Path]) -> Any:
    w = World("ghcr", ghcr_registry.host, "https", ghcr=ghcr_registry, ca_path=ghcr_registry.ca_path)
    monkeypatch.setenv("PKGLOADER_CONFIG", str(w.config(tmp_path)))
    monkeypatch.setenv("PKGLOADER_CACHE_DIR", str(tmp_path / "cache"))
    wasm = wit_package("test", "pkg", "1.0.0")
    ghcr_registry.push_wasm("test/pkg", "1.0.0", wasm)
    w.wasm = wasm  # type: ignore[attr-defined]
    return w


def test_expired_signed_url_asks_the_registry_again(ghcr: Any, run_cli: Callable[..., Any], tmp_path: Path) -> None:
    front = ghcr.ghcr.front
    front.expire_next(1)
    ghcr.mark()
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "pkg.wasm", "-q")
    assert r.code == 0, r.err
    assert (tmp_path / "pkg.wasm").read_bytes() == ghcr.wasm.read_bytes()
    assert [(c.status, c.had_authorization) for c in front.cdn_requests()] == [(403, False), (200, False)]
    blob_gets = [p for m, p in front.requests() if m == "GET" and "/blobs/" in p]
    assert len(blob_gets) == 2  # a fresh signed URL from the registry, not the stale one again


def test_debug_lines_over_https_hide_the_signed_query(ghcr: Any, run_cli: Callable[..., Any], tmp_path: Path) -> None:
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "pkg.wasm", "-vv")
    assert r.code == 0, r.err
    lines = [ln for ln in r.err.splitlines() if " -> " in ln and ln.startswith("debug: ")]
    assert any(f"GET {ghcr.ghcr.url}/v2/test/pkg/manifests/1.0.0 -> 200 HTTP/1.1" in ln for ln in lines), r.err
    assert any("-> 307 redirect to https://localhost:" in ln and "<query hidden>" in ln for ln in lines), r.err
    assert any(f"GET https://{ghcr.ghcr.cdn_host}/blob/sha256:" in ln and "-> 200 HTTP/1.1" in ln for ln in lines), r.err
    assert "X-Amz-Signature" not in r.err and "Bearer" not in r.err
    assert "httpcore" not in r.err and "HTTP Request:" not in r.err  # no raw library events


def test_one_client_shared_by_threads_with_debug_logging(ghcr: Any, wit_package: Callable[..., Path], tmp_path: Path) -> None:
    """DEBUG logging never changes behaviour (it used to crash concurrent HTTP/2 requests)."""
    for i in range(1, 5):
        ghcr.ghcr.push_wasm("test/pkg", f"1.{i}.0", wit_package("test", "pkg", f"1.{i}.0"))
    ghcr.mark()
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    errors: list[BaseException] = []
    try:
        with Client(Config.load(), ) as c:
            def work(n: int) -> None:
                try:
                    v = f"1.{n % 5}.0"
                    c.fetch(f"test:pkg@={v}", tmp_path / f"t{n}" / "pkg.wasm")
                    c.versions("test:pkg")
                except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                    errors.append(exc)

            threads = [threading.Thread(target=work, args=(n,)) for n in range(20)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    assert errors == []
    assert any(r.name == "pkgloader.http" for r in records)
    assert len([t for t in ghcr.tokens() if t[1] == 200]) == 1


def test_certificate_refused_is_not_retried_and_names_the_certificate(ghcr_registry: Any, run_cli: Callable[..., Any],
                                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = World("ghcr", ghcr_registry.host, "https", ghcr=ghcr_registry)  # no CA configured
    monkeypatch.setenv("PKGLOADER_CONFIG", str(w.config(tmp_path)))
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "pkg.wasm", "--cache-dir", tmp_path / "c")
    assert r.code == 6
    # (the front's own server may print the client's refusal to this process's stderr too)
    assert f"\nerror[tls-error]: the TLS certificate of {w.host} was refused: " in "\n" + r.err
    assert "certificate issuer:  CN=pkgloader test registry CA" in r.err
    assert "SSL_CERT_FILE" in r.err
    # SSL_CERT_FILE makes the same command work (OpenSSL's store, as curl and pip read it)
    ghcr_registry.push_wasm("test/pkg", "1.0.0", b"\0asm\r\0\1\0")
    monkeypatch.setenv("SSL_CERT_FILE", str(ghcr_registry.ca_path))
    from pkgloader import _http

    monkeypatch.setattr(_http, "_CONTEXTS", {})
    r = run_cli("info", "test:pkg@=1.0.0", "--cache-dir", tmp_path / "c", "--json")
    assert r.code == 0, r.err


# --------------------------------------------------------------------------- honest timeouts


class _Silent:
    """Accepts connections, reads the request, and then sends ``trickle`` one byte every
    ``every`` seconds (nothing at all with ``trickle=b""``), until closed."""

    def __init__(self, trickle: bytes = b"", every: float = 0.2) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.trickle, self.every = trickle, every
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                for b in self.trickle:
                    if self._stop.wait(self.every):
                        return
                    conn.sendall(bytes([b]))
                self._stop.wait(30)
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


@pytest.mark.parametrize("trickle", [b"", b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000])
def test_a_registry_that_never_answers_is_bounded(trickle: bytes, run_cli: Callable[..., Any], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    srv = _Silent(trickle)
    try:
        host = f"127.0.0.1:{srv.port}"
        w = World("silent", host, "http")
        monkeypatch.setenv("PKGLOADER_CONFIG", str(w.config(tmp_path, "[pkgloader]\ntimeout = 1\nstall_timeout = 0.5\n")))
        r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "pkg.wasm", "--cache-dir", tmp_path / "c", "--json")
    finally:
        srv.close()
    assert r.code == 6, r.err
    err = json.loads(r.out)["error"]
    assert err["code"] == "timeout"
    if trickle:
        assert err["message"] == f"http://{host}/v2/test/pkg/manifests/1.0.0 did not answer completely within 1 s"
    else:
        assert err["message"] == f"http://{host}/v2/test/pkg/manifests/1.0.0 sent nothing for 0.5 s"
    assert srv.accepted == 2  # bounded: tried once more, not once per retry (no wall-clock assertion)


def test_library_raises_only_pkgloader_errors_on_timeouts(tmp_path: Path) -> None:
    srv = _Silent()
    try:
        cfg = Config.from_toml(
            "[namespace_registries]\n"
            f'test = {{ registry = "127.0.0.1:{srv.port}", metadata = {{ preferredProtocol = "oci" }} }}\n'
            "[pkgloader]\ntimeout = 0.5\nstall_timeout = 0.3\nretries = 0\n")
        with Client(cfg, cache_dir=tmp_path / "c") as c, pytest.raises(PkgLoaderError) as info:
            c.versions("test:pkg")
    finally:
        srv.close()
    assert isinstance(info.value, RegistryTimeout)


def test_large_https_download_goes_into_blocks_and_is_written_once(ghcr: Any, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Over TLS and through the CDN redirect, with progress reported, a large body takes the
    same way as over plain HTTP: received into the verifying writer's blocks (O_DIRECT where
    the file system takes it), then hard-linked to the output."""
    import os

    from pkgloader import _digest
    from pkgloader._engine import SHARE_MIN
    from support.wit import custom_section

    blocks: list[bool] = []
    real_blocks = _digest.VerifyingWriter.blocks
    monkeypatch.setattr(_digest.VerifyingWriter, "blocks", lambda self: blocks.append(real_blocks(self)) or blocks[-1])
    big = ghcr.wasm.read_bytes() + custom_section(b"padding", os.urandom(SHARE_MIN + 12345))
    ghcr.ghcr.push_wasm("test/big", "1.0.0", big)
    ticks: list[int] = []
    with Client(Config.load(), progress=lambda what, size: ticks.append) as c:  # as a drawn progress bar does
        res = c.fetch("test:big@=1.0.0", tmp_path / "out" / "big.wasm")
        blob = c.engine.cache.blob_path(res.release.digest)
    assert res.path.read_bytes() == big
    assert sum(ticks) == len(big)
    assert blocks == [True] if _digest._O_DIRECT else not any(blocks)
    assert os.path.samefile(res.path, blob)
    assert [(r.status, r.had_authorization) for r in ghcr.ghcr.front.cdn_requests()][-1:] == [(200, False)]


def test_proxy_credentials_are_used_and_never_printed(ghcr: Any, tinyproxy_factory: Any, run_cli: Callable[..., Any],
                                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = tinyproxy_factory(basic_auth=("corp", "proxy-pass-7781"))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url_with_credentials)
    monkeypatch.setenv("HTTP_PROXY", proxy.url_with_credentials)
    proxy.mark()
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "pkg.wasm", "-vv")
    assert r.code == 0, r.err
    assert (tmp_path / "pkg.wasm").read_bytes() == ghcr.wasm.read_bytes()
    assert ("CONNECT", ghcr.host) in proxy.requests() and proxy.denied() == 0
    assert "proxy-pass-7781" not in r.err + r.out
    # a wrong password: the proxy refuses the tunnel; the error names the proxy, not the secret
    monkeypatch.setenv("HTTPS_PROXY", proxy.url_with_credentials.replace("proxy-pass-7781", "wrong-pass-1234"))
    proxy.mark()
    r = run_cli("info", "test:pkg@=1.0.0", "--cache-dir", tmp_path / "other", "--json")
    assert r.code == 6, r.err
    err = json.loads(r.out)["error"]
    assert err["message"].startswith(f"the proxy {proxy.url} refused the tunnel to {ghcr.host}: 40")
    assert "wrong-pass-1234" not in r.err + r.out
    assert len([m for m, _ in proxy.requests() if m == "CONNECT"]) == 1  # not retried
