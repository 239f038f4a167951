"""The pkgloader command line. The only place that prints or exits.

Imports are kept lazy: ``pkgloader --help`` and a warm ``pkgloader fetch`` of a cached
release must not import the HTTP stack.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


#: the options every command takes, which may also stand before the command (as with pip,
#: uv or git): ``pkgloader -v fetch ...`` is ``pkgloader fetch ... -v``
_COMMON_VALUE = ("--config", "--registry", "--cache-dir")
_COMMON_FLAG = ("--verbose", "--quiet", "-q")


def hoist_common_options(args: list[str]) -> list[str]:
    """Move common options that stand before the command to the end of its arguments
    (before a ``--``), where every command's parser takes them."""
    lead: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a in _COMMON_VALUE and i + 1 < len(args):
            lead += args[i:i + 2]
            i += 2
        elif a.startswith(tuple(f"{o}=" for o in _COMMON_VALUE)) or a in _COMMON_FLAG or \
                (len(a) > 1 and a.startswith("-") and not a.startswith("--") and set(a[1:]) <= {"v", "q"}):
            lead.append(a)
            i += 1
        else:
            break
    if not lead or i >= len(args) or args[i].startswith("-"):
        return args  # nothing to move, or no command follows: argparse reports it as it is
    rest = args[i:]
    if "--" in rest:
        cut = rest.index("--")
        return rest[:cut] + lead + rest[cut:]
    return rest + lead


def main(argv: list[str] | None = None) -> int:
    args = hoist_common_options(sys.argv[1:] if argv is None else list(argv))
    if args[:1] == ["fetch"]:
        from ._fast import try_fetch

        code = try_fetch(args[1:])
        if code is not None:
            return code
    from ._main import run

    return run(args)


def process_main() -> int:
    """``main()`` for a process of its own (the console script, ``python -m pkgloader``).

    The cyclic garbage collector's work in a short command is mostly wasted: its
    collections during the imports re-examine every object just created (a young
    generation of 10,000 objects instead of 700 halves them), and the interpreter's
    collections at exit walk every object left, all of which the exit frees anyway:
    ``gc.freeze()`` moves them out of its sight first. Together ~10 % of a cold fetch's
    instructions. Reference counting frees as before; cycles are still collected while the
    command runs. Not done for ``main()`` called in a process that goes on (tests, users)."""
    import gc

    gc.set_threshold(10_000, *gc.get_threshold()[1:])
    code = main()
    gc.freeze()
    return code


def entry() -> None:  # pragma: no cover - console script shim
    sys.exit(process_main())
