"""``pkgloader cache dir | list | verify | clean``."""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any, Callable

from ._main import emit_json, load_config

_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    m = _DURATION_RE.match(text.strip())
    if not m:
        from .._errors import UsageError

        raise UsageError(f"invalid duration {text!r}", hint="write a number with a unit: 90m, 12h, 30d, 2w")
    return float(m.group(1)) * _UNITS[m.group(2)]


def register(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("cache", help="inspect and maintain the local cache",
                       description="The content-addressed cache of verified packages.")
    csub = p.add_subparsers(dest="cache_command", metavar="SUBCOMMAND")
    csub.required = True
    for name, helptext, func in (
        ("dir", "print the cache directory", cmd_dir),
        ("list", "list cached releases", cmd_list),
        ("verify", "re-hash every cached blob; remove the bad ones", cmd_verify),
        ("clean", "remove cached content (all, or unused for --older-than)", cmd_clean),
    ):
        c = csub.add_parser(name, help=helptext, description=helptext[0].upper() + helptext[1:] + ".")
        c.add_argument("--json", action="store_true", help="machine-readable output")
        if name == "clean":
            c.add_argument("--older-than", metavar="DURATION", help="only entries unused for this long (90m, 12h, 30d, 2w)")
        common(c)
        c.set_defaults(func=func)


def _cache(args: argparse.Namespace) -> Any:
    from .._cache import Cache

    return Cache(load_config(args).cache_dir)


def cmd_dir(args: argparse.Namespace) -> int:
    cache = _cache(args)
    if args.json:
        emit_json({"cache_dir": str(cache.root)})
    else:
        sys.stdout.write(f"{cache.root}\n")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    entries = _cache(args).entries()
    if args.json:
        emit_json({"releases": [dict(e.release.to_json(), content_cached=e.blob_present) for e in entries]})
        return 0
    for e in entries:
        r = e.release
        state = "" if e.blob_present else "  (metadata only)"
        sys.stdout.write(f"{r.package}@{r.version}  {r.digest.short}  {r.size if r.size is not None else '?'} bytes  "
                         f"{r.registry}{state}\n")
    if not entries and not args.quiet:
        sys.stderr.write("the cache is empty\n")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    checked, removed, unusable = _cache(args).verify_all()
    summary = f"checked {checked} blob(s); removed {len(removed)} corrupted"
    if unusable:
        # an entry pkgloader must not replace (a directory where a blob should be): a local
        # fault (exit 8) that only the user can clear; the counts go with the error
        from .._cache import NOT_A_FILE
        from .._errors import LocalIOError

        n = len(unusable)
        raise LocalIOError(
            f"{n} cache entr{'y is' if n == 1 else 'ies are'} not a regular file; left in place",
            details=[f"{p} is {kind}" for p, kind in unusable] + [summary] + [f"removed {p}" for p in removed],
            hint="remove them, or empty the whole cache with 'pkgloader cache clean'" if n > 1
            else "remove it, or empty the whole cache with 'pkgloader cache clean'",
            code=NOT_A_FILE,
        )
    if args.json:
        emit_json({"checked": checked, "removed": [str(p) for p in removed]})
    else:
        sys.stdout.write(summary + "\n")
        for p in removed:
            sys.stdout.write(f"  removed {p}\n")
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    older = parse_duration(args.older_than) if args.older_than else None
    files, freed = _cache(args).clean(older)
    if args.json:
        emit_json({"removed_files": files, "freed_bytes": freed})
    else:
        sys.stdout.write(f"removed {files} file(s), freed {freed} bytes\n")
    return 0
