"""Local faults: outputs that are not regular files, a file system in the way, concurrent
writers of one output, and what killed processes leave behind (issue 13, items 3-6).

Every refusal is asserted whole (exit code and message) and checked to leave nothing
behind: no temp file, the special file untouched.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Iterator

import pytest

from pkgloader._cache import Cache
from pkgloader._digest import Digest
from pkgloader._errors import LocalIOError, OutputExists
from support.wit import custom_section

REF = "test:pkg@=1.0.0"
FILE = "test_pkg@1.0.0.wasm"


# --- helpers ------------------------------------------------------------------------------


def publish(registry: Any, registry_config: Any, wit_package: Any, tmp_path: Path, run_cli: Any, *,
            name: str = "pkg", pad: int = 0) -> bytes:
    """Publish test:<name>@1.0.0 (``pad`` random bytes more than a small package)."""
    registry_config(registry)
    data = wit_package("test", name, "1.0.0").read_bytes()
    if pad:
        data += custom_section(b"padding", os.urandom(pad))
    src = tmp_path / f"{name}-src.wasm"
    src.write_bytes(data)
    r = run_cli("publish", src, "--package", f"test:{name}@1.0.0", "-q")
    assert r.code == 0, r
    return data


def short(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()[:12]


def temps(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith((".part", ".tmp")))


def _ingest(cache: Cache, data: bytes) -> Digest:
    digest = Digest("sha256", hashlib.sha256(data).hexdigest())
    with cache.ingest(digest, len(data), what="test blob", origin="unit test") as w:
        w.write(data)
    return digest


def make_node(path: Path, kind: str) -> None:
    """Create a special file (in the working directory for a socket: path length limits)."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        cwd = os.getcwd()
        os.chdir(path.parent)
        try:
            s.bind(path.name)
        finally:
            os.chdir(cwd)
        s.close()
    elif kind == "char-device":
        if os.geteuid() != 0:
            pytest.skip("creating a device node needs root")
        try:
            os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 7))  # /dev/full's numbers
        except PermissionError:
            pytest.skip("mknod is not permitted here")
    elif kind == "directory":
        path.mkdir()
        (path / "keep.txt").write_text("the user's")
    else:  # pragma: no cover
        raise AssertionError(kind)


KIND_WORDS = {"fifo": "a FIFO (named pipe)", "socket": "a socket", "char-device": "a character device",
              "directory": "a directory"}
KIND_TEST = {"fifo": stat.S_ISFIFO, "socket": stat.S_ISSOCK, "char-device": stat.S_ISCHR, "directory": stat.S_ISDIR}


@pytest.fixture
def unwritable() -> Iterator[Any]:
    """``unwritable(dir)``: make a directory unwritable, as root too (chmod for a user;
    ``chattr +i`` for root, undone afterwards); skips where neither works."""
    made: list[Path] = []

    def make(d: Path) -> None:
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o555)
        if not _writable(d):
            return
        if subprocess.run(["chattr", "+i", str(d)], capture_output=True).returncode == 0:
            made.append(d)
        if _writable(d):
            pytest.skip("cannot make a directory unwritable here")

    yield make
    for d in made:
        subprocess.run(["chattr", "-i", str(d)], capture_output=True)
        d.chmod(0o755)


def _writable(d: Path) -> bool:
    try:
        (d / ".probe").mkdir()
    except OSError:
        return False
    (d / ".probe").rmdir()
    return True


# --- item 3: concurrent fetch --overwrite of one output ----------------------------------------


def test_a_rename_that_does_nothing_leaves_no_temp_name(tmp_path: Path) -> None:
    """The shared (hard-linked) output already is the cache entry: rename(2) of one link
    over another of the same inode does nothing, and the temp name used to stay."""
    cache = Cache(tmp_path / "cache")
    data = os.urandom(50_000)
    digest = _ingest(cache, data)
    out = tmp_path / "out" / "big.wasm"
    cache.copy_blob(digest, out, overwrite=True, share=True)
    cache.copy_blob(digest, out, overwrite=True, share=True)  # another fetch of the same, --overwrite
    assert os.listdir(out.parent) == ["big.wasm"]
    assert out.read_bytes() == data and os.path.samefile(out, cache.blob_path(digest))


def test_concurrent_overwrite_fetches_of_one_output(registry, registry_config, wit_package, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                    run_cli) -> None:
    """8 processes fetch one large package (hard-linked to the output) with --overwrite to
    one output at once: all succeed, the output is right, nothing else is left."""
    from pkgloader._engine import SHARE_MIN

    data = publish(registry, registry_config, wit_package, tmp_path, run_cli, pad=SHARE_MIN + 4096)
    out = tmp_path / "out" / FILE
    for round in range(3):  # (the race is a matter of timing: one round met it 1 time in 5, 4 rounds 4 in 4)
        cache = tmp_path / f"cache{round}"  # cold every time: each process links its download
        if out.exists():
            out.unlink()  # (an output already holding these bytes is up to date: nothing would race)
        env = dict(os.environ, PKGLOADER_CACHE_DIR=str(cache))
        procs = [subprocess.Popen([sys.executable, "-m", "pkgloader", "fetch", REF, "-o", str(out), "--overwrite", "-q"],
                                  cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(8)]
        results = [(p.wait(60), *p.communicate()) for p in procs]
        assert results == [(0, f"{out}\n", "")] * 8
        assert os.listdir(out.parent) == [FILE]
        assert out.read_bytes() == data
        assert os.listdir(cache / "tmp") == []


# --- item 4: outputs that are not regular files --------------------------------------------------


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
@pytest.mark.parametrize("kind", ["fifo", "socket", "char-device", "directory"])
def test_an_output_that_is_not_a_regular_file_is_refused(registry, registry_config, wit_package, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                         run_cli, kind: str, overwrite: bool) -> None:
    data = publish(registry, registry_config, wit_package, tmp_path, run_cli)
    node = Path.cwd() / FILE
    make_node(node, kind)
    # a directory is -o's "write into it": one is met under the default output name
    args = ["fetch", REF] + ([] if kind == "directory" else ["-o", node]) + (["--overwrite"] if overwrite else [])
    expected = (8, "", f"error[not-a-regular-file]: '{node}' is {KIND_WORDS[kind]}, not a regular file; "
                       "not replacing it\n"
                       f"  would write test:pkg@1.0.0 ({short(data)})\n"
                       "  hint: choose another path with -o\n")
    r = run_cli(*args)
    assert (r.code, r.out, r.err) == expected
    # the same once the cache is warm (the warm path leaves it to the full one)
    assert run_cli("fetch", REF, "-o", tmp_path / "elsewhere.wasm", "-q").code == 0
    r = run_cli(*args)
    assert (r.code, r.out, r.err) == expected
    assert KIND_TEST[kind](os.lstat(node).st_mode)
    if kind == "directory":
        assert os.listdir(node) == ["keep.txt"]
    assert temps(node.parent) == []


def test_a_symbolic_link_output_writes_its_target(registry, registry_config, wit_package, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                  run_cli) -> None:
    """README: a symbolic link is followed; with --overwrite its target is replaced (a temp
    file beside the target, renamed over it) and the link stays a link; without it, the
    target existing is the usual refusal."""
    data = publish(registry, registry_config, wit_package, tmp_path, run_cli)
    real = tmp_path / "store" / "real.wasm"
    real.parent.mkdir()
    real.write_bytes(b"old")
    link = Path.cwd() / "link.wasm"
    link.symlink_to(real)
    r = run_cli("fetch", REF, "-o", link)
    assert (r.code, r.out, r.err) == (7, "", f"error[output-exists]: '{link}' already exists; not overwriting it\n"
                                            f"  would write test:pkg@1.0.0 ({short(data)})\n"
                                            "  it holds other content\n"
                                            "  hint: pass --overwrite to replace it, or choose another path with -o\n")
    assert real.read_bytes() == b"old"
    for _ in range(2):  # cold, then warm
        r = run_cli("fetch", REF, "-o", link, "--overwrite", "-q")
        assert (r.code, r.out, r.err) == (0, f"{link}\n", "")
        assert os.readlink(link) == str(real) and real.read_bytes() == data
        real.write_bytes(b"old")
    assert temps(link.parent) == [] and temps(real.parent) == []


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
def test_a_symbolic_link_to_nothing_or_to_a_special_file_is_refused(registry, registry_config, wit_package,  # type: ignore[no-untyped-def]
                                                                    tmp_path: Path, run_cli, overwrite: bool) -> None:
    data = publish(registry, registry_config, wit_package, tmp_path, run_cli)
    flag = ["--overwrite"] if overwrite else []
    dangling = Path.cwd() / "dangling.wasm"
    dangling.symlink_to(tmp_path / "missing.wasm")
    r = run_cli("fetch", REF, "-o", dangling, *flag)
    assert (r.code, r.out, r.err) == (
        8, "", f"error[not-a-regular-file]: '{dangling}' is a symbolic link to '{tmp_path / 'missing.wasm'}', "
               "which does not exist; not writing through it\n"
               f"  would write test:pkg@1.0.0 ({short(data)})\n"
               "  hint: choose another path with -o\n")
    assert not (tmp_path / "missing.wasm").exists()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    to_fifo = Path.cwd() / "to-fifo.wasm"
    to_fifo.symlink_to(fifo)
    r = run_cli("fetch", REF, "-o", to_fifo, *flag)
    assert (r.code, r.out, r.err) == (
        8, "", f"error[not-a-regular-file]: '{to_fifo}' is a symbolic link to '{fifo}', a FIFO (named pipe), "
               "not a regular file; not replacing it\n"
               f"  would write test:pkg@1.0.0 ({short(data)})\n"
               "  hint: choose another path with -o\n")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and dangling.is_symlink() and to_fifo.is_symlink()
    assert temps(Path.cwd()) == [] and temps(tmp_path) == []


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_atomic_writes_never_replace_a_special_file(tmp_path: Path, kind: str) -> None:
    """The lock file, the cache's records, memos and config init all write through
    atomic_write_bytes: it refuses what is not a regular file and follows a link."""
    from pkgloader._fsutil import NotRegularFile, atomic_write_bytes

    node = tmp_path / "pkgloader.lock"
    make_node(node, kind)
    with pytest.raises(NotRegularFile) as ei:
        atomic_write_bytes(node, b"x")
    assert ei.value.strerror == f"{KIND_WORDS[kind]}, not a regular file; not replacing it"
    assert KIND_TEST[kind](os.lstat(node).st_mode) and temps(tmp_path) == []
    real = tmp_path / "real.lock"
    real.write_text("old")
    link = tmp_path / "link.lock"
    link.symlink_to(real)
    atomic_write_bytes(link, b"new")
    assert link.is_symlink() and real.read_text() == "new" and temps(tmp_path) == []


def test_sync_refuses_a_dependency_path_that_is_a_directory(registry, registry_config, wit_package, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                            run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    publish(registry, registry_config, wit_package, tmp_path, run_cli)
    proj = _project(tmp_path, monkeypatch)
    node = proj / "wit" / "deps" / "test-pkg-1.0.0.wasm"
    node.mkdir(parents=True)
    r = run_cli("sync")
    assert (r.code, r.out, r.err) == (
        8, "", f"error[not-a-regular-file]: '{node}' is a directory, not a regular file; not replacing it\n"
               "  hint: move it out of the way; pkgloader replaces regular files only\n")
    assert node.is_dir() and temps(node.parent) == []


# --- item 5: local file-system problems are exit 8 -------------------------------------------------


def _project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    proj = tmp_path / "proj"
    (proj / "wit").mkdir(parents=True)
    (proj / "pkgloader.toml").write_text('[dependencies]\n"test:pkg" = "1.0.0"\n')
    (proj / "wit" / "world.wit").write_text(textwrap.dedent("""
        package my:app@0.1.0;

        world app {
        }
        """))
    monkeypatch.chdir(proj)
    return proj


def test_a_directory_where_a_cache_blob_should_be(registry, registry_config, wit_package, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                 run_cli) -> None:
    data = publish(registry, registry_config, wit_package, tmp_path, run_cli)
    other = publish(registry, registry_config, wit_package, tmp_path, run_cli, name="other")
    assert run_cli("fetch", "test:other@=1.0.0", "-o", tmp_path / "other.wasm", "-q").code == 0
    cache = Path(os.environ["PKGLOADER_CACHE_DIR"])
    blob = cache / "blobs" / "sha256" / hashlib.sha256(data).hexdigest()
    blob.mkdir(parents=True)
    (blob / "something").write_text("not the package")
    entry = (f"error[not-a-regular-file]: the cache entry '{blob}' is a directory, not a regular file\n"
             "  pkgloader does not replace it\n"
             "  hint: remove it, or empty the whole cache with 'pkgloader cache clean'\n")
    r = run_cli("fetch", REF, "-o", tmp_path / "a.wasm")
    assert (r.code, r.out, r.err) == (8, "", entry)
    assert not (tmp_path / "a.wasm").exists() and blob.is_dir()
    r = run_cli("cache", "verify")
    assert (r.code, r.out, r.err) == (
        8, "", "error[not-a-regular-file]: 1 cache entry is not a regular file; left in place\n"
               f"  {blob} is a directory\n"
               "  checked 2 blob(s); removed 0 corrupted\n"
               "  hint: remove it, or empty the whole cache with 'pkgloader cache clean'\n")
    assert blob.is_dir() and (cache / "blobs" / "sha256" / hashlib.sha256(other).hexdigest()).is_file()
    assert run_cli("cache", "clean", "-q").code == 0
    r = run_cli("fetch", REF, "-o", tmp_path / "a.wasm", "-q")
    assert (r.code, (tmp_path / "a.wasm").read_bytes()) == (0, data)


def test_a_project_whose_wit_deps_is_a_file(registry, registry_config, wit_package, tmp_path: Path,  # type: ignore[no-untyped-def]
                                           run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    publish(registry, registry_config, wit_package, tmp_path, run_cli)
    proj = _project(tmp_path, monkeypatch)
    deps = proj / "wit" / "deps"
    deps.write_text("not a directory")
    r = run_cli("sync")
    assert (r.code, r.out, r.err) == (
        8, "", f"error[io-error]: cannot write '{deps}/test-pkg-1.0.0.wasm': '{deps}' is a regular file, "
               "not a directory\n"
               "  nothing was written\n"
               f"  hint: move '{deps}' out of the way\n")
    assert deps.read_text() == "not a directory"


def test_an_unwritable_cache(registry, registry_config, wit_package, tmp_path: Path, run_cli,  # type: ignore[no-untyped-def]
                             unwritable) -> None:
    publish(registry, registry_config, wit_package, tmp_path, run_cli)
    cache = tmp_path / "ro-cache"
    unwritable(cache)
    # a cache root that takes no new entry is a read-only cache (tests/mirrors/test_readonly_cache.py)
    first = (f"error[io-error]: the cache directory '{cache}' is read-only, and pkgloader writes to its cache "
             "(a cache shared read-only is not supported)\n")
    hint = ("  hint: give each runner a writable cache (--cache-dir or PKGLOADER_CACHE_DIR), or share packages "
            "read-only as an OCI layout: 'pkgloader export DIR', then 'pkgloader import DIR' or an oci-layout "
            "registry (see README, CI and fleets)\n")
    r = run_cli("fetch", REF, "-o", tmp_path / "a.wasm", "--cache-dir", cache)
    assert (r.code, r.out, r.err) == (8, "", first + f"  not allowed to create '{cache}/releases'\n" + hint)
    r = run_cli("versions", "test:pkg", "--cache-dir", cache)
    assert (r.code, r.out, r.err) == (8, "", first + f"  not allowed to create '{cache}/tags'\n" + hint)
    assert not (tmp_path / "a.wasm").exists() and os.listdir(cache) == []


@pytest.mark.parametrize("command", [["fetch", REF, "-o", "a.wasm"], ["versions", "test:pkg"], ["cache", "verify"],
                                     ["cache", "list"], ["cache", "clean"]], ids=lambda c: "-".join(c[:2]))
def test_a_cache_dir_that_is_a_file(registry, registry_config, wit_package, tmp_path: Path, run_cli,  # type: ignore[no-untyped-def]
                                    command: list[str]) -> None:
    publish(registry, registry_config, wit_package, tmp_path, run_cli)
    cache = tmp_path / "cache-file"
    cache.write_text("not a directory")
    r = run_cli(*command, "--cache-dir", cache)
    assert (r.code, r.out, r.err) == (
        8, "", f"error[io-error]: the cache directory '{cache}' is a regular file, not a directory\n"
               f"  hint: move '{cache}' out of the way, or choose another cache with --cache-dir\n")
    assert cache.read_text() == "not a directory" and not Path("a.wasm").exists()


# --- item 6: what killed processes leave behind -------------------------------------------------

_HOLDER = textwrap.dedent("""
    import os, sys, time
    from pkgloader._tempfiles import make_temp
    fd, path = make_temp(sys.argv[1], sys.argv[2])
    os.write(fd, b"x" * 100_000)
    print(path, flush=True)
    time.sleep(60)
""")


def _holder(directory: Path, prefix: str) -> tuple[subprocess.Popen[str], Path]:
    """A process that created a temp file the way every pkgloader writer does, and is still
    writing it (sleeps)."""
    p = subprocess.Popen([sys.executable, "-c", _HOLDER, str(directory), prefix], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    return p, Path(p.stdout.readline().strip())


def _killed(directory: Path, prefix: str) -> Path:
    p, path = _holder(directory, prefix)
    p.send_signal(signal.SIGKILL)
    p.wait()
    return path


def test_a_dead_writers_temp_file_goes_a_live_ones_stays(tmp_path: Path) -> None:
    from pkgloader._fsutil import clean_stale_temps

    dead = _killed(tmp_path, ".out.wasm.")
    live_proc, live = _holder(tmp_path, ".out.wasm.")
    try:
        (tmp_path / ".x.pkgloader-1-0123456789ab.tmp").write_text("not ours: another suffix")
        (tmp_path / ".y.1234.part").write_text("not ours: another pattern")
        assert dead.name.startswith(".out.wasm.pkgloader-") and dead.stat().st_size == 100_000
        assert clean_stale_temps(tmp_path) == [str(dead)]
        assert live.exists() and not dead.exists()
        assert sorted(os.listdir(tmp_path)) == sorted([live.name, ".x.pkgloader-1-0123456789ab.tmp", ".y.1234.part"])
    finally:
        live_proc.kill()
        live_proc.wait()
    assert clean_stale_temps(tmp_path) == [str(live)]  # once its writer is gone


def test_the_writer_lock_closes_the_race_with_a_cleaner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between creating its temp file and locking it a writer is exposed: a cleaner that
    removes the (unlocked) file then makes the writer start over under a new name, and
    never removes a file it did not lock."""
    from pkgloader import _tempfiles
    from pkgloader._tempfiles import clean_stale_temps, make_temp

    names: list[str] = []
    real_open = os.open

    def open_then_clean(path: Any, flags: int, *args: Any) -> int:
        fd = real_open(path, flags, *args)
        if flags & os.O_EXCL and not names:
            names.append(str(path))
            monkeypatch.setattr(os, "getpid", lambda: 1)  # clean as another process would
            assert clean_stale_temps(tmp_path) == [str(path)]
            monkeypatch.undo()
        return fd

    monkeypatch.setattr(_tempfiles.os, "open", open_then_clean)
    fd, path = make_temp(tmp_path, ".out.")
    monkeypatch.undo()
    try:
        assert path != names[0] and os.listdir(tmp_path) == [os.path.basename(path)]
        monkeypatch.setattr(os, "getpid", lambda: 1)
        assert clean_stale_temps(tmp_path) == []  # locked: a live writer's
    finally:
        monkeypatch.undo()
        os.close(fd)


def test_the_next_fetch_cleans_an_output_directory_and_the_cache(registry, registry_config, wit_package,  # type: ignore[no-untyped-def]
                                                                 tmp_path: Path, run_cli) -> None:
    """A fetch killed while copying into the output directory, and one killed while
    downloading into the cache, leave temp files; the next fetch (warm or cold) removes
    them, and leaves a live writer's alone."""
    data = publish(registry, registry_config, wit_package, tmp_path, run_cli)
    cache = Path(os.environ["PKGLOADER_CACHE_DIR"])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (cache / "tmp").mkdir(parents=True)
    dead_out = _killed(out_dir, f".{FILE}.")
    dead_dl = _killed(cache / "tmp", "0123456789abcdef.")
    live_proc, live = _holder(out_dir, ".other.wasm.")
    try:
        r = run_cli("fetch", REF, "-o", out_dir / FILE, "-q")  # cold: the full path
        assert (r.code, r.err) == (0, "")
        assert sorted(os.listdir(out_dir)) == sorted([FILE, live.name])
        assert os.listdir(cache / "tmp") == []
        dead_out = _killed(out_dir, f".{FILE}.")
        r = run_cli("fetch", REF, "-o", out_dir / "again.wasm", "-q")  # warm: the fast path
        assert (r.code, r.err) == (0, "")
        assert sorted(os.listdir(out_dir)) == sorted([FILE, "again.wasm", live.name])
        assert (out_dir / "again.wasm").read_bytes() == data
    finally:
        live_proc.kill()
        live_proc.wait()
    assert not dead_out.exists() and not dead_dl.exists()


def test_verify_removes_a_dead_downloads_file_at_once(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    (tmp_path / "tmp").mkdir()
    dead = _killed(tmp_path / "tmp", "0123456789abcdef.")
    old_style = tmp_path / "tmp" / "0123456789abcdef.0123456789ab.part"  # an older pkgloader's, fresh
    old_style.write_bytes(b"x")
    assert cache.verify_all() == (0, [], [])
    assert os.listdir(tmp_path / "tmp") == [old_style.name]  # (removed once an hour old, as before)
    assert not dead.exists()


def test_output_errors_are_pkgloader_errors(tmp_path: Path) -> None:
    """From the library too: a refusal is an OutputExists or a LocalIOError, never a bare
    OSError."""
    cache = Cache(tmp_path / "cache")
    digest = _ingest(cache, b"\0asm\x01\0\0\0")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(LocalIOError) as ei:
        cache.copy_blob(digest, fifo, overwrite=True)
    assert ei.value.code == "not-a-regular-file"
    (tmp_path / "file").write_text("x")
    with pytest.raises(LocalIOError) as ei:
        cache.copy_blob(digest, tmp_path / "file" / "out.wasm", overwrite=True)
    assert ei.value.render() == (f"error[io-error]: cannot write '{tmp_path}/file/out.wasm': '{tmp_path}/file' is a "
                                 "regular file, not a directory\n"
                                 "  nothing was written\n"
                                 f"  hint: move '{tmp_path}/file' out of the way")
    with pytest.raises(OutputExists):
        cache.copy_blob(digest, tmp_path / "file", overwrite=False)


def test_a_local_override_never_replaces_what_it_would_not_write(tmp_path: Path) -> None:
    """sync copies a path dependency into wit/deps: a file over a regular file only, a WIT
    directory over a directory only."""
    from pkgloader._project import place_local

    src_file = tmp_path / "dep.wasm"
    src_file.write_bytes(b"\0asm")
    src_dir = tmp_path / "dep-wit"
    src_dir.mkdir()
    (src_dir / "a.wit").write_text("package a:b;")
    deps = tmp_path / "deps"
    deps.mkdir()
    fifo = deps / "a-b.wasm"
    os.mkfifo(fifo)
    with pytest.raises(LocalIOError) as ei:
        place_local(src_file, fifo)
    assert ei.value.render() == (f"error[not-a-regular-file]: '{fifo}' is a FIFO (named pipe), not a regular file; "
                                 "not replacing it\n"
                                 "  nothing was written\n"
                                 "  hint: move it out of the way; pkgloader replaces regular files only")
    file_there = deps / "a-b"
    file_there.write_text("the user's")
    with pytest.raises(LocalIOError) as ei:
        place_local(src_dir, file_there)
    assert ei.value.render() == (f"error[not-a-regular-file]: '{file_there}' is a regular file, not a directory; "
                                 "not replacing it\n"
                                 "  nothing was written\n"
                                 "  hint: move it out of the way; pkgloader replaces regular files only")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and file_there.read_text() == "the user's"
    assert sorted(os.listdir(deps)) == ["a-b", "a-b.wasm"]
    place_local(src_dir, deps / "c-d")  # a directory where none is: placed
    assert (deps / "c-d" / "a.wit").read_text() == "package a:b;"


def test_a_release_record_that_is_a_fifo_is_never_read_or_replaced(registry, registry_config, wit_package,  # type: ignore[no-untyped-def]
                                                                    tmp_path: Path, run_cli) -> None:
    publish(registry, registry_config, wit_package, tmp_path, run_cli)
    cache = Path(os.environ["PKGLOADER_CACHE_DIR"])
    record = cache / "releases" / registry.host.replace(":", "_") / "test" / "pkg" / "1.0.0.json"
    record.parent.mkdir(parents=True)
    os.mkfifo(record)
    r = run_cli("fetch", REF, "-o", tmp_path / "a.wasm")  # (a blocking read of the FIFO would hang here)
    assert (r.code, r.out, r.err) == (
        8, "", f"error[not-a-regular-file]: cannot write to the cache at '{cache}': '{record}' is a FIFO (named pipe), "
               "not a regular file; not replacing it\n"
               "  hint: remove it, or empty the whole cache with 'pkgloader cache clean', or choose another cache "
               "with --cache-dir\n")
    assert stat.S_ISFIFO(os.lstat(record).st_mode) and temps(record.parent) == []


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_a_lock_given_with_lock_that_is_not_a_regular_file_is_named_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                       run_cli: Any, kind: str) -> None:
    (tmp_path / "wit").mkdir()
    (tmp_path / "wit" / "w.wit").write_text("package a:b;\n")
    (tmp_path / "pkgloader.toml").write_text("")
    monkeypatch.chdir(tmp_path)
    make_node(tmp_path / "lk", kind)
    words = {"directory": "directory", "fifo": "FIFO"}[kind]
    r = run_cli("sync", "--offline", "--lock", "lk")  # (opening a FIFO would hang)
    assert (r.code, r.out, r.err) == (
        2, "", f"error[invalid-config]: lock file 'lk' given with --lock is not a regular file (it is a {words})\n"
               "  hint: --lock names a lock file (pkgloader.lock, wkg.lock or Cargo-component.lock)\n")
    r = run_cli("sync", "--offline", "--lock", "nope.lock")
    assert (r.code, r.err) == (2, "error[invalid-config]: lock file 'nope.lock' given with --lock does not exist\n"
                                  "  hint: check the path, or leave out --lock to use the project's pkgloader.lock\n")
