"""The local content-addressed cache.

Layout (no ``:`` in any file name, so it is safe on every OS)::

    <root>/blobs/sha256/<hex>                          verified content, read-only
    <root>/releases/<registry>/<ns>/<name>/<version>.json   release records
    <root>/tags/<registry>/<ns>/<name>.json            version lists (for --offline)
    <root>/metadata/<registry>.json                    registry metadata (see _source)
    <root>/tmp/                                        partial downloads
    <root>/locks/<hex>.lock                            Windows only: one committer per blob

Content is written to a temp file in ``tmp/`` while it is hashed and size-checked, fsynced
(``durable``, the default) and renamed into ``blobs/`` only after it verified. A blob is
hashed again before it is served; a corrupted or truncated entry is discarded, never served.
Several processes fetching the same blob each rename their own verified copy into place
(atomic; on Windows, where a replace fails while a reader has the file open, they serialise
on a lock file and the second one finds the blob in place).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ._json import load_json
from ._digest import Digest, VerifyingWriter
from ._errors import LocalIOError
from ._fsutil import _umask, atomic_write_bytes, fsync_dir, make_temp, unlink_quietly
from ._log import get_logger
from ._warm import registry_dir_name, release_record_path, touch_release
from ._ref import PackageRef
from ._release import Release
from ._semver import Version

__all__ = ["Cache", "CacheEntry"]

log = get_logger()

_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class CacheEntry:
    release: Release
    blob_present: bool
    path: Path


class Cache:
    """``durable``: fsync content and outputs before renaming them into place (the default;
    ``[pkgloader] fsync = false`` turns it off: a torn entry is still caught by
    verify-on-read)."""

    def __init__(self, root: Path, *, durable: bool = True) -> None:
        self.root = Path(root)
        self.durable = durable

    # --- paths --------------------------------------------------------------------------

    def blob_path(self, digest: Digest) -> Path:
        return self.root / "blobs" / digest.algorithm / digest.hex

    def _release_path(self, registry: str, package: PackageRef, version: Version) -> Path:
        return Path(release_record_path(str(self.root), registry, package.namespace, package.name, str(version)))

    def _versions_path(self, registry: str, package: PackageRef) -> Path:
        return self.root / "tags" / registry_dir_name(registry) / package.namespace / f"{package.name}.json"

    # --- blobs --------------------------------------------------------------------------

    def has_verified_blob(self, digest: Digest, size: int | None = None) -> bool:
        """True when the blob is present and its bytes hash to ``digest`` (and are ``size``
        long). A bad entry is removed so that it is fetched again."""
        path = self.blob_path(digest)
        try:
            st = path.stat()
        except FileNotFoundError:
            return False
        if size is not None and st.st_size != size:
            self._discard(path, f"size {st.st_size} != {size}")
            return False
        h = hashlib.sha256()
        try:
            with open(path, "rb") as f:
                buf = bytearray(_READ_CHUNK)
                view = memoryview(buf)
                while n := f.readinto(buf):
                    h.update(view[:n])
        except OSError as exc:
            log.warning("cannot read cached blob %s: %s", path, exc)
            return False
        if h.hexdigest() != digest.hex:
            self._discard(path, "content does not match its digest")
            return False
        return True

    def _discard(self, path: Path, why: str) -> None:
        log.warning("discarding corrupted cache entry %s (%s); it will be fetched again", path, why)
        try:
            path.unlink()
        except OSError:
            pass

    @contextmanager
    def lock(self, digest: Digest) -> Iterator[None]:
        """An exclusive inter-process lock for one blob (advisory; no-op where unsupported)."""
        lock_dir = self.root / "locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_dir / f"{digest.hex}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX)
            except ImportError:  # pragma: no cover - Windows: msvcrt locks a byte range
                import msvcrt

                msvcrt.locking(fd, msvcrt.LK_LOCK, 1)  # type: ignore[attr-defined]
            yield
        finally:
            os.close(fd)  # closing releases the lock

    @contextmanager
    def ingest(self, digest: Digest, size: int | None, *, what: str, origin: str) -> Iterator[VerifyingWriter]:
        """Yield a writer; on clean exit the content is verified and moved into
        place. On any error (including a mismatch) nothing is kept."""
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        # created read-only (the descriptor still writes): blobs are never modified in place
        fd, tmp = make_temp(tmp_dir, f"{digest.hex[:16]}.", mode=_BLOB_MODE)
        try:
            with os.fdopen(fd, "w+b") as f:
                writer = VerifyingWriter(f, digest, size, what=what, origin=origin)
                try:
                    yield writer
                    writer.verify()
                finally:
                    writer.close()
                f.flush()
                if self.durable:
                    os.fsync(f.fileno())
            final = self.blob_path(digest)
            final.parent.mkdir(parents=True, exist_ok=True)
            if os.name == "nt":  # pragma: no cover - a replace fails there while a reader has the file open
                os.chmod(tmp, 0o444)
                with self.lock(digest):
                    if final.exists() and self.has_verified_blob(digest, size):
                        os.unlink(tmp)  # another process committed it first
                    else:
                        os.replace(tmp, final)
            else:
                # Several processes may commit the same blob: each renames its own verified
                # copy into place atomically, readers see one complete file or the other
                os.replace(tmp, final)
            if self.durable:
                fsync_dir(final.parent)
        except BaseException:
            unlink_quietly(tmp)
            raise

    def copy_blob(self, digest: Digest, dest: Path, *, overwrite: bool, share: bool = False) -> None:
        """Copy a (just verified) blob to ``dest`` atomically: temp file next to ``dest``,
        then rename. Refuses to replace ``dest`` unless ``overwrite``.

        ``share``: make ``dest`` a hard link to the cache entry instead of a copy when both
        are on one file system, so that a large download is written to disk once, not
        twice. The entry then takes the output's permissions; if the output is later
        edited in place, the entry no longer matches its digest and is discarded and
        fetched again on its next use (every read is verified), never served."""
        from ._errors import OutputExists

        src = self.blob_path(digest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = _link_beside(src, dest) if share else None
        try:
            if tmp is None:
                fd, tmp = make_temp(dest.parent, f".{dest.name}.", mode=0o644)  # less the umask
                with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
                    _kernel_copy(inp, out)
                    out.flush()
                    if self.durable:
                        os.fsync(out.fileno())
            else:
                os.chmod(tmp, 0o644 & ~_umask())  # the shared file takes the output's usual mode
            if overwrite:
                os.replace(tmp, dest)
            else:
                try:
                    os.link(tmp, dest)  # atomic create-if-absent
                except FileExistsError:
                    raise OutputExists.at(dest) from None
                except OSError:  # no hard links here: check, then rename
                    if dest.exists():
                        raise OutputExists.at(dest) from None
                    os.replace(tmp, dest)
                else:
                    os.unlink(tmp)
            if self.durable:
                fsync_dir(dest.parent)
        except BaseException:
            if tmp is not None:
                unlink_quietly(tmp)
            raise

    def read_blob(self, digest: Digest) -> bytes:
        return self.blob_path(digest).read_bytes()

    # --- release records and version lists -----------------------------------------------

    def put_release(self, release: Release) -> None:
        path = self._release_path(release.registry, release.package, release.version)
        data = dict(release.to_json(), cached_at=time.time())
        self._write_json(path, data)

    def get_release(self, registry: str, package: PackageRef, version: Version) -> Release | None:
        path = self._release_path(registry, package, version)
        data = self._read_json(path)
        if data is None:
            return None
        try:
            return Release.from_json(data)
        except (KeyError, ValueError, TypeError):
            self._discard(path, "unreadable release record")
            return None

    def releases(self, registry: str, package: PackageRef) -> list[Release]:
        directory = self.root / "releases" / registry_dir_name(registry) / package.namespace / package.name
        out = []
        for p in sorted(directory.glob("*.json")):
            v = Version.from_tag(p.stem)
            if v is not None:
                r = self.get_release(registry, package, v)
                if r is not None:
                    out.append(r)
        return out

    def put_versions(self, registry: str, package: PackageRef, versions: list[tuple[str, bool]]) -> None:
        self._write_json(self._versions_path(registry, package),
                         {"versions": [[v, y] for v, y in versions], "fetched_at": time.time()})

    def get_versions(self, registry: str, package: PackageRef) -> tuple[list[tuple[str, bool]], float] | None:
        data = self._read_json(self._versions_path(registry, package))
        if data is None:
            return None
        try:
            return [(str(v), bool(y)) for v, y in data["versions"]], float(data["fetched_at"])
        except (KeyError, TypeError, ValueError):
            return None

    def _write_json(self, path: Path, data: Any) -> None:
        try:
            atomic_write_bytes(path, json.dumps(data, sort_keys=True).encode(), durable=False)
        except OSError as exc:
            raise LocalIOError(f"cannot write to the cache at {str(self.root)!r}: {exc.strerror or exc}",
                               hint="check permissions, or choose another --cache-dir") from None

    def _read_json(self, path: Path) -> Any:
        try:
            return load_json(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None

    # --- maintenance ---------------------------------------------------------------------

    def entries(self) -> list[CacheEntry]:
        out = []
        base = self.root / "releases"
        for path in sorted(base.glob("*/*/*/*.json")):
            data = self._read_json(path)
            try:
                release = Release.from_json(data)
            except Exception:  # noqa: BLE001 - a broken record is listed as absent
                continue
            out.append(CacheEntry(release, self.blob_path(release.digest).is_file(), path))
        return out

    def blobs(self) -> list[Path]:
        return sorted(p for p in (self.root / "blobs" / "sha256").glob("*") if p.is_file())

    def verify_all(self) -> tuple[int, list[Path]]:
        """Hash every blob; remove the bad ones. Returns (checked, removed)."""
        removed = []
        checked = 0
        for path in self.blobs():
            checked += 1
            if not self.has_verified_blob(Digest("sha256", path.name)):
                removed.append(path)
        for tmp in (self.root / "tmp").glob("*.part"):
            try:
                if time.time() - tmp.stat().st_mtime > 3600:
                    tmp.unlink()
            except OSError:
                pass
        return checked, removed

    def clean(self, older_than: float | None = None) -> tuple[int, int]:
        """Remove cached content (all, or what was last used more than ``older_than``
        seconds ago). Returns (files removed, bytes freed)."""
        now = time.time()
        files = 0
        freed = 0
        if older_than is None:
            for sub in ("blobs", "releases", "tags", "metadata", "tmp", "warg", "locks"):
                d = self.root / sub
                if d.exists():
                    for p in d.rglob("*"):
                        if p.is_file():
                            files += 1
                            freed += p.stat().st_size
                    import shutil

                    shutil.rmtree(d, ignore_errors=True)
            return files, freed
        cutoff = now - older_than
        for entry in self.entries():
            try:
                st = entry.path.stat()
            except OSError:
                continue
            blob = self.blob_path(entry.release.digest)
            used = max(st.st_mtime, _atime(blob))
            if used < cutoff:
                files += 1
                entry.path.unlink(missing_ok=True)
        referenced = {e.release.digest.hex for e in self.entries()}
        for blob in self.blobs():
            if blob.name not in referenced and max(blob.stat().st_mtime, _atime(blob)) < cutoff:
                files += 1
                freed += blob.stat().st_size
                if os.name == "nt":  # pragma: no cover - read-only files cannot be deleted there
                    blob.chmod(0o644)
                # (no chmod elsewhere: a blob may be hard-linked to a user's output, whose
                # permissions are theirs)
                blob.unlink(missing_ok=True)
        return files, freed

    def touch(self, release: Release) -> None:
        """Record a use (for ``clean --older-than``) without relying on atime."""
        touch_release(str(self._release_path(release.registry, release.package, release.version)))


def _atime(path: Path) -> float:
    try:
        st = path.stat()
        return max(st.st_atime, st.st_mtime)
    except OSError:
        return 0.0


_BLOB_MODE = 0o444 if os.name != "nt" else 0o600


def _link_beside(src: Path, dest: Path) -> str | None:
    """A hard link to ``src`` under a temporary name next to ``dest``; None where links do
    not work (another file system, no hard links, too many links)."""
    for _ in range(3):
        tmp = str(dest.parent / f".{dest.name}.{os.urandom(6).hex()}.part")
        try:
            os.link(src, tmp)
            return tmp
        except FileExistsError:
            continue
        except OSError:
            return None
    return None


def _kernel_copy(inp: Any, out: Any) -> None:
    """Copy with copy_file_range where available (no user-space buffers)."""
    size = os.fstat(inp.fileno()).st_size
    copied = 0
    try:
        while copied < size:
            n = os.copy_file_range(inp.fileno(), out.fileno(), size - copied)
            if n == 0:
                break
            copied += n
    except (AttributeError, OSError):  # no copy_file_range (or not across these file systems)
        inp.seek(copied)
        out.seek(copied)
    else:
        if copied >= size:
            return
    import shutil

    shutil.copyfileobj(inp, out, 1 << 20)

