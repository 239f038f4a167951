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

A temp file is locked by its writer until it is renamed (see ``_fsutil``): the first write
of a ``Cache`` removes what killed processes left in ``tmp/`` (and ``copy_blob`` what they
left next to an output), never a live process's file. An entry that is not a regular file
(a directory where a blob should be) is never replaced or served: it is a local error
(``not-a-regular-file``, exit 8), and ``verify_all`` counts and reports it. Every file-system
fault is a ``LocalIOError`` naming the path at fault.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple

from ._frozen import Frozen, init_field
from ._json import load_json
from ._digest import Digest, VerifyingWriter
from ._errors import LocalIOError, OutputExists
from ._fsutil import (
    NotRegularFile,
    _umask,
    atomic_write_bytes,
    clean_stale_temps,
    explain_os_error,
    fsync_dir,
    kind_of,
    link_temp,
    make_temp,
    read_regular,
    temp_owner,
    unlink_quietly,
    write_target,
)
from ._log import get_logger
from ._warm import registry_dir_name, release_record_path, touch_release
from ._ref import PackageRef
from ._release import Release
from ._semver import Version

__all__ = ["Cache", "CacheEntry", "VerifyResult", "check_output"]

log = get_logger()

_READ_CHUNK = 1 << 20


class CacheEntry(Frozen):
    __fields__ = ("release", "blob_present", "path")
    release: Release
    blob_present: bool
    path: Path

    def __init__(self, release: Release, blob_present: bool, path: Path) -> None:
        init_field(self, "release", release)
        init_field(self, "blob_present", blob_present)
        init_field(self, "path", path)


class VerifyResult(NamedTuple):
    """What ``Cache.verify_all`` did: entries checked (every name in ``blobs/sha256``),
    corrupted blobs removed, and entries that are not regular files (left in place)."""

    checked: int
    removed: list[Path]
    unusable: list[tuple[Path, str]]


#: the refusal to replace something that is not a regular file, wherever pkgloader writes
NOT_A_FILE = "not-a-regular-file"


def check_output(dest: Path, *, overwrite: bool, details: Iterable[str] = (), hint: str | None = None) -> Path:
    """Where an output ``dest`` is written (itself, or a symbolic link's target), after the
    checks every output gets: an existing regular file only with ``overwrite``
    (``OutputExists``, exit 7), anything else that exists never (``LocalIOError``
    ``not-a-regular-file``, exit 8, with or without ``overwrite``)."""
    try:
        target, exists = write_target(dest)
    except NotRegularFile as exc:
        raise LocalIOError(f"{str(dest)!r} is {exc.what}", details=list(details),
                           hint=hint or "move it out of the way; pkgloader replaces regular files only",
                           code=NOT_A_FILE) from None
    if exists and not overwrite:
        raise OutputExists.at(dest, details)
    return Path(target)


def output_error(exc: OSError, dest: Path, details: Iterable[str] = ()) -> LocalIOError:
    """A failed write of an output, naming the part of the path at fault."""
    if isinstance(exc, NotRegularFile):
        return LocalIOError(f"{str(dest)!r} is {exc.what}", details=[*details, "nothing was written"],
                            hint="move it out of the way; pkgloader replaces regular files only", code=NOT_A_FILE)
    reason, hint = explain_os_error(exc, dest)
    return LocalIOError(f"cannot write {str(dest)!r}: {reason}", details=[*details, "nothing was written"], hint=hint)


class Cache:
    """``durable``: fsync content and outputs before renaming them into place (the default;
    ``[pkgloader] fsync = false`` turns it off: a torn entry is still caught by
    verify-on-read)."""

    def __init__(self, root: Path, *, durable: bool = True) -> None:
        self.root = Path(root)
        self.durable = durable
        self._tidied: set[str] = set()  # directories cleaned of dead processes' temp files

    # --- local faults ----------------------------------------------------------------------

    def io_error(self, exc: OSError, path: Path | str, *, action: str = "write to") -> LocalIOError:
        """A local file-system fault in the cache (exit 8), naming the path at fault."""
        try:
            self.check_root()
        except LocalIOError as not_a_dir:
            return not_a_dir
        if action == "write to" and self._read_only(exc):
            return LocalIOError(
                f"the cache directory {str(self.root)!r} is read-only, and pkgloader writes to its cache "
                "(a cache shared read-only is not supported)",
                details=[f"{explain_os_error(exc, path)[0]}"],
                hint="give each runner a writable cache (--cache-dir or PKGLOADER_CACHE_DIR), or share packages "
                     "read-only as an OCI layout: 'pkgloader export DIR', then 'pkgloader import DIR' or an "
                     "oci-layout registry (see README, CI and fleets)")
        reason, hint = explain_os_error(exc, path)
        if isinstance(exc, NotRegularFile):
            hint = "remove it, or empty the whole cache with 'pkgloader cache clean'"
        return LocalIOError(f"cannot {action} the cache at {str(self.root)!r}: {reason}",
                            hint=f"{hint}, or choose another cache with --cache-dir" if hint
                            else "choose another cache with --cache-dir",
                            code=NOT_A_FILE if isinstance(exc, NotRegularFile) else None)

    def _not_a_file(self, path: Path, mode: int) -> LocalIOError:
        return LocalIOError(f"the cache entry {str(path)!r} is {kind_of(mode)}, not a regular file",
                            details=["pkgloader does not replace it"],
                            hint="remove it, or empty the whole cache with 'pkgloader cache clean'", code=NOT_A_FILE)

    def tidy(self, directory: Path | str) -> None:
        """Remove what killed processes left in ``directory`` (once per cache object and
        directory; a live process's temp files are never touched, see ``_fsutil``)."""
        key = os.fspath(directory)
        if key not in self._tidied:
            self._tidied.add(key)
            clean_stale_temps(key)

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
            st = path.lstat()
        except (FileNotFoundError, NotADirectoryError):
            return False  # (a file where a directory should be is reported when it is written)
        except OSError as exc:
            raise self.io_error(exc, path, action="read") from None
        if not stat.S_ISREG(st.st_mode):
            raise self._not_a_file(path, st.st_mode)
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
        place. On any error (including a mismatch) nothing is kept. The temp file in
        ``tmp/`` is held locked until it is renamed into place or removed, so the next
        process can tell a killed download's leftovers from a live one (see ``_fsutil``)."""
        tmp_dir = self.root / "tmp"
        try:
            tmp_dir.mkdir(parents=True, exist_ok=True)
            self.tidy(tmp_dir)
            # created read-only (the descriptor still writes): blobs are never modified in place
            fd, tmp = make_temp(tmp_dir, f"{digest.hex[:16]}.", mode=_BLOB_MODE)
        except OSError as exc:
            raise self.io_error(exc, tmp_dir) from None
        final = self.blob_path(digest)
        try:
            with os.fdopen(fd, "w+b") as f:
                writer = VerifyingWriter(f, digest, size, what=what, origin=origin)
                try:
                    yield writer
                    writer.verify()
                finally:
                    writer.close()
                try:
                    f.flush()
                    if self.durable:
                        os.fsync(f.fileno())
                    final.parent.mkdir(parents=True, exist_ok=True)
                    self._check_entry(final)
                    if os.name != "nt":
                        # Several processes may commit the same blob: each renames its own
                        # verified copy into place atomically (with its lock still held), so
                        # readers see one complete file or the other
                        os.replace(tmp, final)
                except OSError as exc:
                    raise self.io_error(exc, final) from None
            if os.name == "nt":  # pragma: no cover - a replace fails there while a reader has the file open
                os.chmod(tmp, 0o444)
                with self.lock(digest):
                    if final.exists() and self.has_verified_blob(digest, size):
                        os.unlink(tmp)  # another process committed it first
                    else:
                        os.replace(tmp, final)
            if self.durable:
                fsync_dir(final.parent)
        except BaseException:
            unlink_quietly(tmp)
            raise

    def _check_entry(self, path: Path) -> None:
        """Refuse to replace a cache entry that is not a regular file (a directory, ...)."""
        try:
            st = path.lstat()
        except FileNotFoundError:
            return
        if not stat.S_ISREG(st.st_mode):
            raise self._not_a_file(path, st.st_mode)

    def copy_blob(self, digest: Digest, dest: Path, *, overwrite: bool, share: bool = False,
                  details: Iterable[str] = (), hint: str | None = None) -> None:
        """Copy a (just verified) blob to ``dest`` atomically: temp file next to ``dest``,
        then rename. Refuses to replace ``dest`` unless ``overwrite``, and never replaces
        anything but a regular file (see ``check_output``; a symbolic link's target is
        written, the link stays). Every failure is a ``PkgLoaderError`` (a local fault:
        exit 8, naming the path at fault). What a killed process left next to ``dest`` is
        removed first.

        ``share``: make ``dest`` a hard link to the cache entry instead of a copy when both
        are on one file system, so that a large download is written to disk once, not
        twice. The entry then takes the output's permissions; if the output is later
        edited in place, the entry no longer matches its digest and is discarded and
        fetched again on its next use (every read is verified), never served."""
        details = list(details)
        target = check_output(dest, overwrite=overwrite, details=details, hint=hint)
        src = self.blob_path(digest)
        tmp: str | None = None
        held: int | None = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self.tidy(target.parent)
            linked = link_temp(src, target.parent, f".{target.name}.") if share else None
            if linked is None:
                fd, tmp = make_temp(target.parent, f".{target.name}.", mode=0o644)  # less the umask
                with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
                    _kernel_copy(inp, out)
                    out.flush()
                    if self.durable:
                        os.fsync(out.fileno())
                    held = os.dup(out.fileno())  # the lock stays held until the rename is done
            else:
                held, tmp = linked
                os.chmod(tmp, 0o644 & ~_umask())  # the shared file takes the output's usual mode
            if os.name == "nt" and held is not None:  # pragma: no cover - no renaming an open file there
                os.close(held)
                held = None
            self._commit(tmp, target, dest, overwrite=overwrite, details=details, hint=hint)
            if self.durable:
                fsync_dir(target.parent)
        except OSError as exc:
            raise output_error(exc, dest, details) from None
        finally:
            if tmp is not None:
                # after a rename the temp name is gone; it stays only after an error, or when
                # the rename did nothing (the output already was this very file: a hard link
                # to the same cache entry, from a concurrent fetch)
                unlink_quietly(tmp)
            if held is not None:
                os.close(held)

    @staticmethod
    def _commit(tmp: str, target: Path, dest: Path, *, overwrite: bool, details: list[str],
                hint: str | None) -> None:
        """Rename the finished temp file to the output."""
        check_output(dest, overwrite=overwrite, details=details, hint=hint)  # again, just before
        if overwrite:
            os.replace(tmp, target)
            return
        try:
            os.link(tmp, target)  # atomic create-if-absent
        except FileExistsError:
            raise OutputExists.at(dest, details) from None
        except OSError:  # no hard links here: check, then rename
            if os.path.lexists(target):
                raise OutputExists.at(dest, details) from None
            os.replace(tmp, target)

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
            self.tidy(self.root / "tmp")
            atomic_write_bytes(path, json.dumps(data, sort_keys=True).encode(), durable=False)
        except OSError as exc:
            raise self.io_error(exc, path) from None

    def _read_json(self, path: Path) -> Any:
        try:
            return load_json(read_regular(path))  # (a FIFO is never read: it would block)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None

    def _read_only(self, exc: OSError) -> bool:
        """Whether ``exc`` is the cache being read-only (a read-only mount, or a cache root
        that takes no new entry), not some other fault."""
        import errno

        if exc.errno == errno.EROFS:
            return True
        if exc.errno not in (errno.EACCES, errno.EPERM):
            return False
        probe = self.root / f".pkgloader-write-probe-{os.getpid()}"
        try:
            probe.mkdir()
        except FileExistsError:
            return False
        except OSError:
            return True  # the cache root itself takes no new entry
        try:
            probe.rmdir()
        except OSError:
            pass
        return False

    # --- maintenance ---------------------------------------------------------------------

    def check_root(self) -> None:
        """The cache directory must be a directory (or not exist yet)."""
        try:
            st = os.stat(self.root)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise self.io_error(exc, self.root, action="read") from None
        if not stat.S_ISDIR(st.st_mode):
            raise LocalIOError(f"the cache directory {str(self.root)!r} is {kind_of(st.st_mode)}, not a directory",
                               hint=f"move {str(self.root)!r} out of the way, or choose another cache with --cache-dir")

    def entries(self) -> list[CacheEntry]:
        self.check_root()
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

    def verify_all(self) -> VerifyResult:
        """Hash every blob; remove the bad ones; remove what killed processes left in
        ``tmp/``. An entry that is not a regular file (a directory where a blob should be)
        is counted and reported, and left in place."""
        self.check_root()
        removed: list[Path] = []
        unusable: list[tuple[Path, str]] = []
        checked = 0
        base = self.root / "blobs" / "sha256"
        names: list[str] = []
        for d in (self.root / "blobs", base):
            try:
                st = d.lstat()
            except FileNotFoundError:
                break
            except OSError as exc:
                raise self.io_error(exc, d, action="read") from None
            if not stat.S_ISDIR(st.st_mode):
                unusable.append((d, kind_of(st.st_mode)))
                break
        else:
            try:
                names = sorted(os.listdir(base))
            except OSError as exc:
                raise self.io_error(exc, base, action="read") from None
        for name in names:
            path = base / name
            checked += 1
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(st.st_mode):
                unusable.append((path, kind_of(st.st_mode)))
            elif not self.has_verified_blob(Digest("sha256", name)):
                removed.append(path)
        tmp_dir = self.root / "tmp"
        self._tidied.discard(os.fspath(tmp_dir))
        self.tidy(tmp_dir)
        for tmp in tmp_dir.glob("*.part"):
            if temp_owner(tmp.name) is not None:
                continue  # locked while written: removed above as soon as its writer is gone
            try:  # a temp file of an older pkgloader, which did not lock them
                st = tmp.lstat()
                if stat.S_ISREG(st.st_mode) and time.time() - st.st_mtime > 3600:
                    tmp.unlink()
            except OSError:
                pass
        return VerifyResult(checked, removed, unusable)

    def clean(self, older_than: float | None = None) -> tuple[int, int]:
        """Remove cached content (all, or what was last used more than ``older_than``
        seconds ago). Returns (files removed, bytes freed). A download in progress (its
        temp file in ``tmp/`` is locked) is left alone either way."""
        now = time.time()
        files = 0
        freed = 0
        self.check_root()
        if older_than is None:
            import shutil

            failed: list[OSError] = []

            def note(_func: Any, _path: str, info: Any) -> None:
                failed.append(info if isinstance(info, OSError) else info[1])

            how: dict[str, Any] = {"onexc" if sys.version_info >= (3, 12) else "onerror": note}
            tmp_dir = self.root / "tmp"
            sizes = {}
            for p in tmp_dir.glob("*"):
                try:
                    sizes[str(p)] = p.lstat().st_size
                except OSError:
                    pass
            for p in map(Path, clean_stale_temps(tmp_dir)):  # a live download's file stays
                files += 1
                freed += sizes.get(str(p), 0)
            for p in tmp_dir.glob("*"):
                if temp_owner(p.name) is not None or not p.is_file():
                    continue
                try:  # an older pkgloader's temp file (not locked) or anything else
                    p.unlink()
                except OSError as exc:
                    failed.append(exc)
                else:
                    files += 1
                    freed += sizes.get(str(p), 0)
            for sub in ("blobs", "releases", "tags", "metadata", "auth", "warg", "locks"):
                d = self.root / sub
                if d.exists():
                    for p in d.rglob("*"):
                        if p.is_file():
                            files += 1
                            freed += p.stat().st_size
                    shutil.rmtree(d, **how)
            if failed:
                raise self.io_error(failed[0], failed[0].filename or self.root, action="remove from")
            return files, freed
        self.tidy(self.root / "tmp")
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

