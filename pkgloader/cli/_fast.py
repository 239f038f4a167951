"""The warm fast path of ``pkgloader fetch NS:NAME@=X.Y.Z``.

Answers from the warm-fetch memo (see ``pkgloader._warm``) and the verified cache without
importing argparse, the config machinery or the HTTP stack. Anything it is not sure about
(other flags, a missing memo, a blob that fails verification, an existing output file)
returns None *before writing anything*, and the normal path takes over and does the full
job, with full error reporting.
"""

from __future__ import annotations

import os
import re
import sys
from stat import S_ISREG

_SPEC_RE = re.compile(r"^([a-z][a-z0-9]*(?:-[a-z][a-z0-9]*)*:[a-z][a-z0-9]*(?:-[a-z][a-z0-9]*)*)@=((?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?)$")
_VALUE_OPTS = {"-o": "output", "--output": "output", "--cache-dir": "cache_dir", "--config": "config", "--registry": "registry"}
_FLAG_OPTS = {"--overwrite": "overwrite", "-q": "quiet", "--quiet": "quiet"}


def try_fetch(argv: list[str]) -> int | None:
    try:
        return _try_fetch(argv)
    except Exception:  # noqa: BLE001 - the full path will redo the work and report properly
        return None


def _try_fetch(argv: list[str]) -> int | None:
    opts: dict[str, object] = {}
    configs: list[str] = []
    spec = None
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in _VALUE_OPTS:
            if i + 1 >= len(argv):
                return None
            key = _VALUE_OPTS[a]
            if key == "config":
                configs.append(argv[i + 1])
            elif key in opts:
                return None
            else:
                opts[key] = argv[i + 1]
            i += 2
            continue
        if a in _FLAG_OPTS:
            opts[_FLAG_OPTS[a]] = True
            i += 1
            continue
        if a.startswith("-") or spec is not None:
            return None
        spec = a
        i += 1
    if spec is None or not _SPEC_RE.match(spec):
        return None
    if str(opts.get("output", "")).endswith(".wit"):
        return None  # WIT text (fetch --format auto): the full path decodes it

    from .. import _warm

    cache_dir = opts.get("cache_dir") or os.environ.get("PKGLOADER_CACHE_DIR") or os.environ.get("WKG_CACHE_DIR") \
        or _warm.default_cache_dir()
    if not cache_dir:
        return None
    cache_dir = os.path.expanduser(str(cache_dir))
    registry = opts.get("registry")
    fp = _warm.fingerprint(os.getcwd(), configs, registry if isinstance(registry, str) else None, False)
    if fp is None:
        return None
    memo = _warm.read_memo(cache_dir, fp, spec)
    if memo is None:
        return None
    digest = str(memo["digest"])
    size = memo.get("size")
    if not digest.startswith("sha256:") or len(digest) != 71:
        return None
    blob = os.path.join(cache_dir, "blobs", "sha256", digest[7:])

    output = opts.get("output")
    file_name = str(memo["file_name"])
    if "/" in file_name or os.sep in file_name:
        return None
    if output is None:
        out = os.path.join(os.getcwd(), file_name)
    else:
        out = str(output)
        if out.endswith(("/", os.sep)) or os.path.isdir(out):
            out = os.path.join(out, file_name)
    overwrite = bool(opts.get("overwrite"))
    try:
        st = os.lstat(out)
    except FileNotFoundError:
        pass
    else:
        if not S_ISREG(st.st_mode):
            return None  # the full path words the refusal (and follows a symbolic link)
        if _warm.file_holds(out, digest[7:], size if isinstance(size, int) else None):  # up to date: left untouched
            ns, _, name = str(memo["package"]).partition(":")
            _warm.touch_release(_warm.release_record_path(cache_dir, str(memo["registry"]), ns, name,
                                                          str(memo["version"])))
            sys.stdout.write(os.path.abspath(out) + "\n")
            if not opts.get("quiet"):
                sys.stderr.write(f"up to date {memo['package']}@{memo['version']} ({digest[:19]}, "
                                 f"{_size(st.st_size)}) from {memo['registry']}\n")
            return 0
        if not overwrite:
            return None  # the full path words the refusal

    # Verify the cached bytes (never serve unverified content), copying as we hash.
    import hashlib

    from .._tempfiles import clean_stale_temps, make_temp

    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        return None
    clean_stale_temps(parent)  # what a killed fetch left here
    h = hashlib.sha256()
    n = 0
    tmp = None
    try:
        src_fd = os.open(blob, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with open(src_fd, "rb") as src:
            if not S_ISREG(os.fstat(src_fd).st_mode):
                return None  # (never a blocking read of a FIFO) the full path reports it
            fd, tmp = make_temp(parent, f".{os.path.basename(out)}.", mode=0o644)  # less the umask
            with open(fd, "wb") as dst:
                buf = bytearray(1 << 20)
                view = memoryview(buf)
                while k := src.readinto(buf):
                    h.update(view[:k])
                    dst.write(view[:k])
                    n += k
                dst.flush()
                if memo.get("fsync"):
                    os.fsync(dst.fileno())
                if h.hexdigest() != digest[7:] or (isinstance(size, int) and n != size):
                    return None  # the full path discards the bad entry and fetches again
                # the rename while the temp file's lock is held (see _fsutil)
                if overwrite:
                    now = os.lstat(out) if os.path.lexists(out) else None
                    if now is not None and not S_ISREG(now.st_mode):
                        return None
                    os.replace(tmp, out)
                else:
                    try:
                        os.link(tmp, out)
                    except OSError:
                        return None
        ns, _, name = str(memo["package"]).partition(":")
        _warm.touch_release(_warm.release_record_path(cache_dir, str(memo["registry"]), ns, name, str(memo["version"])))
    except OSError:
        return None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)  # gone after a rename; left after an error or a link
            except OSError:
                pass
    sys.stdout.write(os.path.abspath(out) + "\n")
    if not opts.get("quiet"):
        sys.stderr.write(f"cached {memo['package']}@{memo['version']} ({digest[:19]}, {_size(n)}) from {memo['registry']}\n")
    return 0


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}"
    return f"{n} bytes"

