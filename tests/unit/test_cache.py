"""The content-addressed cache and the verifying writer, exercised directly.

The end-to-end behaviour (fetch through a real registry into the cache) is covered in
tests/integration; these tests pin the invariants the cache promises on its own: nothing
unverified is committed, nothing partial is left behind, a corrupted entry is never served,
and concurrent writers of the same blob do not clobber each other.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from pathlib import Path

import pytest

from pkgloader import _digest
from pkgloader._cache import Cache
from pkgloader._digest import Digest, VerifyingWriter
from pkgloader._errors import DigestMismatch, OutputExists, SizeMismatch


def _digest_of(data: bytes) -> Digest:
    return Digest("sha256", hashlib.sha256(data).hexdigest())


def _ingest(cache: Cache, data: bytes, *, digest: Digest | None = None, size: int | None = -1,
            chunk: int = 4096) -> None:
    digest = digest or _digest_of(data)
    with cache.ingest(digest, len(data) if size == -1 else size, what="test blob", origin="unit test") as w:
        for i in range(0, len(data), chunk):
            w.write(memoryview(data)[i:i + chunk])


def _leftovers(cache: Cache) -> list[Path]:
    tmp = cache.root / "tmp"
    return list(tmp.iterdir()) if tmp.exists() else []


# --- VerifyingWriter ----------------------------------------------------------------------


@pytest.mark.parametrize("parallel", [False, True], ids=["inline-hash", "threaded-hash"])
def test_writer_hashes_every_chunk(tmp_path, monkeypatch, parallel):
    if parallel:
        monkeypatch.setattr(_digest, "PARALLEL_HASH_MIN", 1)
    data = os.urandom(300_000)
    # buffers used in turn, the way the HTTP layer hands out chunks: a chunk stays valid
    # until the HASH_IN_FLIGHT-th next write returns, and is overwritten right after
    bufs = [bytearray(8192) for _ in range(_digest.HASH_IN_FLIGHT + 1)]
    with open(tmp_path / "out", "w+b") as f:
        w = VerifyingWriter(f, _digest_of(data), len(data), what="blob", origin="here")
        assert (w._pool is not None) is parallel
        for turn, i in enumerate(range(0, len(data), 8192)):
            buf = bufs[turn % len(bufs)]
            piece = data[i:i + 8192]
            buf[: len(piece)] = piece
            w.write(memoryview(buf)[: len(piece)])
        w.verify()
        w.close()
    assert (tmp_path / "out").read_bytes() == data
    assert w.head == data[:8]


@pytest.mark.parametrize("parallel", [False, True], ids=["inline-hash", "threaded-hash"])
def test_writer_reports_digest_mismatch(tmp_path, monkeypatch, parallel):
    if parallel:
        monkeypatch.setattr(_digest, "PARALLEL_HASH_MIN", 1)
    data = b"x" * 50_000
    w = VerifyingWriter(None, _digest_of(b"something else"), len(data), what="wasi:http 0.2.0", origin="reg.test")
    w.write(data)
    with pytest.raises(DigestMismatch) as info:
        w.verify()
    w.close()
    assert "wasi:http 0.2.0" in str(info.value)


def test_writer_refuses_more_than_the_declared_size():
    w = VerifyingWriter(None, _digest_of(b"abc"), 3, what="blob", origin="reg.test")
    w.write(b"ab")
    with pytest.raises(SizeMismatch):
        w.write(b"cd")


def test_writer_reports_short_content():
    w = VerifyingWriter(None, _digest_of(b"abc"), 3, what="blob", origin="reg.test")
    w.write(b"ab")
    with pytest.raises(SizeMismatch):
        w.verify()


@pytest.mark.parametrize("parallel", [False, True], ids=["inline-hash", "threaded-hash"])
def test_writer_reset_starts_over(tmp_path, monkeypatch, parallel):
    if parallel:
        monkeypatch.setattr(_digest, "PARALLEL_HASH_MIN", 1)
    data = os.urandom(20_000)
    with open(tmp_path / "out", "w+b") as f:
        w = VerifyingWriter(f, _digest_of(data), len(data), what="blob", origin="here")
        w.write(data[:7000])  # a dropped connection half way
        w.reset()
        w.write(data)
        w.verify()
        w.close()
    assert (tmp_path / "out").read_bytes() == data


def _record_fadvise(monkeypatch) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
    calls: list[tuple[int, int]] = []
    real = os.posix_fadvise

    def recording(fd, offset, length, advice):  # type: ignore[no-untyped-def]
        assert advice == os.POSIX_FADV_DONTNEED
        calls.append((offset, offset + length))
        return real(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", recording)
    return calls


def _behind_ranges(calls: list[tuple[int, int]]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Split recorded DONTNEED calls into write-back starts (first call for a range) and
    drops (the second)."""
    started: list[tuple[int, int]] = []
    dropped: list[tuple[int, int]] = []
    for r in calls:
        (dropped if r in started else started).append(r)
    return started, dropped


@pytest.mark.skipif(_digest._FADV_DONTNEED is None, reason="posix_fadvise is not on this system (macOS, Windows)")
def test_large_content_is_written_behind(tmp_path, monkeypatch):
    # each step is handed to write-back once written and hashed, and dropped from the page
    # cache BEHIND_LAG steps later; together the steps cover the content in order
    monkeypatch.setattr(_digest, "PARALLEL_HASH_MIN", 1)
    monkeypatch.setattr(_digest, "BEHIND_STEP", 64 * 1024)
    calls = _record_fadvise(monkeypatch)
    data = os.urandom(1_000_000)
    with open(tmp_path / "out", "w+b") as f:
        w = VerifyingWriter(f, _digest_of(data), len(data), what="blob", origin="here")
        for i in range(0, len(data), 10_000):
            w.write(data[i:i + 10_000])
        w.verify()
        w.close()
    assert (tmp_path / "out").read_bytes() == data
    started, dropped = _behind_ranges(calls)
    assert started[0][0] == 0 and all(a[1] == b[0] for a, b in zip(started, started[1:]))
    assert all(e - s >= 64 * 1024 for s, e in started) and started[-1][1] > len(data) - 64 * 1024
    assert dropped == started[: len(started) - _digest.BEHIND_LAG]


@pytest.mark.skipif(not _digest._O_DIRECT, reason="O_DIRECT block writes are Linux-only")
@pytest.mark.parametrize("good", [True, False], ids=["verified", "mismatch"])
def test_ingest_in_block_mode(tmp_path, monkeypatch, good):
    # what the socket transport does with a large body: fill the writer's blocks; the cache
    # commits the content only when it verifies, and leaves nothing behind otherwise
    monkeypatch.setattr(_digest, "PARALLEL_HASH_MIN", 1)
    monkeypatch.setattr(_digest, "BLOCK", 16 * 1024)
    cache = Cache(tmp_path)
    data = os.urandom(200_001)
    digest = _digest_of(data if good else data[::-1])
    try:
        with cache.ingest(digest, len(data), what="blob", origin="here") as w:
            assert w.blocks()
            pos = 0
            while pos < len(data):
                view = w.next_block()
                n = min(len(view), len(data) - pos)
                view[:n] = data[pos:pos + n]
                w.commit_block(n)
                pos += n
    except DigestMismatch:
        assert not good
    assert cache.has_verified_blob(digest, len(data)) is good
    if good:
        assert cache.blob_path(digest).read_bytes() == data
    assert _leftovers(cache) == []


def test_write_behind_failures_are_ignored(tmp_path, monkeypatch):
    # the advice is only that: a system that refuses it still gets its verified content
    monkeypatch.setattr(_digest, "PARALLEL_HASH_MIN", 1)
    monkeypatch.setattr(_digest, "BEHIND_STEP", 4096)
    monkeypatch.setattr(_digest, "_FADV_DONTNEED", 4)

    def refuse(*a):  # type: ignore[no-untyped-def]
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(os, "posix_fadvise", refuse, raising=False)
    data = os.urandom(100_000)
    with open(tmp_path / "out", "w+b") as f:
        w = VerifyingWriter(f, _digest_of(data), len(data), what="blob", origin="here")
        w.write(data)
        w.verify()
        w.close()
    assert (tmp_path / "out").read_bytes() == data


# --- Cache.ingest -------------------------------------------------------------------------


def test_ingest_commits_verified_content_read_only(tmp_path):
    cache = Cache(tmp_path)
    data = os.urandom(10_000)
    _ingest(cache, data)
    path = cache.blob_path(_digest_of(data))
    assert path.read_bytes() == data
    assert not os.access(path, os.W_OK) or os.geteuid() == 0
    assert cache.has_verified_blob(_digest_of(data), len(data))
    assert _leftovers(cache) == []


def test_ingest_keeps_nothing_on_a_digest_mismatch(tmp_path):
    cache = Cache(tmp_path)
    data = b"the registry sent the wrong bytes"
    wanted = _digest_of(b"the bytes we asked for")
    with pytest.raises(DigestMismatch):
        _ingest(cache, data, digest=wanted)
    assert not cache.blob_path(wanted).exists()
    assert _leftovers(cache) == []


def test_ingest_keeps_nothing_when_the_download_fails(tmp_path):
    cache = Cache(tmp_path)
    data = os.urandom(5000)
    with pytest.raises(ConnectionResetError):
        with cache.ingest(_digest_of(data), len(data), what="blob", origin="here") as w:
            w.write(data[:100])
            raise ConnectionResetError("dropped")
    assert not cache.blob_path(_digest_of(data)).exists()
    assert _leftovers(cache) == []


def test_ingest_with_threaded_hash_keeps_nothing_on_mismatch(tmp_path, monkeypatch):
    monkeypatch.setattr(_digest, "PARALLEL_HASH_MIN", 1)
    cache = Cache(tmp_path)
    data = os.urandom(100_000)
    wanted = _digest_of(data[:-1] + bytes([data[-1] ^ 1]))  # never the same bytes
    with pytest.raises(DigestMismatch):
        _ingest(cache, data, digest=wanted)
    assert not cache.blob_path(wanted).exists()
    assert _leftovers(cache) == []


@pytest.mark.parametrize("durable", [False, True])
def test_fsync_only_when_durable(tmp_path, monkeypatch, durable):
    calls: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real_fsync(fd))[1])
    cache = Cache(tmp_path, durable=durable)
    data = b"durable?"
    _ingest(cache, data)
    cache.copy_blob(_digest_of(data), tmp_path / "out" / "x.wasm", overwrite=False)
    assert (tmp_path / "out" / "x.wasm").read_bytes() == data
    # durable: the blob, its directory, the output and its directory
    assert (len(calls) >= 4) if durable else (calls == [])


# --- reading back -------------------------------------------------------------------------


@pytest.mark.parametrize("damage", [
    lambda data: data[:-1] + bytes([data[-1] ^ 1]),  # same size, one bit flipped
    lambda data: data[:100],  # truncated
], ids=["bit-flip", "truncated"])
def test_damaged_blob_is_discarded_not_served(tmp_path, damage):
    cache = Cache(tmp_path)
    data = os.urandom(4096)
    _ingest(cache, data)
    path = cache.blob_path(_digest_of(data))
    path.chmod(0o644)
    path.write_bytes(damage(data))
    assert not cache.has_verified_blob(_digest_of(data), len(data))
    assert not path.exists()


def test_copy_blob_refuses_to_overwrite(tmp_path):
    cache = Cache(tmp_path / "cache")
    data = b"new content"
    _ingest(cache, data)
    dest = tmp_path / "dest.wasm"
    dest.write_bytes(b"precious")
    with pytest.raises(OutputExists):
        cache.copy_blob(_digest_of(data), dest, overwrite=False)
    assert dest.read_bytes() == b"precious"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []
    cache.copy_blob(_digest_of(data), dest, overwrite=True)
    assert dest.read_bytes() == data


def test_verify_all_removes_bad_blobs(tmp_path):
    cache = Cache(tmp_path)
    good, bad = os.urandom(1000), os.urandom(1000)
    _ingest(cache, good)
    _ingest(cache, bad)
    p = cache.blob_path(_digest_of(bad))
    p.chmod(0o644)
    p.write_bytes(b"garbage")
    checked, removed, unusable = cache.verify_all()
    assert checked == 2 and removed == [p] and unusable == []
    assert cache.has_verified_blob(_digest_of(good))


# --- several processes --------------------------------------------------------------------


def _worker(root: str, seed: int, n: int) -> None:
    import random

    rng = random.Random(seed)
    cache = Cache(Path(root))
    data = bytes(rng.getrandbits(8) for _ in range(n))
    digest = _digest_of(data)
    for _ in range(5):  # downloads run in parallel; ingest serialises the commit
        with cache.ingest(digest, n, what="shared blob", origin="worker") as w:
            for i in range(0, n, 997):  # small chunks: maximise interleaving
                w.write(data[i:i + 997])
        assert cache.has_verified_blob(digest, n)


def test_concurrent_processes_share_one_blob(tmp_path):
    n = 200_000
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(str(tmp_path), 42, n)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        if p.exitcode is None:
            p.kill()
        assert p.exitcode == 0
    cache = Cache(tmp_path)
    blobs = cache.blobs()
    assert len(blobs) == 1
    assert cache.has_verified_blob(Digest("sha256", blobs[0].name), n)
    assert _leftovers(cache) == []


# --- sharing a large download with the output ---------------------------------------------


def test_shared_output_is_one_file_with_the_cache_entry(tmp_path):
    cache = Cache(tmp_path / "cache")
    data = os.urandom(50_000)
    _ingest(cache, data)
    blob = cache.blob_path(_digest_of(data))
    out = tmp_path / "out" / "big.wasm"
    cache.copy_blob(_digest_of(data), out, overwrite=False, share=True)
    assert out.read_bytes() == data
    assert os.path.samefile(out, blob)  # written once
    assert os.stat(out).st_mode & 0o777 == 0o644 & ~_current_umask()  # the user's usual mode
    assert [p.name for p in out.parent.iterdir()] == ["big.wasm"]  # no temp names left
    # a later copy to another output is a copy: editing one output never reaches another
    other = tmp_path / "other.wasm"
    cache.copy_blob(_digest_of(data), other, overwrite=False)
    assert not os.path.samefile(other, blob)


def test_editing_a_shared_output_in_place_is_caught_by_the_cache(tmp_path):
    cache = Cache(tmp_path / "cache")
    data = os.urandom(50_000)
    _ingest(cache, data)
    out = tmp_path / "big.wasm"
    cache.copy_blob(_digest_of(data), out, overwrite=False, share=True)
    with open(out, "r+b") as f:  # a tool that rewrites its input in place
        f.write(b"changed")
    assert not cache.has_verified_blob(_digest_of(data), len(data))  # discarded, not served
    assert not cache.blob_path(_digest_of(data)).exists()
    assert out.read_bytes().startswith(b"changed")  # the user's file is theirs


def test_share_falls_back_to_a_copy_when_links_fail(tmp_path, monkeypatch):
    cache = Cache(tmp_path / "cache")
    data = os.urandom(5_000)
    _ingest(cache, data)

    def no_links(src, dst, **kw):  # another file system
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    out = tmp_path / "o.wasm"
    cache.copy_blob(_digest_of(data), out, overwrite=True, share=True)
    assert out.read_bytes() == data
    assert not os.path.samefile(out, cache.blob_path(_digest_of(data)))


def test_share_refuses_to_overwrite_too(tmp_path):
    cache = Cache(tmp_path / "cache")
    data = os.urandom(5_000)
    _ingest(cache, data)
    out = tmp_path / "o.wasm"
    out.write_bytes(b"precious")
    with pytest.raises(OutputExists):
        cache.copy_blob(_digest_of(data), out, overwrite=False, share=True)
    assert out.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "o.wasm"]


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
