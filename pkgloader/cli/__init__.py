"""The pkgloader command line. The only place that prints or exits.

Imports are kept lazy: ``pkgloader --help`` and a warm ``pkgloader fetch`` of a cached
release must not import the HTTP stack.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    from ._main import run

    return run(sys.argv[1:] if argv is None else argv)


def entry() -> None:  # pragma: no cover - console script shim
    sys.exit(main())
