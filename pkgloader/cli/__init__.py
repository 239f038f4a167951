"""The pkgloader command line. The only place that prints or exits.

Imports are kept lazy: ``pkgloader --help`` and a warm ``pkgloader fetch`` of a cached
release must not import the HTTP stack.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["fetch"]:
        from ._fast import try_fetch

        code = try_fetch(args[1:])
        if code is not None:
            return code
    from ._main import run

    return run(args)


def entry() -> None:  # pragma: no cover - console script shim
    sys.exit(main())
