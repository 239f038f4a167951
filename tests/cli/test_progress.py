"""The progress display under a real pseudo-terminal: name, size, total, rate, ETA, one
line per concurrent download, within the terminal's width, cleared at the end; nothing of
it when stderr is not a terminal, with -q or with --json."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path
from typing import Any, Callable

import pytest

from pkgloader import Client
from support.wit import custom_section

COLUMNS = 60
_ESC = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _run_in_pty(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pseudo-terminal of COLUMNS columns; (code, stdout, tty text)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, COLUMNS, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "pkgloader", *args], stdout=subprocess.PIPE, stderr=slave,
                            stdin=subprocess.DEVNULL, env=env, cwd=cwd)
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            proc.kill()
            raise AssertionError("no output from the CLI for 30 s")
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    out = proc.stdout.read().decode() if proc.stdout else ""
    code = proc.wait(timeout=30)
    os.close(master)
    return code, out, b"".join(chunks).decode("utf-8", "replace")


@pytest.fixture
def slow_big(registry: Any, registry_config: Callable[..., Path], fault_proxy: Any, wit_package: Callable[..., Path],
             tmp_path: Path) -> tuple[dict[str, str], int]:
    """Two large packages behind a proxy that pauses their bodies, so progress is drawn."""
    registry_config(registry)
    size = 0
    with Client() as c:
        for name in ("big", "huge-name-for-a-package"):
            wasm = tmp_path / f"{name}.wasm"
            wasm.write_bytes(wit_package("test", name, "1.0.0").read_bytes() + custom_section(b"pad", os.urandom(3 << 20)))
            size = wasm.stat().st_size
            c.publish(wasm, f"test:{name}@1.0.0")
    proxy = fault_proxy(registry)
    proxy.stall(r"/blobs/", after=1 << 20, seconds=0.8)
    cfg = tmp_path / "via-proxy.toml"
    cfg.write_text(f'[namespace_registries]\ntest = {{ registry = "{proxy.host}", metadata = {{ preferredProtocol = "oci" }} }}\n'
                   f'[registry."{proxy.host}".oci]\nprotocol = "http"\n')
    env = dict(os.environ, PKGLOADER_CONFIG=str(cfg), PKGLOADER_CACHE_DIR=str(tmp_path / "cache2"))
    env.pop("COLUMNS", None)
    return env, size


def test_progress_lines_in_a_terminal(slow_big: tuple[dict[str, str], int], tmp_path: Path) -> None:
    env, size = slow_big
    code, out, tty = _run_in_pty(["fetch", "test:big@=1.0.0", "test:huge-name-for-a-package@=1.0.0",
                                  "-o", f"{tmp_path}/out/"], env, tmp_path)
    assert code == 0, tty
    drawn = [ln for ln in re.split(r"\x1b\[2K|\r|\n", _ESC.sub(lambda m: "\n" if m.group(0).endswith("K") else "", tty))
             if "MiB/s" in ln]
    assert drawn, tty
    assert any(ln.startswith("test:big@1.0.0  [") and f"/{size / 1048576:.1f} MiB" in ln and "ETA " in ln
               for ln in drawn), drawn
    assert any(ln.startswith("test:huge-name") for ln in drawn), drawn
    assert all(len(ln) < COLUMNS for ln in drawn), [ln for ln in drawn if len(ln) >= COLUMNS]
    assert "\x1b[1A" in tty  # two downloads at once: two lines, redrawn in place
    # cleared at the end: the summaries follow on a clean line, after the last drawing
    last_draw = tty.rfind("MiB/s")
    assert tty.rfind("fetched test:big@1.0.0") > last_draw and tty.rfind("\x1b[2K") > last_draw
    assert out.count(".wasm\n") == 2


@pytest.mark.parametrize("flag", ["-q", "--json"])
def test_no_progress_with_quiet_or_json(slow_big: tuple[dict[str, str], int], tmp_path: Path, flag: str) -> None:
    env, _ = slow_big
    code, out, tty = _run_in_pty(["fetch", "test:big@=1.0.0", "-o", f"{tmp_path}/q/", flag], env, tmp_path)
    assert code == 0, tty
    assert "\x1b[" not in tty and "MiB/s" not in tty


def test_no_progress_when_stderr_is_not_a_terminal(slow_big: tuple[dict[str, str], int], tmp_path: Path) -> None:
    env, _ = slow_big
    r = subprocess.run([sys.executable, "-m", "pkgloader", "fetch", "test:big@=1.0.0", "-o", f"{tmp_path}/n/"],
                       env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "\x1b[" not in r.stderr and "MiB/s" not in r.stderr
