"""The ``pkgloader`` logger, without importing :mod:`logging` until a record could be shown.

Importing ``logging`` costs ~6 ms, a noticeable share of a cold command, and most runs log
nothing that any handler would show. While nothing in the process has imported ``logging``,
no handler exists that could show a DEBUG or INFO record (Python's last-resort handler prints
WARNING and above only), so those calls are dropped without importing it. A WARNING or above
imports ``logging`` and is logged the ordinary way. Once anything has imported ``logging``
(the application, httpx, ``-v``), every call goes straight to ``logging.getLogger(name)``, so
applications configure pkgloader's logging exactly as with any library.

The CLI registers :func:`on_first_use` to install its own handler at that moment.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

__all__ = ["LazyLogger", "get_logger", "on_first_use"]

_hook: Callable[[], None] | None = None


def on_first_use(hook: Callable[[], None] | None) -> None:
    """Call ``hook`` once, right before the first record that needs ``logging`` (CLI set-up);
    ``None`` removes it."""
    global _hook
    _hook = hook


class LazyLogger:
    __slots__ = ("name", "_logger")

    def __init__(self, name: str) -> None:
        self.name = name
        self._logger: Any = None

    def _get(self) -> Any:
        global _hook
        if _hook is not None:
            hook, _hook = _hook, None
            hook()
        if self._logger is None:
            import logging

            self._logger = logging.getLogger(self.name)
        return self._logger

    def _live(self) -> bool:
        return self._logger is not None or "logging" in sys.modules

    def debug(self, msg: object, *args: object, **kw: Any) -> None:
        if self._live():
            kw.setdefault("stacklevel", 2)
            self._get().debug(msg, *args, **kw)

    def info(self, msg: object, *args: object, **kw: Any) -> None:
        if self._live():
            kw.setdefault("stacklevel", 2)
            self._get().info(msg, *args, **kw)

    def warning(self, msg: object, *args: object, **kw: Any) -> None:
        kw.setdefault("stacklevel", 2)
        self._get().warning(msg, *args, **kw)

    def error(self, msg: object, *args: object, **kw: Any) -> None:
        kw.setdefault("stacklevel", 2)
        self._get().error(msg, *args, **kw)


_loggers: dict[str, LazyLogger] = {}


def get_logger(name: str = "pkgloader") -> LazyLogger:
    lg = _loggers.get(name)
    if lg is None:
        lg = _loggers[name] = LazyLogger(name)
    return lg
