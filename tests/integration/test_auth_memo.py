"""A bearer challenge remembered across processes (``_auth.ChallengeMemo``): the next cold
process fetches its token before its first request instead of after a 401, against the
ghcr-like registry (docker-registry ``auth.token`` over TLS, the tests' token server)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from pkgloader._auth import Challenge, ChallengeMemo
from pkgloader._credentials import env_host_key
from support.fixtures import TOKEN_USERS
from support.registry import free_port

USER, PASSWORD = next(iter(TOKEN_USERS.items()))


@pytest.fixture
def ghcr(ghcr_registry: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wit_package: Callable[..., Path]) -> Any:
    g = ghcr_registry
    cfg = tmp_path / "pkgloader.toml"
    cfg.write_text(
        "[namespace_registries]\n"
        f'test = {{ registry = "{g.host}", metadata = {{ preferredProtocol = "oci", oci = {{ registry = "{g.host}" }} }} }}\n'
        f'[registry."{g.host}".oci]\nprotocol = "https"\n'
        f'extra_root_certificates = [{{ encoding = "pem", data = """{g.ca_path.read_text()}""" }}]\n'
    )
    monkeypatch.setenv("PKGLOADER_CONFIG", str(cfg))
    monkeypatch.setenv("PKGLOADER_CACHE_DIR", str(tmp_path / "cache"))
    for name, version in (("one", "1.0.0"), ("two", "1.0.0"), ("three", "1.0.0")):
        g.push_wasm(f"test/{name}", version, wit_package("test", name, version))
    return g


def _memo_file(tmp_path: Path, host: str) -> Path:
    return tmp_path / "cache" / "auth" / (host.replace(":", "_") + ".json")


def _unauthorized(ghcr: Any) -> list[str]:
    return [r.path for r in ghcr.front.request_log() if r.status == 401]


def _mark(ghcr: Any) -> None:
    ghcr.front.mark()
    ghcr.token_server.mark()


def test_the_next_process_asks_for_its_token_first(ghcr: Any, run_cli: Callable[..., Any], tmp_path: Path) -> None:
    _mark(ghcr)
    r = run_cli("fetch", "test:one@=1.0.0", "-o", tmp_path / "one.wasm", "-q")
    assert r.code == 0, r.err
    assert _unauthorized(ghcr) == ["/v2/test/one/manifests/1.0.0"]  # no memo yet: the 401 names the realm
    memo = _memo_file(tmp_path, ghcr.host)
    data = json.loads(memo.read_text())
    # the realm and service only: no token, no scope, no credential
    assert sorted(data) == ["host", "realm", "seen_at", "service"]
    assert data["host"] == ghcr.host and data["realm"] == f"{ghcr.token_server.url}/token"
    # a new process (a new Client) with this cache: the token first, no 401 at all
    _mark(ghcr)
    r = run_cli("fetch", "test:two@=1.0.0", "test:three@=1.0.0", "-o", f"{tmp_path / 'out'}/", "-q")
    assert r.code == 0, r.err
    assert _unauthorized(ghcr) == []
    scopes = sorted(s for t in ghcr.token_server.token_requests() for s in t.scopes)
    assert scopes == ["repository:test/three:pull", "repository:test/two:pull"]  # one token per scope, as before
    # `cache clean` forgets it with the rest
    r = run_cli("cache", "clean", "-q")
    assert r.code == 0, r.err
    assert not memo.exists()


def test_a_stale_memo_costs_one_token_request_then_the_usual_flow(ghcr: Any, run_cli: Callable[..., Any],
                                                                  tmp_path: Path) -> None:
    memo = _memo_file(tmp_path, ghcr.host)
    memo.parent.mkdir(parents=True)
    dead = f"http://127.0.0.1:{free_port()}/token"  # nothing listens there
    memo.write_text(json.dumps({"host": ghcr.host, "realm": dead, "service": "gone", "seen_at": time.time()}))
    _mark(ghcr)
    r = run_cli("fetch", "test:one@=1.0.0", "-o", tmp_path / "one.wasm", "-q")
    assert r.code == 0, r.err
    assert r.err == ""  # the failed hint is not the user's problem
    assert _unauthorized(ghcr) == ["/v2/test/one/manifests/1.0.0"]
    assert json.loads(memo.read_text())["realm"] == f"{ghcr.token_server.url}/token"  # replaced by what the 401 said
    assert len(ghcr.token_server.token_requests()) == 1


def test_credentials_go_only_to_a_remembered_realm_on_the_registry_host(ghcr: Any, run_cli: Callable[..., Any],
                                                                       tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # the same token server under another host name (localhost, not 127.0.0.1)
    elsewhere = f"http://localhost:{ghcr.token_server.port}/token"
    memo = _memo_file(tmp_path, ghcr.host)
    memo.parent.mkdir(parents=True)

    def remember() -> None:
        memo.write_text(json.dumps({"host": ghcr.host, "realm": elsewhere, "service": ghcr.token_server.service,
                                    "seen_at": time.time()}))

    remember()
    _mark(ghcr)
    r = run_cli("fetch", "test:one@=1.0.0", "-o", tmp_path / "one.wasm", "-q")  # anonymous: the memo is used
    assert r.code == 0, r.err
    assert _unauthorized(ghcr) == []
    remember()
    key = env_host_key(ghcr.host)
    monkeypatch.setenv(f"PKGLOADER_REGISTRY_{key}_USERNAME", USER)
    monkeypatch.setenv(f"PKGLOADER_REGISTRY_{key}_PASSWORD", PASSWORD)
    _mark(ghcr)
    r = run_cli("fetch", "test:two@=1.0.0", "-o", tmp_path / "two.wasm", "-q")
    assert r.code == 0, r.err
    assert _unauthorized(ghcr) == ["/v2/test/two/manifests/1.0.0"]  # not sent where the memo points: the 401 first
    assert [t.username for t in ghcr.token_server.token_requests()] == [USER]


def test_offline_and_unwritable_memos_change_nothing(ghcr: Any, run_cli: Callable[..., Any], tmp_path: Path) -> None:
    r = run_cli("fetch", "test:one@=1.0.0", "-o", tmp_path / "one.wasm", "-q")
    assert r.code == 0, r.err
    memo = _memo_file(tmp_path, ghcr.host)
    memo.unlink()
    memo.parent.rmdir()
    memo.parent.write_text("in the way\n")  # a file where the memo directory belongs (root ignores modes)
    _mark(ghcr)
    r = run_cli("fetch", "test:two@=1.0.0", "-o", tmp_path / "two.wasm", "-q")
    assert r.code == 0, r.err
    assert r.err == ""  # the memo is best effort: nothing to say
    assert memo.parent.read_text() == "in the way\n"
    _mark(ghcr)
    r = run_cli("fetch", "test:one@=1.0.0", "-o", tmp_path / "one-again.wasm", "-q", "--offline")
    assert r.code == 0, r.err
    assert ghcr.front.request_log() == [] and ghcr.token_server.token_requests() == []


@pytest.mark.parametrize("content", [
    b"not json",
    b"[]",
    json.dumps({"host": "other:5000", "realm": "https://r.example/token", "seen_at": 0}).encode(),  # another host
    json.dumps({"host": "reg.example:5000", "realm": "https://r.example/token", "seen_at": 1.0}).encode(),  # expired
    json.dumps({"host": "reg.example:5000", "realm": "http://r.example/token", "seen_at": "now"}).encode(),
    json.dumps({"host": "reg.example:5000", "realm": "http://r.example/token"}).encode(),  # no time
    b"{" + b" " * 5000 + b"}",  # too large for what it should hold
])
def test_a_damaged_or_unusable_memo_is_no_memo(tmp_path: Path, content: bytes) -> None:
    memo = ChallengeMemo(tmp_path, ttl=86400)
    (tmp_path / "auth").mkdir()
    (tmp_path / "auth" / "reg.example_5000.json").write_bytes(content)
    assert memo.load("reg.example:5000") is None


def test_plain_http_realms_are_remembered_only_on_loopback(tmp_path: Path) -> None:
    memo = ChallengeMemo(tmp_path, ttl=86400)
    for realm, kept in (("http://r.example/token", False), ("http://127.0.0.1:9/token", True),
                        ("https://r.example/token", True), ("ftp://r.example/token", False)):
        memo.save("reg.example:5000", Challenge("bearer", {"realm": realm, "service": "s"}))
        got = memo.load("reg.example:5000")
        assert (got is not None) == kept, realm
        if got is not None:
            assert got.realm == realm and got.service == "s"
