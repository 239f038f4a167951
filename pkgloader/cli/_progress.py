"""A minimal progress bar on stderr, only when stderr is a terminal."""

from __future__ import annotations

import sys
import threading
import time
from typing import Callable


def progress_factory() -> Callable[[str, int | None], Callable[[int], None]] | None:
    if not sys.stderr.isatty():
        return None
    lock = threading.Lock()

    def start(label: str, total: int | None) -> Callable[[int], None]:
        state = {"done": 0, "last": 0.0}

        def tick(n: int) -> None:
            state["done"] += n
            now = time.monotonic()
            finished = total is not None and state["done"] >= total
            if now - state["last"] < 0.1 and not finished:
                return
            state["last"] = now
            done = state["done"]
            if total:
                frac = min(done / total, 1.0)
                bar = "#" * int(frac * 30)
                text = f"\r{label[:40]:<40} [{bar:<30}] {frac * 100:5.1f}% {done / 1048576:8.1f} MiB"
            else:
                text = f"\r{label[:40]:<40} {done / 1048576:8.1f} MiB"
            with lock:
                sys.stderr.write(text + ("\n" if finished else ""))
                sys.stderr.flush()

        return tick

    return start
