"""Progress on stderr, drawn as pip, uv and cargo draw it, only when stderr is a terminal.

One line per download in progress, each within the terminal's width:

    test:big@1.0.0  [##########----------]  52.4/100.0 MiB  38.1 MiB/s  ETA 0:01

A download shows up once it has run for ``SHOW_AFTER`` seconds (50 small packages do not
flicker); a finished one leaves the live lines; ``close()`` clears them, so the command's
own summary lines follow on a clean screen. The caller never creates it with ``-q`` or
``--json``, or when stderr is not a terminal. No colour is used.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Callable, TextIO

SHOW_AFTER = 0.2
REDRAW_EVERY = 0.1
BAR = 20


def _mib(n: float) -> str:
    return f"{n / 1048576:.1f}"


def _eta(seconds: float) -> str:
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class _Task:
    __slots__ = ("label", "total", "done", "started")

    def __init__(self, label: str, total: int | None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.started = time.monotonic()

    def line(self, now: float, width: int) -> str:
        """The task's line, never wider than the terminal (a wrapped line cannot be redrawn
        in place): the bar narrows first, then the name is shortened."""
        elapsed = max(now - self.started, 1e-6)
        rate = self.done / elapsed
        nums = [f"{_mib(self.done)}/{_mib(self.total)} MiB" if self.total else f"{_mib(self.done)} MiB",
                f"{_mib(rate)} MiB/s"]
        if self.total and rate > 0 and self.done < self.total:
            nums.append(f"ETA {_eta((self.total - self.done) / rate)}")
        rest = "  ".join(nums)
        avail = width - 1
        label = self.label
        bar_width = min(BAR, avail - len(label) - len(rest) - 6) if self.total else 0
        if bar_width >= 5:
            frac = min(self.done / (self.total or 1), 1.0)
            fill = int(frac * bar_width)
            return f"{label}  [{'#' * fill}{'-' * (bar_width - fill)}]  {rest}"
        keep = avail - len(rest) - 2
        if len(label) > keep:
            label = label[: max(keep - 1, 0)] + "~" if keep >= 10 else label[:10]
        return f"{label}  {rest}"[:avail]


class ProgressDisplay:
    """``display(label, total)`` returns the callable a download reports bytes to (the
    ``progress`` argument of ``Client``); thread-safe; ``close()`` clears what it drew."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._lock = threading.Lock()
        self._tasks: list[_Task] = []
        self._drawn = 0  # lines currently on the screen
        self._last = 0.0

    def __call__(self, label: str, total: int | None) -> Callable[[int], None]:
        task = _Task(label, total)
        with self._lock:
            self._tasks.append(task)

        def tick(n: int) -> None:
            task.done += n
            finished = task.total is not None and task.done >= task.total
            now = time.monotonic()
            with self._lock:
                if finished:
                    if task in self._tasks:
                        self._tasks.remove(task)
                    self._redraw(now)
                elif now - self._last >= REDRAW_EVERY:
                    self._redraw(now)

        return tick

    def _width(self) -> int:
        try:
            return os.get_terminal_size(self.stream.fileno()).columns or 80
        except (OSError, ValueError, AttributeError):
            return 80

    def _redraw(self, now: float) -> None:
        """Redraw the live lines in place. The cursor rests at the end of the last drawn
        line (or, with none drawn, where the next ordinary output goes)."""
        self._last = now
        width = self._width()
        lines = [t.line(now, width) for t in self._tasks if now - t.started >= SHOW_AFTER]
        if not lines and not self._drawn:
            return
        out = []
        if self._drawn:
            out.append("\r" + (f"\x1b[{self._drawn - 1}A" if self._drawn > 1 else ""))  # to the first line
        out.append("\n".join("\x1b[2K" + line for line in lines))
        extra = self._drawn - len(lines)
        if extra > 0:  # fewer lines than before: clear the old ones below, come back up
            if not lines:
                out.append("\x1b[2K")
                extra -= 1
            out.append("\n\x1b[2K" * extra)
            if extra:
                out.append(f"\x1b[{extra}A")
        self._drawn = len(lines)
        self.stream.write("".join(out))
        self.stream.flush()

    def close(self) -> None:
        with self._lock:
            self._tasks.clear()
            self._redraw(time.monotonic())


def progress_factory() -> ProgressDisplay | None:
    if not sys.stderr.isatty():
        return None
    return ProgressDisplay(sys.stderr)
