"""Crash-safe file writes: temp file in the target directory, fsync, rename; what a killed
process left behind is cleaned by the next one; only regular files are ever replaced.

**Temp files** (``_tempfiles``, re-exported here) are held under ``flock`` by their writer
until renamed into place, so ``clean_stale_temps`` removes what a killed process left and
never a live writer's file.

**Regular files only**: an existing path that is a directory, a device, a FIFO or a socket is
never replaced (``NotRegularFile``). A symbolic link is followed: its target is written (a
temp file beside the target, renamed over it), the link itself stays; a link that leads
nowhere is refused, as GNU ``cp`` refuses to write through a dangling link.
"""

from __future__ import annotations

import errno
import os
import stat
from contextlib import contextmanager
from typing import TYPE_CHECKING, BinaryIO, Iterator

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

from ._tempfiles import clean_stale_temps, link_temp, make_temp, temp_owner, unlink_quietly

__all__ = ["NotRegularFile", "atomic_write_bytes", "atomic_writer", "clean_stale_temps", "explain_os_error",
           "fsync_dir", "kind_of", "link_temp", "make_temp", "read_regular", "temp_owner", "unlink_quietly",
           "write_target"]


class NotRegularFile(OSError):
    """An existing path that pkgloader must not replace (a directory, a device, a FIFO, a
    socket, a dangling symbolic link). An ``OSError``, so every writer's error handling
    reports it; ``strerror`` says what the path is."""

    def __init__(self, path: str | os.PathLike[str], what: str) -> None:
        super().__init__(errno.EEXIST, what, os.fspath(path))
        self.path = os.fspath(path)
        self.what = what


def kind_of(mode: int) -> str:
    """'a directory', 'a character device', ... for a ``st_mode``."""
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "not a regular file"


def write_target(path: str | os.PathLike[str]) -> tuple[str, bool]:
    """Where a write of ``path`` goes, and whether something is there: ``path`` itself, or
    for a symbolic link its (final) target. Raises ``NotRegularFile`` when what is there is
    not a regular file, or the link leads nowhere."""
    p = os.fspath(path)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return p, False
    except NotADirectoryError:
        return p, False  # a parent is not a directory: creating the file reports it
    if stat.S_ISREG(st.st_mode):
        return p, True
    if stat.S_ISLNK(st.st_mode):
        try:
            target = os.path.realpath(p, strict=True)
            tst = os.stat(target)
        except OSError:
            raise NotRegularFile(p, f"a symbolic link to {os.readlink(p)!r}, which does not exist; "
                                    "not writing through it") from None
        if not stat.S_ISREG(tst.st_mode):
            raise NotRegularFile(p, f"a symbolic link to {target!r}, {kind_of(tst.st_mode)}, not a regular file; "
                                    "not replacing it")
        return target, True
    raise NotRegularFile(p, f"{kind_of(st.st_mode)}, not a regular file; not replacing it")


def read_regular(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a regular file; ``NotRegularFile`` for anything else (a FIFO is never
    opened for a blocking read)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
                 | getattr(os, "O_BINARY", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(path, f"{kind_of(st.st_mode)}, not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)


# --- explaining failures ----------------------------------------------------------------------


def _blocker(path: str) -> tuple[str, int] | None:
    """The nearest existing ancestor of ``path`` that is not a directory (and its mode)."""
    p = os.path.abspath(path)
    parents = []
    while True:
        parent = os.path.dirname(p)
        if parent == p:
            break
        parents.append(parent)
        p = parent
    for anc in reversed(parents + [os.path.abspath(path)]):
        try:
            st = os.stat(anc)
        except OSError:
            return None
        if not stat.S_ISDIR(st.st_mode):
            return anc, st.st_mode
    return None


def explain_os_error(exc: OSError, path: str | os.PathLike[str]) -> tuple[str, str | None]:
    """(reason, hint) for a failed write at ``path``: names the component at fault (a file
    where a directory should be, an unwritable directory) rather than repeating errno."""
    p = os.fspath(path)
    if isinstance(exc, NotRegularFile):
        return f"{exc.path!r} is {exc.what}", None
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        found = _blocker(os.path.dirname(os.path.abspath(p)))
        if found is not None:
            anc, mode = found
            return (f"{anc!r} is {kind_of(mode)}, not a directory",
                    f"move {anc!r} out of the way")
    if exc.errno in (errno.EACCES, errno.EPERM):
        where = exc.filename if isinstance(exc.filename, str) else p
        if os.path.lexists(where):
            return f"not allowed to write {where!r}", f"check the permissions of {where!r}"
        parent = os.path.dirname(os.path.abspath(where))
        return f"not allowed to create {where!r}", f"check the permissions of {parent!r}"
    if exc.errno == errno.EROFS:
        return "read-only file system", None
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return exc.strerror or "no space left on device", "free some disk space"
    if exc.errno == errno.EISDIR:
        return f"{exc.filename or p!r} is a directory", None
    return exc.strerror or str(exc), None


# --- atomic writes ----------------------------------------------------------------------------


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename in ``path`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_writer(path: Path, *, mode: int = 0o644, durable: bool = True) -> Iterator[BinaryIO]:
    """Yield a temp file next to ``path``; on clean exit it is fsynced and renamed over
    ``path`` (for a symbolic link: over its target). On any exception the temp file is
    removed and ``path`` is untouched. Raises ``NotRegularFile`` before writing anything
    when ``path`` is a directory, a device, a FIFO, a socket or a dangling link."""
    target, _ = write_target(path)
    parent = os.path.dirname(target) or "."
    os.makedirs(parent, exist_ok=True)
    clean_stale_temps(parent)
    fd, tmp = make_temp(parent, f".{os.path.basename(target)}.", mode=mode)  # the umask applies, as for open()
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
            if os.name != "nt":  # pragma: no branch - Windows cannot rename an open file
                os.replace(tmp, target)  # with the lock still held
        if os.name == "nt":  # pragma: no cover
            os.replace(tmp, target)
    except BaseException:
        unlink_quietly(tmp)
        raise
    if durable:
        fsync_dir(parent)


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = True) -> None:
    with atomic_writer(path, durable=durable) as f:
        f.write(data)


_UMASK: int | None = None


def _umask() -> int:
    global _UMASK
    if _UMASK is None:
        current = os.umask(0)
        os.umask(current)
        _UMASK = current
    return _UMASK
