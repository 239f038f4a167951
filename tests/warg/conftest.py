"""Fixtures for the warg suites: a real loopback warg server and configs pointing at it."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from support.wargfactory import SigningKey
from support.wargserver import WARG_NAME, WargServer


@pytest.fixture
def warg_server() -> Iterator[WargServer]:
    """A started :class:`WargServer` (operator log defining namespace ``acme``, no packages yet,
    no checkpoint: publish one after adding records)."""
    with WargServer() as server:
        yield server


@pytest.fixture
def warg_server_factory() -> Iterator[Callable[..., WargServer]]:
    """``warg_server_factory(registry=..., federation=False, ...)`` -> another started server."""
    started: list[WargServer] = []

    def make(**kwargs: Any) -> WargServer:
        server = WargServer(**kwargs).__enter__()
        started.append(server)
        return server

    yield make
    for server in started:
        server.__exit__(None, None, None)


@pytest.fixture(scope="session")
def warg_keys() -> dict[str, SigningKey]:
    return {n: SigningKey.generate() for n in ("alice", "bob", "carol", "mallory")}


@pytest.fixture
def warg_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """``warg_config(server)`` writes a config mapping ``acme`` (and ``namespaces``) to
    ``name`` with ``[registry."name".warg] url = server.url`` and exports it as
    PKGLOADER_CONFIG; the cache goes to ``tmp_path/cache`` (PKGLOADER_CACHE_DIR).

    ``well_known=True`` maps the namespaces to ``server.host`` with no registry table, so the
    backend and URL come from ``/.well-known/wasm-pkg/registry.json`` (set ``server.metadata``).
    """

    def make(server: WargServer, *, name: str = WARG_NAME, namespaces: tuple[str, ...] = ("acme",),
             token: str | None = None, well_known: bool = False, extra: str = "") -> Path:
        lines = ["[namespace_registries]"]
        target = server.host if well_known else name
        lines += [f"{ns} = {json.dumps(target)}" for ns in namespaces]
        if not well_known:
            lines += [f'[registry."{name}".warg]', f"url = {json.dumps(server.url)}"]
            if token is not None:
                lines.append(f"auth_token = {json.dumps(token)}")
        f = tmp_path / "pkgloader-warg.toml"
        f.write_text("\n".join(lines) + "\n" + textwrap.dedent(extra))
        monkeypatch.setenv("PKGLOADER_CONFIG", str(f))
        monkeypatch.setenv("PKGLOADER_CACHE_DIR", str(tmp_path / "cache"))
        return f

    return make
