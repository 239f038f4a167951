"""Regular expressions compiled on first use, not at import.

Compiling a pattern runs ``re``'s parser and compiler in Python (tens to hundreds of
microseconds each); most of pkgloader's patterns are for paths a command rarely takes
(error messages, redaction, config files, tag pages), so a cold start should not pay
for them. ``LazyPattern(p, flags)`` stands in for ``re.compile(p, flags)``: the first
attribute used (``match``, ``fullmatch``, ``search``, ``sub``, ``findall``, ...) compiles
the pattern, and each attribute is then kept on the instance, so later calls go straight
to the compiled pattern's bound method.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["LazyPattern"]


class LazyPattern:
    def __init__(self, pattern: str, flags: int = 0) -> None:
        self.pattern = pattern
        self.flags = flags

    def __getattr__(self, name: str) -> Any:  # only for attributes not yet on the instance
        if name.startswith("__"):
            raise AttributeError(name)
        d = self.__dict__
        compiled = d.get("_compiled")
        if compiled is None:
            compiled = d["_compiled"] = re.compile(d["pattern"], d["flags"])
        value = getattr(compiled, name)
        d[name] = value
        return value

    def __repr__(self) -> str:
        return f"LazyPattern({self.pattern!r}, {self.flags!r})"
