"""Temp files that tell a killed writer's leftovers from a live writer's file.

Part of ``_fsutil`` (which re-exports it), kept apart so that the CLI's warm fetch path can
use it without importing ``typing`` or ``contextlib`` (~10 ms). Imports only the standard
library's cheapest modules.

Temp files are named ``<prefix>pkgloader-<pid>-<12 hex>.part`` and their writer holds a
shared ``flock`` on them from creation until they are renamed into place (or removed). A
killed process's locks go with it, so ``clean_stale_temps`` can tell its leftovers from a
live writer's file without guessing from ages or PIDs: it removes a temp file only when it
can take an *exclusive* lock on it, holding that lock while it unlinks, and only when the
name still refers to the file it locked. The writer closes the one race this leaves (its
file is locked a moment after it is created) by checking, once it holds its lock, that its
name still refers to its file; if a cleaner took the file in between, it starts over under a
new name. A temp file of this process (the PID in the name) is never touched: locks emulated
on network file systems do not tell one thread of a process from another. Where ``flock`` is
missing (Windows) nothing is cleaned by lock; ``Cache.verify_all`` still removes old files.
"""

from __future__ import annotations

import errno
import os
import stat

__all__ = ["clean_stale_temps", "link_temp", "make_temp", "temp_owner", "unlink_quietly"]

_TEMP_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) \
    | getattr(os, "O_BINARY", 0)
_PROBE_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)

_HEX = frozenset("0123456789abcdef")


def temp_owner(name: str) -> int | None:
    """The PID in a temp file name ``<prefix>pkgloader-<pid>-<12 hex>.part`` (what
    ``make_temp`` and ``link_temp`` create), or None for any other name. (No regular
    expression: compiling one costs the warm fetch path more than the whole check.)"""
    if not name.endswith(".part"):
        return None
    stem = name[:-5]
    i = stem.rfind("pkgloader-")
    if i < 0:
        return None
    pid, _, rand = stem[i + 10:].partition("-")
    if not (pid.isascii() and pid.isdigit() and len(rand) == 12 and _HEX.issuperset(rand)):
        return None
    return int(pid)

try:
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - Windows
    _fcntl = None  # type: ignore[assignment]


def unlink_quietly(path: str | os.PathLike[str]) -> None:
    """Remove a temp file on the way out (it may be gone already, or never have been
    created); never raises, so it never hides the error that led here."""
    try:
        os.unlink(path)
    except OSError:
        pass


def _temp_path(directory: str | os.PathLike[str], prefix: str) -> str:
    return os.path.join(directory, f"{prefix}pkgloader-{os.getpid()}-{os.urandom(6).hex()}.part")


def _hold(fd: int, path: str) -> bool:
    """Take the writer's shared lock on a new temp file; False when a cleaner got to it
    first (the name no longer refers to this file): start over under another name."""
    if _fcntl is None:  # pragma: no cover - Windows
        return True
    try:
        _fcntl.flock(fd, _fcntl.LOCK_SH)
    except OSError:
        return True  # no locks on this file system: nothing cleans by lock either
    try:
        st, now = os.fstat(fd), os.lstat(path)
    except FileNotFoundError:
        return False
    return (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino)


def make_temp(directory: str | os.PathLike[str], prefix: str, *, mode: int = 0o600) -> tuple[int, str]:
    """Create a new temp file in ``directory`` (see the module docs for its name and lock),
    with ``mode`` less the umask (the descriptor is read-write whatever the mode); returns
    the open descriptor, which holds the lock until it is closed, and the path.
    ``tempfile.mkstemp`` without importing ``tempfile`` (~4 ms on every start)."""
    for _ in range(100):
        path = _temp_path(directory, prefix)
        try:
            fd = os.open(path, _TEMP_FLAGS, mode)
        except FileExistsError:
            continue
        if _hold(fd, path):
            return fd, path
        os.close(fd)
    raise FileExistsError(errno.EEXIST, "no free temporary name", os.fspath(directory))


def link_temp(src: str | os.PathLike[str], directory: str | os.PathLike[str], prefix: str) -> tuple[int, str] | None:
    """A hard link to ``src`` under a temp name in ``directory``, with the writer's lock held
    by the returned descriptor (close it after the rename); None where links do not work
    (another file system, no hard links, too many links)."""
    for _ in range(10):
        path = _temp_path(directory, prefix)
        try:
            os.link(src, path)
        except FileExistsError:
            continue
        except OSError:
            return None
        try:
            fd = os.open(path, _PROBE_FLAGS)
        except OSError:
            unlink_quietly(path)
            return None
        if _hold(fd, path):
            return fd, path
        os.close(fd)
    return None


def _owner_gone(path: str) -> bool:
    """Remove ``path`` if no live writer holds it (see the module docs). True if removed."""
    assert _fcntl is not None
    try:
        fd = os.open(path, _PROBE_FLAGS)
    except OSError:
        return False  # gone already, or not ours to open
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return False
        try:
            _fcntl.flock(fd, _fcntl.LOCK_EX | _fcntl.LOCK_NB)
        except OSError:
            return False  # a live writer holds it (or this file system has no locks)
        try:
            now = os.lstat(path)
        except OSError:
            return False
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            return False  # renamed into place and replaced meanwhile: not the file we locked
        try:
            os.unlink(path)
        except OSError:
            return False
        return True
    finally:
        os.close(fd)


def clean_stale_temps(directory: str | os.PathLike[str]) -> list[str]:
    """Remove the temp files (see ``temp_owner``) in ``directory`` whose writer is gone (killed);
    a live writer's file is never touched. Returns the paths removed; never raises."""
    d = os.fspath(directory)
    if _fcntl is None:  # pragma: no cover - Windows
        return []
    removed = []
    own = os.getpid()
    try:
        with os.scandir(d) as it:
            names = [e.name for e in it if e.name.endswith(".part")]
    except OSError:
        return []
    for name in names:
        pid = temp_owner(name)
        if pid is None or pid == own:
            continue
        path = os.path.join(d, name)
        if _owner_gone(path):
            removed.append(path)
    if removed:
        from ._log import get_logger

        get_logger().info("removed %d partial file(s) left in %s by a process that is gone", len(removed), d)
    return removed
