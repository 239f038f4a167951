"""Content digests (``sha256:<64 hex>``) and a hashing, size-checking writer."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import sys
from collections import deque
from typing import Any, BinaryIO

from ._frozen import Frozen, init_field
from ._lazyre import LazyPattern
from ._errors import DigestMismatch, InvalidManifest, LocalIOError, SizeMismatch

__all__ = ["Digest", "VerifyingWriter", "sha256_digest"]

_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_OTHER_ALGO_RE = LazyPattern(r"^(sha384|sha512):[0-9a-f]+$")


class Digest(Frozen):
    """A content digest. Only sha256 is produced; sha384/512 are refused with a clear error.
    Ordered by algorithm, then hex."""

    __fields__ = ("algorithm", "hex")
    algorithm: str
    hex: str

    def __init__(self, algorithm: str, hex: str) -> None:
        init_field(self, "algorithm", algorithm)
        init_field(self, "hex", hex)

    def __lt__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return (self.algorithm, self.hex) < (other.algorithm, other.hex)
        return NotImplemented

    def __le__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return (self.algorithm, self.hex) <= (other.algorithm, other.hex)
        return NotImplemented

    def __gt__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return (self.algorithm, self.hex) > (other.algorithm, other.hex)
        return NotImplemented

    def __ge__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return (self.algorithm, self.hex) >= (other.algorithm, other.hex)
        return NotImplemented

    @classmethod
    def parse(cls, text: str, *, what: str = "digest") -> Digest:
        if isinstance(text, str) and _DIGEST_RE.match(text):
            return cls("sha256", text[7:])
        if isinstance(text, str) and _OTHER_ALGO_RE.match(text):
            raise InvalidManifest(
                f"{what} {text[:20]}... uses {text.split(':')[0]}, which pkgloader does not verify",
                code="unsupported-digest",
                hint="publish with sha256 digests (the OCI default)",
            )
        raise InvalidManifest(f"invalid {what} {str(text)[:80]!r}: expected sha256:<64 lowercase hex>", code="invalid-digest")

    @classmethod
    def of(cls, data: bytes) -> Digest:
        return cls("sha256", hashlib.sha256(data).hexdigest())

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    def __repr__(self) -> str:
        return f"<Digest('{self}')>"

    @property
    def short(self) -> str:
        return f"{self.algorithm}:{self.hex[:12]}"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


PARALLEL_HASH_MIN = 8 * 1024 * 1024
#: large content is written behind in steps of this size: each step's write-back to disk is
#: started as soon as it is written (and hashed), and dropped from the page cache
#: ``BEHIND_LAG`` steps later, once on disk
BEHIND_STEP = 4 * 1024 * 1024
BEHIND_LAG = 2
#: on Linux, ``posix_fadvise(DONTNEED)`` starts write-back of a range's dirty pages without
#: waiting, and drops its clean ones
_FADV_DONTNEED: int | None = getattr(os, "POSIX_FADV_DONTNEED", None) if hasattr(os, "posix_fadvise") else None
#: large content received by the socket transport goes into BLOCKS page-aligned blocks of
#: BLOCK bytes, each hashed on one thread and written with O_DIRECT (past the page cache)
#: on another; a tail or a file system that refuses O_DIRECT goes through the page cache
BLOCK = 4 * 1024 * 1024
BLOCKS = 4
_DIRECT_ALIGN = 4096
_O_DIRECT: int = getattr(os, "O_DIRECT", 0) if sys.platform.startswith("linux") else 0
#: chunks queued for the hashing thread; a sink's chunk must stay valid until the sink
#: returns from its HASH_IN_FLIGHT-th next call (the transports use HASH_IN_FLIGHT + 1 buffers)
HASH_IN_FLIGHT = 3


class VerifyingWriter:
    """Write chunks to ``out`` while hashing and counting; refuse to exceed ``size``.

    ``verify()`` raises :class:`DigestMismatch` / :class:`SizeMismatch` with expected vs got.
    Used as an HTTP sink: ``writer.write`` is called with each received chunk. For content
    of ``PARALLEL_HASH_MIN`` bytes or more, hashing runs on a helper thread (hashlib releases
    the GIL), overlapping with receiving and writing the next chunks; at most
    ``HASH_IN_FLIGHT`` chunks are queued, and they are not copied: a chunk must stay valid
    until ``write`` returns from the ``HASH_IN_FLIGHT``-th next call (the transports'
    contract, see ``Request.sink``), since each call first waits for the hash of the chunk
    that many calls back.
    """

    def __init__(self, out: BinaryIO | None, expected: Digest, size: int | None, *, what: str, origin: str) -> None:
        self.out = out
        self._fd = out.fileno() if out is not None and hasattr(out, "fileno") else None
        self.expected = expected
        self.size = size
        self.what = what
        self.origin = origin
        self._hash = hashlib.sha256()
        self.written = 0
        self.head = b""
        self._pool: Any = None
        self._pending: Any = deque()
        self._behind_mark = 0  # write-back was started for the file up to here
        self._behind: Any = deque()  # ranges started, not yet dropped
        self._blocks: list[Any] | None = None  # block mode: (mmap, view, futures) per block
        self._wpool: Any = None
        self._turn = 0
        self._odirect = False
        if size is not None and size >= PARALLEL_HASH_MIN:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pkgloader-hash")

    def __call__(self, chunk: bytes | memoryview) -> None:
        """The writer is itself a sink (see ``Request.sink``)."""
        self.write(chunk)

    def _too_large(self) -> SizeMismatch:
        return SizeMismatch(
            f"content of {self.what} is larger than its manifest says",
            details=[f"expected {self.size} bytes (manifest layer)", f"got      more than {self.size} bytes from {self.origin}",
                     "nothing was kept"],
            hint="retry; if it persists the registry is serving corrupted content",
        )

    def write(self, chunk: bytes | memoryview) -> None:
        n = len(chunk)
        if self.size is not None and self.written + n > self.size:
            raise self._too_large()
        if self.written < 8:
            self.head = (self.head + bytes(chunk[: 8 - self.written]))[:8]
        if self._pool is not None:
            while len(self._pending) >= HASH_IN_FLIGHT:
                self._pending.popleft().result()  # that chunk's buffer may be reused after this
            self._pending.append(self._pool.submit(self._hash.update, chunk))
        else:
            self._hash.update(chunk)
        try:
            if self._fd is not None:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(self._fd, view):]
            elif self.out is not None:
                self.out.write(chunk)
        except OSError as exc:
            raise self.local_error(exc) from None
        self.written += n
        if self._pool is not None and _FADV_DONTNEED is not None and self._fd is not None \
                and self.written - self._behind_mark >= BEHIND_STEP:
            # after the write: the hashing thread runs this once the range is on its way
            self._pending.append(self._pool.submit(self._write_behind, self._behind_mark, self.written))
            self._behind_mark = self.written

    def local_error(self, exc: OSError) -> LocalIOError:
        """A failed write on this side (disk full, ...): a local error, not the network's,
        so that it is reported as such and never retried as a download."""
        return LocalIOError(
            f"cannot write the download of {self.what} to the cache: {exc.strerror or exc}",
            details=["nothing was kept"],
            hint="free some disk space, or choose another cache with --cache-dir",
        )

    # --- block mode: the transport receives into the writer's own aligned blocks ------------

    def blocks(self) -> bool:
        """Whether the transport may receive the content into this writer's blocks
        (:meth:`next_block`, then :meth:`commit_block` with the bytes it put there). Each
        block is hashed on one thread and written to the file with ``O_DIRECT`` on another,
        straight from the block to the disk: no copy into the page cache, no page cache to
        fill, and little left for the final fsync. Only for large content from its first
        byte, on Linux, on a file system that accepts ``O_DIRECT``."""
        if self._blocks is not None:
            return True
        if not _O_DIRECT or self._pool is None or self._fd is None or self.written:
            return False
        import fcntl

        try:
            fcntl.fcntl(self._fd, fcntl.F_SETFL, fcntl.fcntl(self._fd, fcntl.F_GETFL) | _O_DIRECT)
        except OSError:
            return False  # tmpfs and others: the transport takes another way
        import mmap
        from concurrent.futures import ThreadPoolExecutor

        self._odirect = True
        self._wpool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pkgloader-write")
        maps = [mmap.mmap(-1, BLOCK) for _ in range(BLOCKS)]  # anonymous maps are page-aligned
        self._blocks = [[m, memoryview(m), ()] for m in maps]
        return True

    def next_block(self) -> memoryview:
        """The next free block (waiting until its last content is hashed and written)."""
        assert self._blocks is not None
        entry = self._blocks[self._turn]
        busy, entry[2] = entry[2], ()
        for fut in busy:
            fut.result()
        view: memoryview = entry[1]
        return view

    def commit_block(self, n: int) -> None:
        """The transport put ``n`` bytes at the start of the block from :meth:`next_block`."""
        assert self._blocks is not None and self._pool is not None
        if self.size is not None and self.written + n > self.size:
            raise self._too_large()
        entry = self._blocks[self._turn]
        view = entry[1][:n]
        if self.written < 8:
            self.head = (self.head + bytes(view[: 8 - self.written]))[:8]
        entry[2] = (self._pool.submit(self._hash.update, view), self._wpool.submit(self._write_block, view, self.written))
        self.written += n
        self._turn = (self._turn + 1) % len(self._blocks)

    def _write_block(self, view: memoryview, offset: int) -> None:
        """On the writing thread: the block's bytes to the file at ``offset``."""
        assert self._fd is not None
        try:
            if self._odirect and (len(view) % _DIRECT_ALIGN or offset % _DIRECT_ALIGN):
                self._buffered()  # the tail: O_DIRECT takes whole aligned blocks only
            while view:
                try:
                    k = os.pwrite(self._fd, view, offset)
                except OSError as exc:
                    if exc.errno != errno.EINVAL or not self._odirect:
                        raise
                    self._buffered()  # an alignment this device will not take: the page cache then
                    continue
                view, offset = view[k:], offset + k
        except OSError as exc:
            raise self.local_error(exc) from None

    def _buffered(self) -> None:
        """Writes from here on go through the page cache."""
        if self._odirect and self._fd is not None:
            import fcntl

            self._odirect = False
            fcntl.fcntl(self._fd, fcntl.F_SETFL, fcntl.fcntl(self._fd, fcntl.F_GETFL) & ~_O_DIRECT)

    def _write_behind(self, start: int, end: int) -> None:
        """On the hashing thread, for a range of the file that is written (and hashed): start
        its write-back now, so that the final fsync has only the tail left to wait for, and
        drop the range from ``BEHIND_LAG`` steps ago from the page cache, where a large
        download would otherwise push out everything else (and, on a virtual machine, draw
        fresh memory from the host for every page). Advisory: errors are ignored."""
        if _FADV_DONTNEED is None or self._fd is None:
            return
        try:
            os.posix_fadvise(self._fd, start, end - start, _FADV_DONTNEED)
            self._behind.append((start, end))
            if len(self._behind) > BEHIND_LAG:
                s0, e0 = self._behind.popleft()
                os.posix_fadvise(self._fd, s0, e0 - s0, _FADV_DONTNEED)
        except OSError:
            pass

    def _drain(self) -> None:
        while self._pending:
            self._pending.popleft().result()
        for entry in self._blocks or ():
            busy, entry[2] = entry[2], ()
            for fut in busy:
                fut.result()

    def close(self) -> None:
        """Wait for the helper threads and free them. Raises nothing: an error of theirs was
        raised by ``verify`` or the write that met it, or is moot after the error that ended
        the download."""
        try:
            self._drain()
        except Exception:
            pass
        finally:
            for pool in (self._pool, self._wpool):
                if pool is not None:
                    pool.shutdown(wait=True)
            self._pool = self._wpool = None
            if self._blocks is not None:
                for entry in self._blocks:
                    try:
                        entry[1].release()
                        entry[0].close()
                    except BufferError:  # a view still held somewhere: freed with it
                        pass
                self._blocks = None
            try:
                self._buffered()
            except OSError:
                pass

    def reset(self) -> None:
        """Start over (before a retried download)."""
        self._drain()
        self._hash = hashlib.sha256()
        self.written = 0
        self.head = b""
        self._behind_mark = 0
        self._behind.clear()
        self._turn = 0
        if self.out is not None:
            self.out.seek(0)
            self.out.truncate()

    @property
    def digest(self) -> Digest:
        self._drain()
        return Digest("sha256", self._hash.hexdigest())

    def verify(self) -> None:
        self._drain()
        if self.size is not None and self.written != self.size:
            raise SizeMismatch(
                f"content of {self.what} is {self.written} bytes, not the {self.size} its manifest says",
                details=[f"expected {self.size} bytes (manifest layer)", f"got      {self.written} bytes from {self.origin}",
                         "nothing was kept"],
                hint="retry; if it persists the registry is serving corrupted content",
            )
        got = self.digest
        if got != self.expected:
            raise DigestMismatch(
                f"content of {self.what} does not match its digest",
                details=[f"expected {self.expected}  (manifest layer)", f"got      {got}  ({self.written} bytes from {self.origin})",
                         "nothing was kept"],
                hint="retry; if it persists the registry is serving corrupted content",
            )
