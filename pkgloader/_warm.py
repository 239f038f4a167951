"""The warm-fetch memo: answering ``fetch ns:name@=X.Y.Z`` from the cache without loading
the configuration machinery.

When the full path resolves an exact version, it records a *memo*: which content digest that
spec resolved to **under these config inputs**. The inputs are fingerprinted cheaply by
``stat()``: every config file that ``Config.load`` would consult (global, legacy, each
``pkgloader.toml`` / ``pyproject.toml`` from the working directory up, the env and flag
files), the environment variables that change resolution, and the flags. Any change to any
of them changes the fingerprint, so a stale memo is simply never found.

The memo only says *which* blob; the blob itself is hashed before it is served, exactly as
on the full path. This module imports only the standard library's cheapest modules.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

__all__ = ["default_cache_dir", "fingerprint", "memo_path", "write_memo", "read_memo", "registry_dir_name",
           "release_record_path", "touch_release", "file_holds"]


def registry_dir_name(registry: str) -> str:
    """A registry name as one directory name in the cache (no ':', '/' or brackets)."""
    return registry.replace(":", "_").replace("/", "_").replace("[", "").replace("]", "")


def release_record_path(cache_dir: str, registry: str, namespace: str, name: str, version: str) -> str:
    """Where the cache keeps the release record of ``namespace:name@version`` (see ``_cache``)."""
    return os.path.join(cache_dir, "releases", registry_dir_name(registry), namespace, name, f"{version}.json")


def touch_release(path: str) -> None:
    """Record a use (for ``cache clean --older-than``) on the release record: never on the
    blob, which may be hard-linked to a user's output whose times are theirs."""
    try:
        os.utime(path)
    except OSError:
        pass

def file_holds(path: str | os.PathLike[str], sha256_hex: str, size: int | None) -> bool:
    """Whether the regular file at ``path`` holds exactly the content of that digest (size
    first, then every byte hashed). False when it cannot be read or is not a regular file
    (opened without blocking, so a FIFO never hangs). Used by ``fetch`` to find an output
    up to date, on the warm path and the full one."""
    from stat import S_ISREG

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        with open(fd, "rb", buffering=0) as f:
            st = os.fstat(fd)
            if not S_ISREG(st.st_mode) or (size is not None and st.st_size != size):
                return False
            h = hashlib.sha256()
            buf = bytearray(1 << 20)
            view = memoryview(buf)
            while k := f.readinto(buf):
                h.update(view[:k])
    except OSError:
        return False
    return h.hexdigest() == sha256_hex


_ENV_INPUTS = ("PKGLOADER_CONFIG", "WKG_CONFIG_FILE", "PKGLOADER_DEFAULT_REGISTRY", "XDG_CONFIG_HOME", "HOME")


def default_cache_dir() -> str | None:
    """The platform cache dir, as platformdirs computes it (None where we don't mirror it)."""
    if sys.platform.startswith("linux") or sys.platform.startswith("freebsd"):
        base = os.environ.get("XDG_CACHE_HOME", "").strip()
        if not base or not os.path.isabs(base):
            base = os.path.join(os.path.expanduser("~"), ".cache")
        return os.path.join(base, "pkgloader")
    if sys.platform == "darwin":
        return os.path.join(os.path.expanduser("~"), "Library", "Caches", "pkgloader")
    return None


def _config_base() -> str:
    env = os.environ.get("XDG_CONFIG_HOME")
    if env and os.path.isabs(env):
        return env
    return os.path.join(os.path.expanduser("~"), ".config")


def _stat(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return f"{path}:-"
    return f"{path}:{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"


def fingerprint(cwd: str, config_files: list[str], registry: str | None, strict: bool) -> str | None:
    """A digest of every input that can change how a package resolves. None on Windows
    (where the fast path is not used)."""
    if sys.platform == "win32":
        return None
    parts = [f"strict={strict}", f"registry={registry or ''}"]
    base = _config_base()
    parts.append(_stat(os.path.join(base, "wasm-pkg", "config.toml")))
    parts.append(_stat(os.path.join(base, "warg", "config.toml")))
    d = os.path.realpath(cwd)
    while True:
        parts.append(_stat(os.path.join(d, "pkgloader.toml")))
        parts.append(_stat(os.path.join(d, "pyproject.toml")))
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    for name in _ENV_INPUTS:
        value = os.environ.get(name)
        parts.append(f"{name}={value}")
        if value and name in ("PKGLOADER_CONFIG", "WKG_CONFIG_FILE"):
            parts.append(_stat(os.path.expanduser(value)))
    for f in config_files:
        parts.append(_stat(os.path.abspath(os.path.expanduser(f))))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def memo_path(cache_dir: str, fp: str, spec: str) -> str:
    key = hashlib.sha256(f"{fp}\0{spec}".encode()).hexdigest()
    return os.path.join(cache_dir, "warm", key[:2], key + ".json")


def write_memo(cache_dir: str, fp: str, spec: str, record: dict[str, object]) -> None:
    from pathlib import Path

    from ._fsutil import atomic_write_bytes

    try:
        atomic_write_bytes(Path(memo_path(cache_dir, fp, spec)), json.dumps(record, sort_keys=True).encode(),
                           durable=False)
    except OSError:
        pass  # the memo is an optimisation only


def read_memo(cache_dir: str, fp: str, spec: str) -> dict[str, object] | None:
    try:
        with open(memo_path(cache_dir, fp, spec), "rb") as f:
            data = json.loads(f.read())
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None
