"""A real ``pkgloader fetch`` of a large package from a real registry, killed with SIGKILL at
random points (issue 13): no partial file is ever under a final name, the next command that
writes removes what the dead process left (and never a live download's file), and the next
fetch is correct.

The download is held at a known point by a fault proxy that stalls the blob's body after a
random number of bytes; other runs are killed at a random moment (start-up, resolving,
downloading, linking or copying to the output, or after the end). The seed is printed on
failure (``PKGLOADER_CRASH_SEED`` replays a run).
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from support.wit import custom_section

REF = "test:big@=1.0.0"
FILE = "test_big@1.0.0.wasm"
BLOB = r"/v2/test/big/blobs/sha256:"
#: how long the live download is held mid-body while the other runs are killed around it
LIVE_STALL = 6.0


def _spawn(out: Path, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "pkgloader", "fetch", REF, "-o", str(out), "--overwrite", "-q"],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(predicate: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _temps(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".part")) if directory.exists() else []


def test_fetch_killed_at_random_points(registry, registry_config, wit_package, fault_proxy, tmp_path: Path,  # type: ignore[no-untyped-def]
                                       run_cli) -> None:
    from pkgloader._engine import SHARE_MIN

    seed = int(os.environ.get("PKGLOADER_CRASH_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)

    registry_config(registry)
    data = wit_package("test", "big", "1.0.0").read_bytes() + custom_section(b"padding", os.urandom(SHARE_MIN + (2 << 20)))
    small = wit_package("test", "small", "1.0.0")
    (tmp_path / "big.wasm").write_bytes(data)
    for src, ref in ((tmp_path / "big.wasm", "test:big@1.0.0"), (small, "test:small@1.0.0")):
        r = run_cli("publish", src, "--package", ref, "-q")
        assert r.code == 0, r
    proxy = fault_proxy(registry)
    registry_config(proxy)  # every fetch goes through the proxy
    cache = Path(os.environ["PKGLOADER_CACHE_DIR"])
    blob = cache / "blobs" / "sha256" / hashlib.sha256(data).hexdigest()
    out = tmp_path / "out" / FILE

    # a live download, held mid-body while the others are killed around it
    live_rule = proxy.stall(BLOB, after=rng.randrange(1, len(data)), seconds=LIVE_STALL, times=1)
    live_out = tmp_path / "live" / FILE
    live = _spawn(live_out, tmp_path)
    _wait_for(lambda: live_rule.hits, f"the live download (seed {seed})")
    _wait_for(lambda: _temps(cache / "tmp"), "the live download's temp file")
    live_tmp = _temps(cache / "tmp")
    started = time.monotonic()

    commands = [["versions", "test:big"], ["cache", "verify"], ["fetch", "test:small@=1.0.0", "-o", f"{out.parent}/"],
                ["cache", "clean", "--older-than", "30d"], ["cache", "clean"]]
    points = ["mid-download"] * 3 + ["any moment"] * 2
    rng.shuffle(points)
    checked_live = 0
    for i, point in enumerate(points):
        blob.unlink(missing_ok=True)  # cold: the live download may have finished meanwhile
        if point == "mid-download":  # held after a random number of bytes
            rule = proxy.stall(BLOB, after=rng.randrange(1, len(data)), seconds=30, times=1)
            proc = _spawn(out, tmp_path)
            _wait_for(lambda: rule.hits or proc.poll() is not None, f"run {i}'s download (seed {seed})")
            if not rule.hits:
                # no download: the live one committed the blob meanwhile (a slow machine)
                assert (proc.returncode, blob.exists()) == (0, True), (i, seed, proc.communicate())
                proxy.clear()
            time.sleep(rng.uniform(0.0, 0.2))
        else:
            proc = _spawn(out, tmp_path)
            time.sleep(rng.uniform(0.05, 0.8))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        context = f"run {i} ({point}, seed {seed})"
        # no partial file under a final name
        for final in (out, blob):
            assert not final.exists() or final.read_bytes() == data, context
        # any command that writes removes what the dead process left in the cache ...
        r = run_cli(*commands[i % len(commands)], "-q")
        assert r.code == 0, (context, r)
        left = _temps(cache / "tmp")
        if time.monotonic() - started < LIVE_STALL - 0.5 and live.poll() is None:
            assert left == live_tmp, (context, left)  # ... but not the live one's
            checked_live += 1
        else:
            assert set(left) <= set(live_tmp), (context, left)
        # the next fetch: correct, and nothing is left next to the output either
        r = run_cli("fetch", REF, "-o", out, "--overwrite", "-q")
        assert (r.code, r.err, out.read_bytes() == data) == (0, "", True), context
        assert _temps(out.parent) == [], context
        out.unlink()
    assert checked_live >= 1  # the live download was still held while others were cleaned

    out_, err = live.communicate(timeout=60)
    assert (live.returncode, out_, err) == (0, f"{live_out}\n", "")
    assert live_out.read_bytes() == data
    assert _temps(cache / "tmp") == [] and _temps(live_out.parent) == [] and _temps(out.parent) == []
