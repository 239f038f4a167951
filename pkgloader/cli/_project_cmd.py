"""``pkgloader lock | sync | update`` (and ``fetch`` with no REF in a project)."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from ._main import emit_json, load_config


def _project_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lock", metavar="PATH", help="read this lock (wkg.lock and Cargo-component.lock are understood); "
                   "default: pkgloader.lock at the project root")
    p.add_argument("--wit", metavar="DIR", help="the project's WIT directory (default: wit/ at the project root)")
    p.add_argument("--locked", action="store_true", help="fail if the lock file would change")
    p.add_argument("--offline", action="store_true", help="use only the local cache; fail clearly on a miss")
    p.add_argument("--frozen", action="store_true", help="--locked and --offline")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def register(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    lock = sub.add_parser("lock", help="resolve the project's dependencies and write pkgloader.lock",
                          description="Resolve [dependencies] and the packages the WIT files use, transitively, "
                          "and write pkgloader.lock (wkg.lock format). Locked versions are kept while they still fit.")
    _project_opts(lock)
    common(lock)
    lock.set_defaults(func=cmd_lock)

    sync = sub.add_parser("sync", help="fetch everything the lock names into wit/deps/",
                          description="Lock (if needed), then write every locked package into wit/deps/ as "
                          "ns-name-X.Y.Z.wasm, verified against the lock's digests, in parallel.")
    _project_opts(sync)
    common(sync)
    sync.set_defaults(func=cmd_sync)

    update = sub.add_parser("update", help="re-resolve packages within their requirements",
                            description="Re-resolve the named packages (all when none is named) to the highest "
                            "versions the requirements allow, and write the lock.")
    update.add_argument("refs", nargs="*", metavar="REF", help="packages to update (default: all)")
    _project_opts(update)
    common(update)
    update.set_defaults(func=cmd_update)


def _client(args: argparse.Namespace) -> Any:
    from .._client import Client

    if getattr(args, "frozen", False):
        args.locked = args.offline = True
    return Client(load_config(args), offline=args.offline)


def _report(args: argparse.Namespace, result: Any, verb: str) -> int:
    if args.json:
        emit_json(result.to_json())
        return 0
    if args.quiet:
        return 0
    for line in result.changes:
        sys.stderr.write(f"{line}\n")
    n = sum(1 for r in result.resolution.values() if r.version is not None)
    state = "written" if result.lock_written else "up to date"
    sys.stderr.write(f"{result.lock_path.name} {state} ({n} package{'s' if n != 1 else ''})\n")
    if verb == "sync":
        for p in result.synced:
            sys.stdout.write(f"{p}\n")
        for p in result.removed:
            sys.stderr.write(f"removed {p}\n")
    return 0


def cmd_lock(args: argparse.Namespace) -> int:
    with _client(args) as client:
        result = client.lock(client.project(lock=args.lock, wit_dir=args.wit), locked=args.locked)
    return _report(args, result, "lock")


def cmd_update(args: argparse.Namespace) -> int:
    with _client(args) as client:
        result = client.update(args.refs, project=client.project(lock=args.lock, wit_dir=args.wit), locked=args.locked)
    return _report(args, result, "update")


def cmd_sync(args: argparse.Namespace) -> int:
    with _client(args) as client:
        result = client.sync(client.project(lock=args.lock, wit_dir=args.wit), locked=args.locked)
    return _report(args, result, "sync")
