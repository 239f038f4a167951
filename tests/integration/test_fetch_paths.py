"""Fetch fast paths and request counts, cache behaviour, offline mode, async parity."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.wit import custom_section

from pkgloader import AsyncClient, Client, Config
from support.config import write_config
from pkgloader._errors import OfflineCacheMiss


def published(registry, registry_config, wit_package, versions=("0.1.0", "0.2.0", "0.2.1")):  # type: ignore[no-untyped-def]
    registry_config(registry)
    files = {}
    with Client() as c:
        for v in versions:
            files[v] = wit_package("test", "pkg", v)
            c.publish(files[v], f"test:pkg@={v}")
    return files


def blob_requests(reqs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [r for r in reqs if r[1] != "/v2/"]


def test_exact_cold_fetch_makes_manifest_and_blob_requests_only(registry, registry_config, wit_package, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    files = published(registry, registry_config, wit_package)
    registry.mark()
    with Client() as c:
        res = c.fetch("test:pkg@=0.2.0", tmp_path / "a.wasm")
    assert res.path.read_bytes() == files["0.2.0"].read_bytes()
    assert registry.requests() == [
        ("GET", "/v2/test/pkg/manifests/0.2.0"),
        ("GET", f"/v2/test/pkg/blobs/{res.release.digest}"),
    ]


def test_range_fetch_lists_tags_first(registry, registry_config, wit_package, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    published(registry, registry_config, wit_package)
    registry.mark()
    with Client() as c:
        res = c.fetch("test:pkg@0.2", tmp_path / "a.wasm")
    assert str(res.release.version) == "0.2.1"
    assert registry.requests() == [
        ("GET", "/v2/test/pkg/tags/list"),
        ("GET", "/v2/test/pkg/manifests/0.2.1"),
        ("GET", f"/v2/test/pkg/blobs/{res.release.digest}"),
    ]


def test_warm_exact_fetch_makes_no_request(registry, registry_config, wit_package, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    files = published(registry, registry_config, wit_package)
    seen: list[object] = []
    with Client() as c:
        c.fetch("test:pkg@=0.1.0", tmp_path / "one.wasm")
    registry.mark()
    with Client(observer=lambda req, resp: seen.append(req.url)) as c:
        res = c.fetch("test:pkg@=0.1.0", tmp_path / "two.wasm")
    assert res.from_cache is True
    assert seen == [] and registry.requests() == []
    assert (tmp_path / "two.wasm").read_bytes() == files["0.1.0"].read_bytes()


def test_warm_cli_fetch_does_not_import_http_stack(registry, registry_config, wit_package, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    published(registry, registry_config, wit_package)
    env = dict(os.environ)
    cli = [sys.executable, "-X", "importtime", "-m", "pkgloader", "fetch", "test:pkg@=0.2.0", "-o"]
    first = subprocess.run(cli + [str(tmp_path / "1.wasm")], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    # the cold fetch needs the standard library's http.client, not httpx, asyncio or logging;
    # nor dataclasses (and inspect with it), the signature-policy machinery or the mirrors
    # when no policy or mirror applies
    cold = {line.split("|")[-1].strip() for line in first.stderr.splitlines() if line.startswith("import time:")}
    assert {"http.client", "pkgloader._stdhttp"} <= cold
    assert not cold & {"httpx", "httpcore", "h2", "asyncio", "subprocess", "pkgloader._project", "logging", "tempfile",
                       "dataclasses", "inspect", "pkgloader._provenance._enforce", "pkgloader.backends._mirrors"}
    registry.mark()
    warm = subprocess.run(cli + [str(tmp_path / "2.wasm")], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert warm.returncode == 0, warm.stderr
    imported = {line.split("|")[-1].strip() for line in warm.stderr.splitlines() if line.startswith("import time:")}
    assert not imported & {"httpx", "httpcore", "http.client", "ssl", "pkgloader._stdhttp", "cryptography", "truststore"}
    assert registry.requests() == []


def test_corrupted_cache_entry_is_refetched_not_served(registry, registry_config, wit_package, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    files = published(registry, registry_config, wit_package)
    with Client() as c:
        res = c.fetch("test:pkg@=0.1.0", tmp_path / "a.wasm")
        blob = c.engine.cache.blob_path(res.release.digest)
    blob.chmod(0o644)
    data = bytearray(blob.read_bytes())
    data[20] ^= 0xFF
    blob.write_bytes(bytes(data))
    registry.mark()
    with Client() as c:
        res2 = c.fetch("test:pkg@=0.1.0", tmp_path / "b.wasm")
    assert res2.from_cache is False
    assert (tmp_path / "b.wasm").read_bytes() == files["0.1.0"].read_bytes()
    assert registry.requests() == [("GET", f"/v2/test/pkg/blobs/{res.release.digest}")]
    # truncated entry: same story
    blob.chmod(0o644)
    blob.write_bytes(files["0.1.0"].read_bytes()[:10])
    with Client() as c:
        c.fetch("test:pkg@=0.1.0", tmp_path / "c.wasm")
    assert (tmp_path / "c.wasm").read_bytes() == files["0.1.0"].read_bytes()


def test_offline_uses_cache_only(registry, registry_config, wit_package, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    files = published(registry, registry_config, wit_package)
    with Client() as c:
        c.versions("test:pkg")
        c.fetch("test:pkg@0.2", tmp_path / "online.wasm")
    registry.mark()
    with Client(offline=True) as c:
        assert [str(v.version) for v in c.versions("test:pkg")] == ["0.1.0", "0.2.0", "0.2.1"]
        res = c.fetch("test:pkg@0.2", tmp_path / "offline.wasm")
        assert res.path.read_bytes() == files["0.2.1"].read_bytes()
        with pytest.raises(OfflineCacheMiss) as ei:
            c.fetch("test:pkg@=0.1.0", tmp_path / "miss.wasm")
    assert ei.value.render() == (
        "error[offline-cache-miss]: test:pkg@0.1.0 from " + registry.host + " is not in the cache (offline)\n"
        "  hint: run once without --offline to fill the cache"
    )
    assert not (tmp_path / "miss.wasm").exists()
    assert registry.requests() == []


def test_fetch_many_in_one_call(registry, registry_config, wit_package, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    registry_config(registry)
    names = [f"p{i}" for i in range(6)]
    with Client() as c:
        for n in names:
            c.publish(wit_package("test", n, "1.0.0"), f"test:{n}@=1.0.0")
    with Client() as c:
        results = c.fetch_many([f"test:{n}" for n in names], tmp_path / "out")
    assert sorted(r.path.name for r in results) == sorted(f"test_{n}@1.0.0.wasm" for n in names)


def test_async_client_matches_sync(registry, registry_config, wit_package, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    files = published(registry, registry_config, wit_package)

    async def main() -> list[str]:
        async with AsyncClient() as c:
            vs = await c.versions("test:pkg")
            rel = await c.resolve("test:pkg@0.1")
            res = await c.fetch("test:pkg@0.2", tmp_path / "async.wasm")
            many = await c.fetch_many(["test:pkg@=0.1.0", "test:pkg@=0.2.0"], tmp_path / "many")
            data = await c.read_bytes("test:pkg@=0.2.0")
            assert data == files["0.2.0"].read_bytes()
            assert len(many) == 2
            return [str(v.version) for v in vs] + [str(rel.version), str(res.release.version)]

    assert asyncio.run(main()) == ["0.1.0", "0.2.0", "0.2.1", "0.1.0", "0.2.1"]
    assert (tmp_path / "async.wasm").read_bytes() == files["0.2.1"].read_bytes()


def test_concurrent_processes_share_the_cache(registry, registry_config, wit_package, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    files = published(registry, registry_config, wit_package, versions=("1.0.0",))
    procs = [
        subprocess.Popen([sys.executable, "-m", "pkgloader", "fetch", "test:pkg@=1.0.0", "-o", str(tmp_path / f"out{i}.wasm"), "-q"],
                         cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for i in range(6)
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    want = files["1.0.0"].read_bytes()
    for i in range(6):
        assert (tmp_path / f"out{i}.wasm").read_bytes() == want
    cache = Path(os.environ["PKGLOADER_CACHE_DIR"])
    blobs = list((cache / "blobs" / "sha256").iterdir())
    assert len(blobs) == 1 and blobs[0].read_bytes() == want
    assert list((cache / "tmp").glob("*")) == []


def test_local_directory_registry(tmp_path: Path, wit_package, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "pkgs"
    (root / "my-org" / "greeter").mkdir(parents=True)
    for v in ("0.1.0", "0.2.0-rc.1", "0.1.1"):
        (root / "my-org" / "greeter" / f"{v}.wasm").write_bytes(wit_package("my-org", "greeter", v.split("-")[0]).read_bytes())
    (root / "my-org" / "greeter" / "README.txt").write_text("ignored")
    cfgfile = tmp_path / "c.toml"
    cfgfile.write_text(f'default_registry = "files"\n[registry."files".local]\nroot = "{root}"\n')
    cfg = Config.load(config_files=[cfgfile], cache_dir=tmp_path / "cache")
    with Client(cfg) as c:
        assert [str(v.version) for v in c.versions("my-org:greeter")] == ["0.1.0", "0.1.1", "0.2.0-rc.1"]
        res = c.fetch("my-org:greeter", f"{tmp_path}/out/")
        assert res.path.name == "my-org_greeter@0.1.1.wasm"
        assert res.release.backend == "local"
        pre = c.resolve("my-org:greeter@>=0.2.0-rc.1")
        assert str(pre.version) == "0.2.0-rc.1"


def test_cli_warm_fast_path_and_its_fallbacks(registry, registry_config, wit_package, run_cli, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import pkgloader.cli._fast as fast

    files = published(registry, registry_config, wit_package, versions=("1.0.0",))
    want = files["1.0.0"].read_bytes()
    assert run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "a.wasm").code == 0  # full path, writes the memo
    calls: list[int | None] = []
    real = fast._try_fetch
    monkeypatch.setattr(fast, "_try_fetch", lambda argv: calls.append(real(argv)) or calls[-1])
    registry.mark()
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "b.wasm")
    assert (r.code, calls) == (0, [0])  # answered by the fast path
    assert r.out == f"{tmp_path / 'b.wasm'}\n" and r.err.startswith("cached test:pkg@1.0.0 (sha256:")
    assert (tmp_path / "b.wasm").read_bytes() == want and registry.requests() == []

    # an existing output holding these bytes: up to date, answered by the fast path, untouched
    mtime = (tmp_path / "b.wasm").stat().st_mtime_ns
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "b.wasm")
    assert (r.code, calls[-1], r.out) == (0, 0, f"{tmp_path / 'b.wasm'}\n")
    assert r.err.startswith("up to date test:pkg@1.0.0 (sha256:") and registry.requests() == []
    assert (tmp_path / "b.wasm").stat().st_mtime_ns == mtime
    # other bytes there: the fast path steps aside and the full path refuses with its error
    (tmp_path / "b.wasm").write_bytes(b"other")
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "b.wasm")
    assert (r.code, calls[-1]) == (7, None)
    (tmp_path / "b.wasm").write_bytes(want)

    # a config change invalidates the memo: the full path answers (from the cache)
    cfg = Path(os.environ["PKGLOADER_CONFIG"])
    cfg.write_text(cfg.read_text() + "\n# touched\n")
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "c.wasm")
    assert (r.code, calls[-1]) == (0, None)
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "d.wasm")
    assert (r.code, calls[-1]) == (0, 0)  # memo rewritten under the new fingerprint

    # a corrupted blob is never served: the fast path declines, the full path re-fetches
    blob = next((Path(os.environ["PKGLOADER_CACHE_DIR"]) / "blobs" / "sha256").iterdir())
    blob.chmod(0o644)
    blob.write_bytes(want[:-1] + bytes([want[-1] ^ 1]))
    registry.mark()
    r = run_cli("fetch", "test:pkg@=1.0.0", "-o", tmp_path / "e.wasm")
    assert (r.code, calls[-1]) == (0, None)
    assert (tmp_path / "e.wasm").read_bytes() == want
    assert [m for m, p in registry.requests()] == ["GET"]
    assert list(tmp_path.glob(".*.part")) == []


def test_multi_package_fetch_reuses_connections(registry, registry_config, wit_package, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from support.tcpcount import CountingForwarder

    registry_config(registry)
    names = [f"m{i}" for i in range(8)]
    with Client() as c:
        for n in names:
            c.publish(wit_package("test", n, "1.0.0"), f"test:{n}@1.0.0")
    with CountingForwarder("127.0.0.1", registry.port) as fwd:
        class Via:  # the same registry, reached through the counting forwarder
            host, scheme = fwd.host, "http"
        cfg = Config.load(config_files=[write_config(tmp_path, Via)], cache_dir=tmp_path / "fresh-cache")
        from dataclasses import replace

        from pkgloader._config import Origin, Setting

        cfg.settings = replace(cfg.settings, max_concurrency=Setting(4, Origin("flag", "test")))
        with Client(cfg) as c:
            results = c.fetch_many([f"test:{n}" for n in names], tmp_path / "out")
        assert len(results) == 8
        # 8 packages x (tags + manifest + blob) = 24 requests over at most 4 pooled connections
        assert 1 <= fwd.connections <= 4




@pytest.mark.parametrize("way", ["blocks", "buffered"])
def test_large_cold_fetch_is_written_to_disk_once(registry, registry_config, wit_package, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                  monkeypatch: pytest.MonkeyPatch, way: str) -> None:
    """A download of SHARE_MIN bytes or more goes from the socket to the cache file without
    a copy through the page cache (Linux: received into blocks written with O_DIRECT; where
    the file system refuses that, through reused buffers, written behind), is hard-linked to
    the output, not copied; the cache still never serves bytes that no longer match (an
    output edited in place)."""
    from pkgloader import _digest
    from pkgloader._engine import SHARE_MIN

    if way == "buffered":
        monkeypatch.setattr(_digest, "_O_DIRECT", 0)
    blocks: list[bool] = []
    real_blocks = _digest.VerifyingWriter.blocks
    monkeypatch.setattr(_digest.VerifyingWriter, "blocks", lambda self: blocks.append(real_blocks(self)) or blocks[-1])

    registry_config(registry)
    big = wit_package("test", "big", "1.0.0").read_bytes() + custom_section(b"padding", os.urandom(SHARE_MIN + 1000))
    src = tmp_path / "big-src.wasm"
    src.write_bytes(big)
    with Client() as c:
        c.publish(src, "test:big@1.0.0")
        first = c.fetch("test:big@=1.0.0", tmp_path / "out" / "big.wasm")
        blob = c.engine.cache.blob_path(first.release.digest)
        assert not first.from_cache and first.path.read_bytes() == big
        if way == "blocks" and _digest._O_DIRECT:
            assert blocks == [True]  # the real registry's body went into blocks
        else:
            assert not any(blocks)
        assert os.path.samefile(first.path, blob)
        again = c.fetch("test:big@=1.0.0", tmp_path / "again.wasm")  # from the cache: a copy
        assert again.from_cache and not os.path.samefile(again.path, blob)
        with open(first.path, "r+b") as f:  # a tool rewrites the first output in place
            f.seek(len(big) - 10)
            f.write(b"0123456789")
        registry.mark()
        third = c.fetch("test:big@=1.0.0", tmp_path / "third.wasm")
    assert not third.from_cache and third.path.read_bytes() == big
    assert registry.requests() == [("GET", f"/v2/test/big/blobs/{first.release.digest}")]
    assert again.path.read_bytes() == big  # the copy was never touched


def test_cli_warnings_without_logging_imported_up_front(registry, registry_config, wit_package, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The CLI imports ``logging`` only when something is logged: a warning still comes out
    as 'warning: ...' on stderr, and -q still silences it."""
    published(registry, registry_config, wit_package)
    docker = Path(os.environ["DOCKER_CONFIG"])
    docker.mkdir(parents=True, exist_ok=True)
    (docker / "config.json").write_text(json.dumps({"credsStore": "pkgloader-test-absent"}))
    cli = [sys.executable, "-m", "pkgloader", "fetch", "test:pkg@=0.2.0", "-o"]
    loud = subprocess.run(cli + [str(tmp_path / "1.wasm")], capture_output=True, text=True, cwd=tmp_path)
    assert loud.returncode == 0, loud.stderr
    assert loud.stderr.startswith("warning: ")
    assert "docker-credential-pkgloader-test-absent" in loud.stderr and "not on PATH" in loud.stderr
    cold_again = dict(os.environ, PKGLOADER_CACHE_DIR=str(tmp_path / "another-cache"))
    quiet = subprocess.run(cli + [str(tmp_path / "2.wasm"), "-q"], capture_output=True, text=True, cwd=tmp_path,
                           env=cold_again)
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_use_is_recorded_on_the_release_record_not_the_blob(registry, registry_config, wit_package, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``clean --older-than`` keeps what was used recently. A use is recorded on the release
    record (by the library and by the CLI's warm path), never on the blob, whose file may be
    a user's output (hard link) with a modification time that is theirs."""
    published(registry, registry_config, wit_package)
    day = 86400.0
    with Client() as c:
        old = c.fetch("test:pkg@=0.1.0", tmp_path / "a.wasm")
        used = c.fetch("test:pkg@=0.2.0", tmp_path / "b.wasm")
        cache = c.engine.cache
        records = {r.release.version: r.path for r in cache.entries()}
        long_ago = time.time() - 40 * day
        for p in [*records.values(), cache.blob_path(old.release.digest), cache.blob_path(used.release.digest)]:
            os.utime(p, (long_ago, long_ago))
        c.fetch("test:pkg@=0.2.0", tmp_path / "c.wasm")  # served from the cache: a use
    blob = cache.blob_path(used.release.digest)
    assert blob.stat().st_mtime == pytest.approx(long_ago, abs=1)
    assert records[used.release.version].stat().st_mtime > long_ago + day
    # the CLI's warm fast path records a use the same way (the first run writes its memo)
    cli = [sys.executable, "-X", "importtime", "-m", "pkgloader", "fetch", "test:pkg@=0.2.0", "--overwrite", "-o",
           str(tmp_path / "d.wasm")]
    assert subprocess.run(cli, capture_output=True, text=True, cwd=tmp_path).returncode == 0
    os.utime(records[used.release.version], (long_ago, long_ago))
    warm = subprocess.run(cli, capture_output=True, text=True, cwd=tmp_path)
    assert warm.returncode == 0, warm.stderr
    assert "pkgloader._config" not in warm.stderr  # it was the fast path
    assert records[used.release.version].stat().st_mtime > long_ago + day
    assert blob.stat().st_mtime == pytest.approx(long_ago, abs=1)

    files, _ = cache.clean(older_than=30 * day)
    assert files >= 2  # the stale record and its blob
    assert {r.release.version for r in cache.entries()} == {used.release.version}
    assert cache.has_verified_blob(used.release.digest) and not cache.blob_path(old.release.digest).exists()
