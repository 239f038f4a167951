"""The warg backend through the public paths (``Client``, ``AsyncClient``, the CLI) against a
real loopback warg server: versions, yanks, fetch, persisted and incremental state, request
counts, every tampering failure mode, content sources, auth and federation."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable

import pytest

import pkgloader
from pkgloader import AsyncClient, Client
from pkgloader.backends import warg_backend
from pkgloader.backends.warg import STATE_FORMAT, VerifiedState, package_log_id
from support.wargfactory import (
    FakeWargRegistry,
    ImportNamespaceEntry,
    ReleaseEntry,
    SigningKey,
    sha256_text,
)
from support.wargserver import WARG_NAME, WargServer

PKG = "acme:pkg"
PREAMBLE = b"\0asm\x0d\0\x01\0"  # an (empty) component


def wasm(tag: str) -> bytes:
    return PREAMBLE + tag.encode()


def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def state_file(tmp_path: Path, name: str = WARG_NAME) -> Path:
    return cache_dir(tmp_path) / "warg" / f"{name.replace(':', '_')}.json"


def blobs(tmp_path: Path) -> list[Path]:
    d = cache_dir(tmp_path) / "blobs"
    return sorted(p for p in d.rglob("*") if p.is_file()) if d.exists() else []


def api_routes(server: WargServer, since: int = 0) -> list[str]:
    """Requests after ``since``, with content digests shortened to ``<digest>``."""
    out = []
    for route in server.routes(since):
        method, path = route.split(" ", 1)
        if path.startswith("/v1/content/"):
            path = "/v1/content/<digest>"
        elif path.startswith("/content/"):
            path = "/content/<digest>"
        out.append(f"{method} {path}")
    return out


COLD = ["GET /v1/fetch/checkpoint", "POST /v1/fetch/logs", "POST /v1/proof/inclusion"]
CONTENT = ["GET /v1/content/<digest>", "GET /content/<digest>"]


@pytest.fixture
def acme(warg_server: WargServer, warg_config: Callable[..., Path], warg_keys: dict[str, SigningKey]) -> WargServer:
    """acme:pkg by alice: 0.9.0, 1.0.0, 1.1.0 (yanked), 1.2.0-rc.1; configured via a config file."""
    reg = warg_server.registry
    alice = warg_keys["alice"]
    reg.create_package(PKG, alice)
    for v in ("0.9.0", "1.0.0", "1.1.0", "1.2.0-rc.1"):
        reg.release(PKG, v, wasm(v), alice)
    reg.yank(PKG, "1.1.0", alice)
    reg.publish_checkpoint()
    warg_config(warg_server)
    return warg_server


# --- listing and fetching -----------------------------------------------------------------------


def test_versions_cli_marks_yanked_and_prereleases(acme: WargServer, run_cli: Any) -> None:
    r = run_cli("versions", PKG, "--all")
    assert (r.code, r.out, r.err) == (0, "0.9.0\n1.0.0\n1.1.0  (yanked)\n1.2.0-rc.1  (pre-release)\n", "")
    r = run_cli("versions", PKG)
    assert (r.code, r.out) == (0, "0.9.0\n1.0.0\n")
    assert r.err == "(2 pre-release/yanked version(s) hidden; use --all)\n"
    r = run_cli("versions", PKG, "--all", "--json")
    assert r.json() == {"package": PKG, "versions": [
        {"version": "0.9.0", "prerelease": False, "yanked": False},
        {"version": "1.0.0", "prerelease": False, "yanked": False},
        {"version": "1.1.0", "prerelease": False, "yanked": True},
        {"version": "1.2.0-rc.1", "prerelease": True, "yanked": False}]}


def test_fetch_never_chooses_a_yanked_version(acme: WargServer, run_cli: Any, tmp_path: Path) -> None:
    out = tmp_path / "out.wasm"
    r = run_cli("fetch", f"{PKG}@1", "-o", out)
    assert (r.code, r.out) == (0, f"{out}\n"), r
    assert r.err.startswith(f"fetched {PKG}@1.0.0 (sha256:")
    assert out.read_bytes() == wasm("1.0.0")
    r = run_cli("fetch", f"{PKG}@>=1.2.0-rc.1", "-o", tmp_path / "rc.wasm")
    assert r.code == 0 and (tmp_path / "rc.wasm").read_bytes() == wasm("1.2.0-rc.1")
    r = run_cli("info", f"{PKG}@~1.1", "--json")
    assert r.code == 3
    assert r.err.startswith(f"error[no-matching-version]: no version of {PKG} matches '~1.1'\n")
    assert "  yanked (never chosen by a requirement): 1.1.0\n" in r.err


def test_exact_fetch_of_a_yanked_version_fails(acme: WargServer, run_cli: Any, tmp_path: Path,
                                               warg_keys: dict[str, SigningKey]) -> None:
    out = tmp_path / "y.wasm"
    r = run_cli("fetch", f"{PKG}@=1.1.0", "-o", out)
    alice = warg_keys["alice"].key_id
    assert r.code == 3
    assert r.err == (
        f"error[version-yanked]: {PKG}@1.1.0 has been yanked from {WARG_NAME}\n"
        f"  released at 2023-11-14T22:13:25Z by key {alice}\n"
        f"  yanked at   2023-11-14T22:13:27Z by key {alice}\n"
        f"  hint: choose another version (pkgloader versions {PKG} --all)\n"
    )
    assert not out.exists() and blobs(tmp_path) == []


def test_info(acme: WargServer, run_cli: Any) -> None:
    r = run_cli("info", f"{PKG}@1", "--json")
    assert r.code == 0, r
    d = r.json()
    assert (d["version"], d["backend"], d["registry"], d["location"], d["yanked"]) == (
        "1.0.0", "warg", WARG_NAME, acme.url, False)
    assert d["digest"] == sha256_text(wasm("1.0.0"))
    text = run_cli("info", f"{PKG}@1").out
    assert f"backend:    warg\nlocation:   {acme.url}\n" in text


def test_client_versions_resolve_fetch_and_bytes(acme: WargServer, tmp_path: Path) -> None:
    with Client() as client:
        infos = client.versions(PKG)
        assert [(str(i.version), i.yanked) for i in infos] == [
            ("0.9.0", False), ("1.0.0", False), ("1.1.0", True), ("1.2.0-rc.1", False)]
        rel = client.resolve(f"{PKG}@0.9")
        assert (str(rel.version), rel.backend, str(rel.digest)) == ("0.9.0", "warg", sha256_text(wasm("0.9.0")))
        result = client.fetch(f"{PKG}@^1", f"{tmp_path}/dir/")
        assert result.path == tmp_path / "dir" / "acme_pkg@1.0.0.wasm"
        assert not result.from_cache and result.path.read_bytes() == wasm("1.0.0")
        assert client.read_bytes(f"{PKG}@=0.9.0") == wasm("0.9.0")
        with pytest.raises(pkgloader.VersionYanked):
            client.fetch(f"{PKG}@=1.1.0", tmp_path / "y.wasm")


def test_async_client(acme: WargServer, tmp_path: Path, warg_keys: dict[str, SigningKey],
                      monkeypatch: pytest.MonkeyPatch) -> None:
    alice = warg_keys["alice"]
    acme.registry.create_package("acme:other", alice)
    acme.registry.release("acme:other", "3.0.0", wasm("other"), alice)
    acme.registry.publish_checkpoint()
    merges = []
    real_merge = warg_backend._merge
    monkeypatch.setattr(warg_backend, "_merge", lambda *a: merges.append(1) or real_merge(*a))

    async def main() -> tuple[list[Any], list[Any]]:
        async with AsyncClient() as client:
            # two flows interleaved on one event loop, both updating the same registry's state
            results = await client.fetch_many([f"{PKG}@1", "acme:other"], tmp_path / "out")
            return results, await client.versions(PKG)

    results, infos = asyncio.run(main())
    assert [(str(r.release.version), r.path.read_bytes()) for r in results] == [
        ("1.0.0", wasm("1.0.0")), ("3.0.0", wasm("other"))]
    assert [str(i.version) for i in infos if not i.yanked] == ["0.9.0", "1.0.0", "1.2.0-rc.1"]
    # both flows verified against the same (missing) stored state; the second store merged
    assert merges == [1]
    assert sorted(api_routes(acme)) == sorted(COLD * 2 + CONTENT * 2 + ["GET /v1/fetch/checkpoint"])
    stored = json.loads(state_file(tmp_path).read_text())
    assert sorted(stored["packages"]) == ["acme:other", PKG]


# --- request counts, persisted and incremental state -------------------------------------------


def test_request_counts_cold_warm_and_fetch(acme: WargServer, run_cli: Any, tmp_path: Path) -> None:
    assert run_cli("versions", PKG).code == 0
    assert api_routes(acme) == COLD
    mark = acme.mark()
    assert run_cli("versions", PKG).code == 0  # a new process: state from disk, nothing changed
    assert api_routes(acme, mark) == ["GET /v1/fetch/checkpoint"]
    mark = acme.mark()
    assert run_cli("fetch", f"{PKG}@1", "-o", tmp_path / "a.wasm").code == 0
    assert api_routes(acme, mark) == ["GET /v1/fetch/checkpoint", *CONTENT]
    mark = acme.mark()
    r = run_cli("fetch", f"{PKG}@1", "-o", tmp_path / "b.wasm")
    assert r.code == 0 and r.err.startswith(f"cached {PKG}@1.0.0")
    assert api_routes(acme, mark) == ["GET /v1/fetch/checkpoint"]  # content from the verified cache


def test_one_client_versions_then_fetch(acme: WargServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loads = []
    real = VerifiedState.from_json.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(VerifiedState, "from_json", classmethod(lambda cls, obj: loads.append(1) or real(cls, obj)))
    with Client() as client:
        client.versions(PKG)
        client.fetch(f"{PKG}@1", tmp_path / "a.wasm")
    # the fetch takes the log the listing just verified: one checkpoint request for both
    assert api_routes(acme) == [*COLD, *CONTENT]
    assert loads == []  # the state stays in memory, never re-read from disk
    mark = acme.mark()
    with Client() as client:  # a new client reads the file once, then keeps it in memory
        client.resolve(f"{PKG}@0.9")
        client.resolve(f"{PKG}@1")
        client.versions(PKG)
    assert api_routes(acme, mark) == ["GET /v1/fetch/checkpoint"] * 3  # one per operation
    assert loads == [1]


def test_state_is_persisted_and_survives_a_new_client(acme: WargServer, tmp_path: Path) -> None:
    with Client() as client:
        client.versions(PKG)
    path = state_file(tmp_path)
    data = json.loads(path.read_text())
    assert data["format"] == STATE_FORMAT and data["registry"] == WARG_NAME
    assert data["checkpoint"] == acme.registry.latest_checkpoint()
    assert list(data["packages"]) == [PKG]
    head = data["packages"][PKG]["head"]
    assert head["fetchToken"] == acme.registry.records(PKG)[-1]["fetchToken"]
    assert head["registryIndex"] == acme.registry.length - 1
    assert VerifiedState.from_json(data).releases(PKG)[2].yanked
    mark = acme.mark()
    with Client() as client:
        assert [str(i.version) for i in client.versions(PKG)] == ["0.9.0", "1.0.0", "1.1.0", "1.2.0-rc.1"]
    assert api_routes(acme, mark) == ["GET /v1/fetch/checkpoint"]
    assert not list(path.parent.glob("*.part"))


def test_incremental_update_fetches_only_new_records(acme: WargServer, tmp_path: Path,
                                                     warg_keys: dict[str, SigningKey]) -> None:
    with Client() as client:
        client.versions(PKG)
    before = json.loads(state_file(tmp_path).read_text())
    reg = acme.registry
    old_length = reg.length
    reg.release(PKG, "2.0.0", wasm("2.0.0"), warg_keys["alice"])
    reg.publish_checkpoint()
    mark = acme.mark()
    with Client() as client:
        assert str(client.resolve(PKG).version) == "2.0.0"
    assert api_routes(acme, mark) == COLD + ["POST /v1/proof/consistency"]
    (logs,) = acme.bodies("POST /v1/fetch/logs", mark)
    assert logs == {
        "logLength": old_length + 1,
        "limit": warg_backend.FETCH_LOGS_LIMIT,
        "operator": before["operator"]["head"]["fetchToken"],
        "packages": {package_log_id(PKG): before["packages"][PKG]["head"]["fetchToken"]},
    }
    assert acme.bodies("POST /v1/proof/consistency", mark) == [{"from": old_length, "to": old_length + 1}]
    assert acme.bodies("POST /v1/proof/inclusion", mark) == [{"logLength": old_length + 1, "leafs": [0, old_length]}]
    after = json.loads(state_file(tmp_path).read_text())
    assert after["checkpoint"]["contents"]["logLength"] == old_length + 1
    assert [r["version"] for r in after["packages"][PKG]["releases"]][-1] == "2.0.0"


def test_long_history_across_pages(warg_server: WargServer, warg_config: Callable[..., Path], tmp_path: Path,
                                   warg_keys: dict[str, SigningKey], monkeypatch: pytest.MonkeyPatch) -> None:
    """~300 package records in pages of 25: grants, revocations and releases by several keys."""
    reg = warg_server.registry
    alice, bob, carol = warg_keys["alice"], warg_keys["bob"], warg_keys["carol"]
    reg.create_package(PKG, alice, grants={bob: ("release",)})
    expected = []
    for i in range(100):
        key = (alice, bob)[i % 2]
        reg.release(PKG, f"0.{i}.0", wasm(f"0.{i}.0"), key)
        expected.append(f"0.{i}.0")
        if i % 10 == 9:  # carol comes and goes, releasing once each time
            reg.grant(PKG, alice, carol, ("release", "yank"))
            reg.release(PKG, f"1.{i}.0", wasm(f"1.{i}.0"), carol)
            expected.append(f"1.{i}.0")
            reg.revoke(PKG, alice, carol.key_id, ("release", "yank"))
        if i % 3 == 0:
            reg.yank(PKG, f"0.{i}.0", alice)
    for i in range(140):
        reg.append_package(PKG, [], key=carol)  # revoked keys may still sign permission-free records
    reg.publish_checkpoint()
    records = len(reg.records(PKG))
    assert records >= 300
    warg_config(warg_server)
    monkeypatch.setattr(warg_backend, "FETCH_LOGS_LIMIT", 25)
    with Client() as client:
        infos = client.versions(PKG)
        assert sorted(str(i.version) for i in infos) == sorted(expected)
        assert {str(i.version) for i in infos if i.yanked} == {f"0.{i}.0" for i in range(0, 100, 3)}
        assert str(client.resolve(f"{PKG}@0").version) == "0.98.0"  # 0.99.0 was yanked
    pages = warg_server.bodies("POST /v1/fetch/logs")
    assert len(pages) == records // 25 + 1
    assert all(p["limit"] == 25 for p in pages)
    log_id = package_log_id(PKG)
    tokens = [p["packages"][log_id] for p in pages]
    assert tokens == [None] + [r["fetchToken"] for r in reg.records(PKG)[24::25]][: len(pages) - 1]
    # a server with smaller pages than asked for is followed the same way
    state_file(tmp_path).unlink()
    monkeypatch.setattr(warg_backend, "FETCH_LOGS_LIMIT", 100)
    warg_server.page_limit = 40
    mark = warg_server.mark()
    with Client() as client:
        assert len(client.versions(PKG)) == len(expected)
    assert len(warg_server.bodies("POST /v1/fetch/logs", mark)) == records // 40 + 1


def test_many_packages_share_one_state(warg_server: WargServer, warg_config: Callable[..., Path], tmp_path: Path,
                                       warg_keys: dict[str, SigningKey], run_cli: Any) -> None:
    reg = warg_server.registry
    names = [f"acme:pkg{i}" for i in range(25)]
    for i, name in enumerate(names):
        owner = (warg_keys["alice"], warg_keys["bob"])[i % 2]
        reg.create_package(name, owner)
        reg.release(name, "1.0.0", wasm(name), owner)
    reg.publish_checkpoint()
    warg_config(warg_server)
    with Client() as client:
        results = client.fetch_many(names[:20], tmp_path / "out")
    assert [r.path.read_bytes() for r in results] == [wasm(n) for n in names[:20]]  # type: ignore[union-attr]
    r = run_cli("fetch", *names[20:], "-o", f"{tmp_path}/cli/")
    assert r.code == 0, r
    assert sorted(p.name for p in (tmp_path / "cli").iterdir()) == sorted(f"acme_pkg{i}@1.0.0.wasm" for i in range(20, 25))
    stored = VerifiedState.from_json(json.loads(state_file(tmp_path).read_text()))
    assert sorted(stored.packages) == sorted(names)
    assert all(p.verified_at == reg.length for p in stored.packages.values())


# --- concurrency --------------------------------------------------------------------------------


def _race_gate(server: WargServer, route: str, parties: int = 2) -> None:
    """Hold ``route`` until ``parties`` requests for it arrived (both clients loaded the same
    stored state before either stores)."""
    barrier = threading.Barrier(parties)

    def gate(method: str, path: str) -> None:
        if f"{method} {path}" == route:
            try:
                barrier.wait(timeout=20)
            except threading.BrokenBarrierError:
                pass

    server.gate = gate


@pytest.fixture
def two_packages(acme: WargServer, warg_keys: dict[str, SigningKey]) -> WargServer:
    alice = warg_keys["alice"]
    acme.registry.create_package("acme:other", alice)
    acme.registry.release("acme:other", "3.0.0", wasm("other"), alice)
    acme.registry.publish_checkpoint()
    return acme


def test_concurrent_processes_do_not_lose_updates(two_packages: WargServer, tmp_path: Path) -> None:
    _race_gate(two_packages, "POST /v1/proof/inclusion")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    procs = [subprocess.Popen([sys.executable, "-m", "pkgloader", "versions", ref, "-q"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for ref in (PKG, "acme:other")]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert outs[1][0] == "3.0.0\n"
    # both verified from scratch; the second to store merged instead of overwriting
    assert sorted(api_routes(two_packages)) == sorted(COLD * 2)
    stored = VerifiedState.from_json(json.loads(state_file(tmp_path).read_text()))
    assert sorted(stored.packages) == ["acme:other", PKG]


def test_concurrent_clients_at_different_checkpoints(two_packages: WargServer, tmp_path: Path,
                                                     warg_keys: dict[str, SigningKey]) -> None:
    """One client stores a newer checkpoint while another verifies an older one: the older
    result is rebuilt on top of the newer state, never written over it."""
    reg = two_packages.registry
    old = reg.latest_checkpoint()["contents"]["logLength"]
    reg.release(PKG, "2.0.0", wasm("2.0.0"), warg_keys["alice"])
    reg.publish_checkpoint()
    reg.serve_checkpoint(old)
    gate = threading.Event()

    def hold(method: str, path: str) -> None:
        if (method, path) == ("POST", "/v1/proof/inclusion") and not gate.is_set():
            gate.set()
            done.wait(timeout=20)

    done = threading.Event()
    two_packages.gate = hold
    errors: list[BaseException] = []

    def slow() -> None:
        try:
            with Client() as client:
                assert [str(i.version) for i in client.versions("acme:other")] == ["3.0.0"]
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=slow)
    t.start()
    assert gate.wait(timeout=20)
    reg.served_checkpoint = None  # the registry moves on; a second client stores the newer state
    with Client() as client:
        assert str(client.resolve(PKG).version) == "2.0.0"
    done.set()
    t.join(timeout=60)
    assert not errors
    stored = VerifiedState.from_json(json.loads(state_file(tmp_path).read_text()))
    assert stored.log_length == reg.length  # never moved back to the older checkpoint
    assert sorted(stored.packages) == ["acme:other", PKG]
    # the slow client redid its (now cheap) update from the newer state, at the newer checkpoint
    assert api_routes(two_packages)[-3:] == COLD


# --- tampering: every failure mode has its own code, exit 5, nothing written --------------------


def _bad_signature(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    other = reg.records(PKG)[2]["signature"]
    reg.tamper_record(PKG, 1, signature=other)  # a valid signature, of another record


def _broken_chain(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    reg.append_package(PKG, [ReleaseEntry("3.0.0", sha256_text(wasm("3")))], key=keys["alice"],
                       prev=reg.records(PKG)[1]["fetchToken"])
    reg.publish_checkpoint()


def _unauthorized(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    reg.release(PKG, "6.6.6", wasm("evil"), keys["mallory"])
    reg.publish_checkpoint()


def _revoked(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    reg.grant(PKG, keys["alice"], keys["bob"], ("release",))
    reg.release(PKG, "1.3.0", wasm("bob"), keys["bob"])
    reg.revoke(PKG, keys["alice"], keys["bob"].key_id, ("release",))
    reg.release(PKG, "6.6.6", wasm("evil"), keys["bob"])
    reg.publish_checkpoint()


def _checkpoint_by_stranger(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    reg.publish_checkpoint(key=keys["mallory"])


def _corrupt(part: str) -> Callable[[FakeWargRegistry, dict[str, SigningKey]], None]:
    def tamper(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
        reg.corrupt.add(part)

    return tamper


@pytest.mark.parametrize("tamper,code,message", [
    (_bad_signature, "warg-bad-signature", "package log acme:pkg of warg.acme.test: record 1 (registry index 2) has "
                                           "a signature that does not verify with key {alice}\n"),
    (_broken_chain, "warg-broken-chain", "package log acme:pkg of warg.acme.test: record 6 (registry index 7) does "
                                         "not chain to the previous record\n"),
    (_unauthorized, "warg-unauthorized", "package log acme:pkg of warg.acme.test: record 6 (registry index 7) "
                                         "releases 6.6.6, but key {mallory} does not hold the 'release' permission\n"),
    (_revoked, "warg-unauthorized", "package log acme:pkg of warg.acme.test: record 9 (registry index 10) releases "
                                    "6.6.6, but key {bob} does not hold the 'release' permission\n"),
    (_checkpoint_by_stranger, "warg-unauthorized", "checkpoint at log length 7 of warg.acme.test is signed by key "
                                                   "{mallory}, which is not in the operator log\n"),
    (_corrupt("inclusion-log"), "warg-bad-proof", "operator log of warg.acme.test: head record sha256:"),
    (_corrupt("inclusion-map"), "warg-bad-proof", "operator log of warg.acme.test: head record sha256:"),
    (_corrupt("inclusion-index"), "warg-bad-proof", "inclusion proof for checkpoint length 7 of warg registry "
                                                    "warg.acme.test: proof 1 (package log acme:pkg) is for log node 14, "
                                                    "expected node 12 (registry index 6)\n"),
], ids=["bad-signature", "broken-chain", "unauthorized-release", "revoked-key", "checkpoint-key",
        "inclusion-log", "inclusion-map", "inclusion-index"])
def test_tampered_registry_fails_cold(acme: WargServer, run_cli: Any, tmp_path: Path, warg_keys: dict[str, SigningKey],
                                      tamper: Any, code: str, message: str) -> None:
    tamper(acme.registry, warg_keys)
    out = tmp_path / "out.wasm"
    r = run_cli("fetch", f"{PKG}@1", "-o", out)
    assert r.code == 5, r
    ids = {name: key.key_id for name, key in warg_keys.items()}
    assert r.err.startswith(f"error[{code}]: " + message.format(**ids)), r.err
    assert not out.exists() and blobs(tmp_path) == []
    assert not state_file(tmp_path).exists()
    assert run_cli("versions", PKG).code == 5


def _rewind(server: WargServer, keys: dict[str, SigningKey]) -> None:
    server.registry.serve_checkpoint(7)


def _fork(server: WargServer, keys: dict[str, SigningKey]) -> None:
    fork = server.registry.fork(7)  # drop the 2.0.0 release, publish another history instead
    fork.release(PKG, "2.0.0", wasm("evil"), keys["alice"])
    fork.publish_checkpoint()  # the fork's own view of length 8
    fork.release(PKG, "2.0.1", wasm("evil"), keys["alice"])
    fork.publish_checkpoint()
    fork.content_base_url = server.url
    server.registry = fork


def _changed_root(server: WargServer, keys: dict[str, SigningKey]) -> None:
    fork = server.registry.fork(7)
    fork.release(PKG, "2.0.0", wasm("evil"), keys["alice"])  # same length, another record
    fork.publish_checkpoint()
    fork.content_base_url = server.url
    server.registry = fork


def _bad_consistency(server: WargServer, keys: dict[str, SigningKey]) -> None:
    server.registry.release(PKG, "2.1.0", wasm("2.1.0"), keys["alice"])
    server.registry.publish_checkpoint()
    server.registry.corrupt.add("consistency")


@pytest.mark.parametrize("tamper,code,message", [
    (_rewind, "warg-rewind", f"warg registry {WARG_NAME} went back in time: its checkpoint has log length 7, "
                             "but length 8 was verified earlier"),
    (_fork, "warg-fork", f"warg registry {WARG_NAME} forked: its log at length 9 does not extend the log at "
                         "length 8 verified earlier"),
    (_changed_root, "warg-root-mismatch", f"warg registry {WARG_NAME} changed its roots at log length 8"),
    (_bad_consistency, "warg-bad-proof", f"consistency proof 8->9 of warg registry {WARG_NAME} does not lead to "
                                         "the new checkpoint's log root"),
], ids=["rewind", "fork", "changed-root", "bad-consistency"])
def test_tampered_registry_fails_against_stored_state(acme: WargServer, run_cli: Any, tmp_path: Path,
                                                      warg_keys: dict[str, SigningKey], tamper: Any, code: str,
                                                      message: str) -> None:
    acme.registry.release(PKG, "2.0.0", wasm("2.0.0"), warg_keys["alice"])
    acme.registry.publish_checkpoint()
    assert run_cli("versions", PKG).code == 0  # verified at length 8
    before = state_file(tmp_path).read_bytes()
    tamper(acme, warg_keys)
    out = tmp_path / "out.wasm"
    r = run_cli("fetch", f"{PKG}@2", "-o", out)
    assert r.code == 5, r
    assert r.err.startswith(f"error[{code}]: {message}\n"), r.err
    if code != "warg-bad-proof":
        assert f"  earlier verified state: {state_file(tmp_path)}\n" in r.err
    assert not out.exists() and blobs(tmp_path) == []
    assert state_file(tmp_path).read_bytes() == before  # the trusted state is kept as it was


def test_content_digest_mismatch(acme: WargServer, run_cli: Any, tmp_path: Path) -> None:
    digest = sha256_text(wasm("1.0.0"))
    acme.registry.content[digest] = wasm("1.0.0 but not quite")
    out = tmp_path / "out.wasm"
    r = run_cli("fetch", f"{PKG}@1", "-o", out)
    assert r.code == 5, r
    assert r.err.startswith(f"error[digest-mismatch]: content of {PKG}@1.0.0 does not match its digest\n"), r.err
    assert f"  expected {digest}" in r.err and "nothing was kept" in r.err
    assert not out.exists() and blobs(tmp_path) == []
    assert not list((cache_dir(tmp_path) / "tmp").glob("*"))


# --- content sources ----------------------------------------------------------------------------


def _sources(server: WargServer, make: Callable[[str, str], list[dict[str, Any]]]) -> None:
    def hook(route: str, status: int, body: Any) -> tuple[int, Any]:
        if route.startswith("GET v1/content/") and status == 200:
            ((digest, [good]),) = body["contentSources"].items()
            body = {"contentSources": {digest: make(digest, good["url"])}}
        return status, body

    server.registry.response_hook = hook


def test_content_sources_in_order_first_2xx_wins(acme: WargServer, tmp_path: Path,
                                                 warg_config: Callable[..., Path]) -> None:
    warg_config(acme, extra="[pkgloader]\nretries = 0\n")  # fall back at once on a refused connection
    with WargServer() as dead:
        dead_url = dead.url
    _sources(acme, lambda digest, good: [
        {"type": "ociBlob", "url": "x"},                                   # unknown type: skipped
        {"type": "httpGet", "url": f"{acme.url}/missing/{digest}"},        # 404
        {"type": "httpGet", "url": f"{dead_url}/content/x"},               # connection refused
        {"type": "httpGet", "url": "/content/" + digest.replace(":", "-")},  # relative: against the base
        {"type": "httpGet", "url": good},
    ])
    with Client() as client:
        assert client.read_bytes(f"{PKG}@1") == wasm("1.0.0")
    routes = api_routes(acme)
    assert routes[-3:] == ["GET /v1/content/<digest>", f"GET /missing/{sha256_text(wasm('1.0.0'))}", "GET /content/<digest>"]
    content = [s for s in acme.requests if s.path.startswith("/content/") or s.path.startswith("/missing/")]
    assert all("authorization" not in s.headers and "warg-registry" not in s.headers for s in content)


def test_content_mismatch_does_not_fall_back(acme: WargServer, tmp_path: Path) -> None:
    acme.registry.content[sha256_text(b"decoy")] = wasm("decoy")
    _sources(acme, lambda d, good: [
        {"type": "httpGet", "url": f"{acme.url}/content/{sha256_text(b'decoy').replace(':', '-')}"},
        {"type": "httpGet", "url": good},
    ])
    with Client() as client, pytest.raises(pkgloader.DigestMismatch):
        client.fetch(f"{PKG}@1", tmp_path / "out.wasm")
    assert [s.path for s in acme.requests if s.path.startswith("/content/")] == [
        f"/content/{sha256_text(b'decoy').replace(':', '-')}"]
    assert not (tmp_path / "out.wasm").exists() and blobs(tmp_path) == []


def test_all_content_sources_fail(acme: WargServer, run_cli: Any, tmp_path: Path) -> None:
    _sources(acme, lambda d, good: [{"type": "httpGet", "url": f"{acme.url}/gone/1"},
                                    {"type": "httpGet", "url": f"{acme.url}/gone/2"}])
    r = run_cli("fetch", f"{PKG}@1", "-o", tmp_path / "out.wasm")
    assert r.code == 6
    assert r.err == (
        f"error[registry-error]: none of the 2 content source(s) of {PKG}@1.0.0 from warg registry {WARG_NAME} "
        "could be downloaded\n"
        f"  {acme.url}/gone/1: HTTP 404\n"
        f"  {acme.url}/gone/2: HTTP 404\n"
        "  hint: retry later; if it persists the registry's content storage is failing\n"
    )


def test_content_not_available(acme: WargServer, run_cli: Any, tmp_path: Path) -> None:
    del acme.registry.content[sha256_text(wasm("1.0.0"))]
    r = run_cli("fetch", f"{PKG}@1", "-o", tmp_path / "out.wasm")
    assert r.code == 3
    assert r.err.startswith(f"error[package-not-found]: content of {PKG}@1.0.0 (sha256:")


# --- errors -------------------------------------------------------------------------------------


def test_unknown_package(acme: WargServer, run_cli: Any, tmp_path: Path) -> None:
    r = run_cli("versions", "acme:nope")
    assert r.code == 3
    assert r.err == (
        f"error[package-not-found]: package acme:nope does not exist in warg registry {WARG_NAME}\n"
        f"  url: {acme.url}/\n"
        "  checked up to log length 7\n"
        f"  registry {WARG_NAME} chosen by namespace_registries.acme (env {os.environ['PKGLOADER_CONFIG']} "
        "(from PKGLOADER_CONFIG):2)\n"
        "  hint: check the package name and the registry mapping (pkgloader config resolve REF)\n"
    )
    # what was learned about the registry meanwhile (its operator log) is kept
    assert json.loads(state_file(tmp_path).read_text())["packages"] == {}


def test_auth_token(warg_server: WargServer, warg_config: Callable[..., Path], warg_keys: dict[str, SigningKey],
                    run_cli: Any, tmp_path: Path) -> None:
    reg = warg_server.registry
    reg.create_package(PKG, warg_keys["alice"])
    reg.release(PKG, "1.0.0", wasm("1"), warg_keys["alice"])
    reg.publish_checkpoint()
    warg_server.auth_token = "s3cret"
    warg_config(warg_server)
    r = run_cli("versions", PKG)
    assert r.code == 4
    assert r.err.startswith(f"error[auth-failed]: warg registry {WARG_NAME} refused the checkpoint request (HTTP 401)\n")
    assert r.err.endswith(f'  hint: set auth_token under [registry."{WARG_NAME}".warg] if the registry needs one\n')
    warg_config(warg_server, token="s3cret")
    r = run_cli("fetch", PKG, "-o", tmp_path / "out.wasm")
    assert r.code == 0, r
    api = [s for s in warg_server.requests if s.path.startswith("/v1/")]
    assert {s.headers.get("authorization") for s in api[1:]} == {"Bearer s3cret"}
    (download,) = [s for s in warg_server.requests if s.path.startswith("/content/")]
    assert "authorization" not in download.headers
    warg_config(warg_server, token="wrong")
    r = run_cli("versions", PKG)
    assert r.code == 4 and "s3cret" not in r.err and "wrong" not in r.err
    assert r.err.endswith(f'  hint: the auth_token under [registry."{WARG_NAME}".warg] was refused; check it\n')


def test_registry_error(acme: WargServer, run_cli: Any) -> None:
    acme.registry.response_hook = lambda route, status, body: (
        (500, {"status": 500, "message": "database is on fire"}) if route == "POST v1/fetch/logs" else (status, body))
    r = run_cli("versions", PKG)
    assert r.code == 6
    assert r.err == (
        f"error[registry-error]: warg registry {WARG_NAME} answered HTTP 500 to the fetch/logs request\n"
        f"  url: {acme.url}/v1/fetch/logs\n"
        "  registry says: database is on fire\n"
        "  hint: retry later; if it persists the registry is failing\n"
    )


def test_registry_that_lost_a_verified_record(acme: WargServer, run_cli: Any, tmp_path: Path,
                                              warg_keys: dict[str, SigningKey]) -> None:
    assert run_cli("versions", PKG).code == 0
    acme.registry.release(PKG, "2.0.0", wasm("2.0.0"), warg_keys["alice"])
    acme.registry.publish_checkpoint()
    token = acme.registry.records(PKG)[-2]["fetchToken"]
    acme.registry.response_hook = lambda route, status, body: (
        (404, {"status": 404, "type": "fetchToken", "id": token}) if route == "POST v1/fetch/logs" else (status, body))
    mark = acme.mark()
    r = run_cli("versions", PKG)
    assert r.code == 6
    assert r.err == (
        f"error[registry-error]: warg registry {WARG_NAME} does not know the record {token} that was verified earlier\n"
        f"  url: {acme.url}/v1/fetch/logs\n"
        "  checkpoint log length 8\n"
        "  its log is consistent with length 7 verified earlier\n"
        "  hint: the registry may have been reset or replaced; if that is intended, delete the cached warg state "
        "(pkgloader cache clean)\n")
    assert api_routes(acme, mark) == ["GET /v1/fetch/checkpoint", "POST /v1/fetch/logs", "POST /v1/proof/consistency"]


def test_oversized_api_response(acme: WargServer, run_cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(warg_backend, "MAX_API_BODY", 1 << 20)
    acme.registry.response_hook = lambda route, status, body: (
        (200, {"junk": "x" * (2 << 20)}) if route == "GET v1/fetch/checkpoint" else (status, body))
    r = run_cli("versions", PKG)
    assert r.code == 6
    assert r.err.startswith(
        f"error[registry-error]: warg registry {WARG_NAME} sent more than 1 MiB in answer to GET v1/fetch/checkpoint\n")


def test_corrupted_state_file_is_rebuilt(acme: WargServer, run_cli: Any, tmp_path: Path) -> None:
    assert run_cli("versions", PKG).code == 0
    path = state_file(tmp_path)
    data = json.loads(path.read_text())
    data["checkpoint"]["contents"]["timestamp"] += 1  # no longer verifies
    path.write_text(json.dumps(data))
    mark = acme.mark()
    r = run_cli("versions", PKG)
    assert r.code == 0 and r.out == "0.9.0\n1.0.0\n"
    assert r.err == (
        f"warning: ignoring the stored warg state {path} (checkpoint at log length 7 of {WARG_NAME} has a signature "
        f"that does not verify with key {acme.registry.operator_key.key_id}); it will be rebuilt from the registry\n"
        "(2 pre-release/yanked version(s) hidden; use --all)\n")
    assert api_routes(acme, mark) == COLD
    assert VerifiedState.from_json(json.loads(path.read_text())).log_length == 7


# --- well-known metadata ------------------------------------------------------------------------


@pytest.mark.parametrize("legacy", [False, True], ids=["preferredProtocol", "wargUrl"])
def test_well_known_metadata(acme: WargServer, warg_config: Callable[..., Path], tmp_path: Path, legacy: bool,
                             run_cli: Any) -> None:
    if legacy:
        acme.legacy_metadata = {"wargUrl": acme.url}
    else:
        acme.metadata = {"preferredProtocol": "warg", "warg": {"url": acme.url}}
    warg_config(acme, well_known=True)
    r = run_cli("fetch", f"{PKG}@1", "-o", tmp_path / "out.wasm")
    assert r.code == 0, r
    assert (tmp_path / "out.wasm").read_bytes() == wasm("1.0.0")
    wk = ["GET /.well-known/wasm-pkg/registry.json"] + (["GET /.well-known/warg/registry.json"] if legacy else [])
    assert api_routes(acme) == wk + COLD + CONTENT
    assert state_file(tmp_path, acme.host).exists()
    mark = acme.mark()
    with Client() as client:  # metadata cached on disk; state too
        assert str(client.resolve(PKG).version) == "1.0.0"
    assert api_routes(acme, mark) == ["GET /v1/fetch/checkpoint"]


# --- federation ---------------------------------------------------------------------------------


@pytest.fixture
def federated(warg_server: WargServer, warg_config: Callable[..., Path], warg_keys: dict[str, SigningKey]) -> FakeWargRegistry:
    """other.example (namespace ``other``) behind the home server; other:pkg 1.0.0 and 1.1.0."""
    other = warg_server.add_federated("other.example", FakeWargRegistry(namespaces=("other",)))
    other.create_package("other:pkg", warg_keys["bob"])
    other.release("other:pkg", "1.0.0", wasm("other 1.0.0"), warg_keys["bob"])
    other.release("other:pkg", "1.1.0", wasm("other 1.1.0"), warg_keys["bob"])
    other.publish_checkpoint()
    warg_server.registry.publish_checkpoint()
    warg_config(warg_server, namespaces=("acme", "other"))
    return other


def test_federation_hint(warg_server: WargServer, federated: FakeWargRegistry, run_cli: Any, tmp_path: Path) -> None:
    warg_server.add_hint("other:pkg", "other.example")
    r = run_cli("fetch", "other:pkg", "-o", tmp_path / "o.wasm")
    assert r.code == 0, r
    assert (tmp_path / "o.wasm").read_bytes() == wasm("other 1.1.0")
    fed = [s.route for s in warg_server.requests if s.headers.get("warg-registry") == "other.example"]
    home = [s.route for s in warg_server.requests if s.path.startswith("/v1/") and "warg-registry" not in s.headers]
    assert home == ["GET /v1/fetch/checkpoint", "POST /v1/fetch/logs", "POST /v1/fetch/logs", "POST /v1/proof/inclusion"]
    assert fed == ["GET /v1/fetch/checkpoint", "POST /v1/fetch/logs", "POST /v1/proof/inclusion",
                   f"GET /v1/content/{sha256_text(wasm('other 1.1.0'))}"]
    assert state_file(tmp_path, "other.example").exists()
    hints = json.loads((cache_dir(tmp_path) / "warg" / f"{WARG_NAME}.namespaces.json").read_text())
    assert hints["namespaces"] == {"other": "other.example"}
    mark = warg_server.mark()
    r = run_cli("versions", "other:pkg")  # the learned mapping is used directly
    assert (r.code, r.out) == (0, "1.0.0\n1.1.0\n")
    assert [(s.route, s.headers.get("warg-registry")) for s in warg_server.requests[mark:]] == [
        ("GET /v1/fetch/checkpoint", "other.example")]
    r = run_cli("info", "other:pkg", "--json")
    assert r.json()["location"] == f"{warg_server.url} (Warg-Registry: other.example)"  # type: ignore[index]


def test_federation_by_operator_log_import(warg_server: WargServer, federated: FakeWargRegistry, tmp_path: Path) -> None:
    reg = warg_server.registry
    reg.append_operator([ImportNamespaceEntry("other", "other.example")])
    reg.publish_checkpoint()
    with Client() as client:
        assert [str(i.version) for i in client.versions("other:pkg")] == ["1.0.0", "1.1.0"]
        mark = warg_server.mark()
        assert client.read_bytes("other:pkg@=1.0.0") == wasm("other 1.0.0")
    # the verified home operator log now says where `other` lives: no more home requests
    assert {s.headers.get("warg-registry") for s in warg_server.requests[mark:] if s.path.startswith("/v1/")} == {
        "other.example"}
    assert not (cache_dir(tmp_path) / "warg" / f"{WARG_NAME}.namespaces.json").exists()


def test_hint_ignored_for_a_namespace_the_home_registry_defines(warg_server: WargServer, federated: FakeWargRegistry,
                                                                 run_cli: Any) -> None:
    warg_server.add_hint("acme:gone", "other.example")
    r = run_cli("versions", "acme:gone")
    assert r.code == 3 and "error[package-not-found]: package acme:gone does not exist" in r.err
    assert f"warning: warg registry {WARG_NAME} defines namespace 'acme' itself; ignoring its hint acme=other.example" in r.err


def test_federation_unsupported_by_the_home_registry(warg_server_factory: Callable[..., WargServer],
                                                     warg_config: Callable[..., Path], warg_keys: dict[str, SigningKey],
                                                     run_cli: Any, tmp_path: Path) -> None:
    home = FakeWargRegistry(namespaces=("acme",), imported={"other": "other.example"})
    home.publish_checkpoint()
    server = warg_server_factory(registry=home, federation=False)  # answers Warg-Registry with 501
    warg_config(server, namespaces=("acme", "other"))
    r = run_cli("fetch", "other:pkg", "-o", tmp_path / "o.wasm")
    assert r.code == 5
    assert r.err.startswith(
        f"error[warg-unsupported]: warg registry {WARG_NAME} does not serve other registries: it answered HTTP 501 "
        "to the checkpoint request with Warg-Registry: other.example\n")
    assert not (tmp_path / "o.wasm").exists()


def test_nested_federation_is_unsupported(warg_server: WargServer, federated: FakeWargRegistry, run_cli: Any,
                                         tmp_path: Path, warg_keys: dict[str, SigningKey]) -> None:
    # the registry a hint points at imports the namespace from yet another registry
    fed2 = warg_server.add_federated("fed2.example", FakeWargRegistry(namespaces=(), imported={"other": "third.example"}))
    fed2.create_package("other:x", warg_keys["carol"])
    fed2.release("other:x", "1.0.0", wasm("x"), warg_keys["carol"])
    fed2.publish_checkpoint()
    warg_server.add_hint("other:x", "fed2.example")
    r = run_cli("versions", "other:x")
    assert r.code == 5
    assert r.err == (
        f"error[warg-unsupported]: warg registry fed2.example (via {WARG_NAME}) imports namespace 'other' from "
        "third.example; pkgloader follows one level of federation only\n"
        "  hint: map namespace 'other' to a registry that hosts it directly\n")
    # the hint was learned: other:* now goes to fed2.example directly, where other:pkg does not exist
    r = run_cli("versions", "other:pkg")
    assert r.code == 5 and r.err.startswith("error[warg-unsupported]: warg registry fed2.example")


def test_package_missing_from_the_federated_registry(warg_server: WargServer, federated: FakeWargRegistry,
                                                    run_cli: Any) -> None:
    warg_server.add_hint("other:nope", "other.example")
    r = run_cli("versions", "other:nope")
    assert r.code == 3
    assert r.err.startswith("error[package-not-found]: package other:nope does not exist in warg registry "
                            f"other.example (via {WARG_NAME})\n")


def test_yank_after_caching_is_seen(acme: WargServer, run_cli: Any, tmp_path: Path,
                                    warg_keys: dict[str, SigningKey]) -> None:
    """A release cached before it was yanked is not served afterwards (no warm memo for warg)."""
    assert run_cli("fetch", f"{PKG}@=1.0.0", "-o", tmp_path / "a.wasm", "-q").code == 0
    assert run_cli("fetch", f"{PKG}@=1.0.0", "-o", tmp_path / "b.wasm", "-q").code == 0
    acme.registry.yank(PKG, "1.0.0", warg_keys["alice"])
    acme.registry.publish_checkpoint()
    r = run_cli("fetch", f"{PKG}@=1.0.0", "-o", tmp_path / "c.wasm")
    assert r.code == 3 and r.err.startswith(f"error[version-yanked]: {PKG}@1.0.0 has been yanked")
    assert not (tmp_path / "c.wasm").exists()
