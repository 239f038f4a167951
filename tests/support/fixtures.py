"""pytest fixtures shared by all test suites (registries, token server, WIT packages).

Imported with ``from support.fixtures import *`` by tests/conftest.py.

Real servers, all on 127.0.0.1, all function-scoped (a registry starts in ~0.1 s, so every
test gets its own empty one and exact request counts without cross-test noise):

    registry          plain HTTP, anonymous, deletes enabled
    tls_registry      HTTPS (fresh CA: .ca_pem/.ca_path/.cert_dir) + htpasswd basic auth
                      (.username/.password = TLS_USERS' first entry)
    token_server      Docker token server (users alice/bob, anonymous pull allowed)
    token_registry    plain HTTP registry using token_server for auth (.token_server)
    registry_factory  registry_factory(tls=..., htpasswd=..., token_server=...) -> RegistryServer
    token_server_factory  token_server_factory(users=..., grants=..., anonymous_pull=...) -> TokenServer
    fault_proxy       fault_proxy(registry_or_url, tls=None) -> FaultProxy (started)
    ghcr_registry     ghcr-like set-up (support.ghcr.GhcrLike): token server with anonymous
                      pull + HTTPS token registry + CdnFront (blob GETs 307 to a pre-signed
                      localhost "CDN" URL, tag lists paged by 100); clients use .host/.url
                      and .ca_path; seed with .push_wasm(repo, tag, data) / .push_tags(...)
    ghcr_registry_factory  ghcr_registry_factory(tls=True, page_size=100, **token_server_kw)
    tinyproxy         a started support.tinyproxy.TinyProxy (real forward proxy, no auth):
                      .url, .requests() -> [("GET", url) | ("CONNECT", "host:port")]
    tinyproxy_factory tinyproxy_factory(basic_auth=("user", "pass")) -> TinyProxy (started)
    oci_client        oci_client(registry, **kw) -> OciClient (closed at teardown)
    wit_package       wit_package(namespace, name, version="0.1.0", body=None, deps=None, salt="") -> Path

Everything is stopped at teardown, also when the test fails; a registry's stderr tail is
printed at teardown, so it shows up in the report of a failing test.
"""

from __future__ import annotations

import contextlib
import itertools
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from support.cdnfront import CdnFront
from support.ghcr import GhcrLike
from support.oci import OciClient
from support.proxy import FaultProxy
from support.registry import RegistryServer, find_binary
from support.tinyproxy import TinyProxy
from support.tokenserver import TokenServer
from support.wit import build_wit_package, wasm_tools

__all__ = [
    "TLS_USERS",
    "TOKEN_USERS",
    "fault_proxy",
    "ghcr_registry",
    "ghcr_registry_factory",
    "oci_client",
    "registry",
    "registry_binary",
    "registry_factory",
    "tinyproxy",
    "tinyproxy_binary",
    "tinyproxy_factory",
    "tls_registry",
    "token_registry",
    "token_server",
    "token_server_factory",
    "wasm_tools_binary",
    "wit_package",
]

TLS_USERS = {"alice": "alice-secret-pw", "bob": "bob-secret-pw"}
TOKEN_USERS = {"alice": "alice-password", "bob": "bob-password"}


@pytest.fixture(scope="session")
def registry_binary() -> str:
    """Path of ``docker-registry``; a missing binary fails the test (never skips)."""
    try:
        return find_binary("docker-registry")
    except RuntimeError as exc:
        pytest.fail(f"{exc}. CI installs it in .ci/run.", pytrace=False)


@pytest.fixture(scope="session")
def wasm_tools_binary() -> str:
    try:
        return wasm_tools()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def registry_factory(
    registry_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., RegistryServer]]:
    """Start registries with any set-up: ``registry_factory(tls=True, htpasswd={...})``,
    ``registry_factory(token_server=ts)``, ``registry_factory(relative_urls=True)``."""
    started: list[RegistryServer] = []
    with contextlib.ExitStack() as stack:

        def make(**kwargs: Any) -> RegistryServer:
            server = RegistryServer(tmp_path_factory.mktemp("registry"), binary=registry_binary, **kwargs)
            stack.enter_context(server)
            started.append(server)
            return server

        try:
            yield make
        finally:
            for server in started:
                print(f"--- {server.url} ({server.auth_kind}) stderr tail, log in {server.workdir} ---")
                print(server.stderr_tail(10))


@pytest.fixture
def registry(registry_factory: Callable[..., RegistryServer]) -> RegistryServer:
    """Anonymous plain-HTTP registry."""
    return registry_factory()


@pytest.fixture
def tls_registry(registry_factory: Callable[..., RegistryServer]) -> RegistryServer:
    """HTTPS registry (self-signed CA) with htpasswd basic auth for TLS_USERS."""
    return registry_factory(tls=True, htpasswd=dict(TLS_USERS))


@pytest.fixture
def token_server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., TokenServer]]:
    """``token_server_factory(users=..., grants=..., anonymous_pull=False, lifetime=...)``."""
    with contextlib.ExitStack() as stack:

        def make(**kwargs: Any) -> TokenServer:
            kwargs.setdefault("users", dict(TOKEN_USERS))
            return stack.enter_context(TokenServer(tmp_path_factory.mktemp("token"), **kwargs))

        yield make


@pytest.fixture
def token_server(token_server_factory: Callable[..., TokenServer]) -> TokenServer:
    """Token server: users TOKEN_USERS may pull/push/delete everything, anonymous may pull."""
    return token_server_factory()


@pytest.fixture
def token_registry(registry_factory: Callable[..., RegistryServer], token_server: TokenServer) -> RegistryServer:
    """Plain-HTTP registry with token auth via ``token_server`` (also ``.token_server``)."""
    return registry_factory(token_server=token_server)


@pytest.fixture
def fault_proxy() -> Iterator[Callable[..., FaultProxy]]:
    """``fault_proxy(registry)`` → a started FaultProxy in front of it (``.url``)."""
    with contextlib.ExitStack() as stack:

        def make(upstream: RegistryServer | str, **kwargs: Any) -> FaultProxy:
            return stack.enter_context(FaultProxy(upstream, **kwargs))

        yield make


@pytest.fixture
def ghcr_registry_factory(
    registry_factory: Callable[..., RegistryServer], token_server_factory: Callable[..., TokenServer]
) -> Iterator[Callable[..., GhcrLike]]:
    """``ghcr_registry_factory(tls=True, page_size=100, anonymous_pull=True, ...)`` → a
    GhcrLike: token server (TOKEN_USERS; other keywords go to it) + token registry + a
    started CdnFront in front of it."""
    with contextlib.ExitStack() as stack:

        def make(*, tls: bool = True, page_size: int | None = 100, **token_kwargs: Any) -> GhcrLike:
            ts = token_server_factory(**token_kwargs)
            reg = registry_factory(tls=tls, token_server=ts)
            front = stack.enter_context(CdnFront(reg, page_size=page_size))
            ghcr = GhcrLike(ts, reg, front)
            stack.callback(ghcr.close)
            return ghcr

        yield make


@pytest.fixture
def ghcr_registry(ghcr_registry_factory: Callable[..., GhcrLike]) -> GhcrLike:
    """ghcr-like registry (see support.ghcr): ``.host``/``.url`` (the front), ``.ca_path``,
    ``.push_wasm(repo, tag, data)``, ``.front`` (requests, cdn_requests, expire_next)."""
    return ghcr_registry_factory()


@pytest.fixture(scope="session")
def tinyproxy_binary() -> str:
    """Path of ``tinyproxy``; a missing binary fails the test (never skips)."""
    try:
        return find_binary("tinyproxy")
    except RuntimeError as exc:
        pytest.fail(f"{exc} (apt-get install tinyproxy). CI installs it in .ci/run.", pytrace=False)


@pytest.fixture
def tinyproxy_factory(
    tinyproxy_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., TinyProxy]]:
    """``tinyproxy_factory(basic_auth=("user", "pass"))`` → a started TinyProxy."""
    started: list[TinyProxy] = []
    with contextlib.ExitStack() as stack:

        def make(**kwargs: Any) -> TinyProxy:
            proxy = TinyProxy(tmp_path_factory.mktemp("tinyproxy"), binary=tinyproxy_binary, **kwargs)
            stack.enter_context(proxy)
            started.append(proxy)
            return proxy

        try:
            yield make
        finally:
            for proxy in started:
                print(f"--- tinyproxy {proxy.url} log tail, in {proxy.workdir} ---")
                print(proxy.log_tail(10))


@pytest.fixture
def tinyproxy(tinyproxy_factory: Callable[..., TinyProxy]) -> TinyProxy:
    """A started tinyproxy forward proxy on 127.0.0.1 without auth."""
    return tinyproxy_factory()


@pytest.fixture
def oci_client() -> Iterator[Callable[..., OciClient]]:
    """``oci_client(registry, anonymous=False, username=None, password=None, base_url=None)``."""
    with contextlib.ExitStack() as stack:

        def make(registry: RegistryServer, **kwargs: Any) -> OciClient:
            return stack.enter_context(OciClient.for_registry(registry, **kwargs))

        yield make


@pytest.fixture
def wit_package(tmp_path_factory: pytest.TempPathFactory, wasm_tools_binary: str) -> Callable[..., Path]:
    """``wit_package("a", "pkg", "1.0.0", deps=[WitSpec("b", "pkg", "2.0.0")])`` → path of
    a real WIT package ``.wasm`` (builds are cached per process by content)."""
    out = tmp_path_factory.mktemp("wit")
    counter = itertools.count()

    def make(
        namespace: str,
        name: str,
        version: str | None = "0.1.0",
        body: str | None = None,
        deps: Any = None,
        **kwargs: Any,
    ) -> Path:
        # one directory per call: two variants of one package id never overwrite each other
        return build_wit_package(out / str(next(counter)), namespace, name, version, body, deps, **kwargs)

    return make
