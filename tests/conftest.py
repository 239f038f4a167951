"""Shared fixtures. Every test runs isolated from the real environment."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from support.config import write_config
from support.fixtures import *  # noqa: F401,F403  (registry, token server, WIT builders)

_ENV_PREFIXES = ("PKGLOADER_", "WKG_", "CARGO_COMPONENT_")
_ENV_NAMES = ("DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "SSL_CERT_FILE", "SSL_CERT_DIR", "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy", "no_proxy", "NO_PROXY", "SSL_CLIENT_CERT")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point config, cache and docker config at empty temp dirs; drop PKGLOADER_*/WKG_* vars;
    run in an empty working directory."""
    home = tmp_path_factory.mktemp("home")
    for name in list(os.environ):
        if name.startswith(_ENV_PREFIXES) or name in _ENV_NAMES:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("DOCKER_CONFIG", str(home / ".docker"))
    monkeypatch.setenv("NO_PROXY", "*")
    work = tmp_path_factory.mktemp("work")
    monkeypatch.chdir(work)
    return home


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, out={self.out!r}, err={self.err!r})"

    def json(self) -> object:
        import json

        return json.loads(self.out)


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run the CLI in-process; returns exit code, stdout and stderr."""
    from pkgloader.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        cap = capsys.readouterr()
        return CliResult(code, cap.out, cap.err)

    return run


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
