"""``pkgloader lock | sync | update`` (and ``fetch`` with no REF in a project)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
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
    from ._verify_cmd import add_verify_flags  # --verify / --no-verify (provenance)

    add_verify_flags(p)


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
    sync.add_argument("--format", dest="deps_format", choices=("wasm", "wit"), default=None,
                      help="write WIT packages as binary .wasm or as WIT text directories (as wkg does; needs "
                           "pkgloader[wit]); default: the deps_format setting, else wasm")
    sync.add_argument("--replace-deps", action="store_true",
                      help="replace a package wit/deps/ already holds in another form (default: refuse)")
    common(sync)
    sync.set_defaults(func=cmd_sync)

    update = sub.add_parser("update", help="re-resolve packages within their requirements",
                            description="Re-resolve the named packages (all when none is named) to the highest "
                            "versions the requirements allow, and write the lock.")
    update.add_argument("refs", nargs="*", metavar="REF", help="packages to update (default: all)")
    _project_opts(update)
    common(update)
    update.set_defaults(func=cmd_update)

    _register_init(sub, common)


def _register_init(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    init = sub.add_parser("init", help="start a project: write a commented pkgloader.toml",
                          description="Write a commented pkgloader.toml in the current directory (never overwrites). "
                          "A wit/ directory is detected: the packages its WIT files use are listed (they are "
                          "dependencies without being written down).")
    init.add_argument("--wit", metavar="DIR", help="the project's WIT directory (default: wit/)")
    init.add_argument("--json", action="store_true", help="machine-readable output")
    common(init)
    init.set_defaults(func=cmd_init)


def _init_text(wit: Path, found: list[str], wit_given: bool) -> str:
    lines = [
        "# pkgloader project file: see README's \"Projects\" section.",
        "# Dependencies are the [dependencies] below plus every foreign package the WIT files",
        f"# in {wit.as_posix()}/ use (use/import/export/include); wit/deps/ is where 'pkgloader sync' writes them.",
        "",
    ]
    if found:
        lines.append(f"# found in {wit.as_posix()}/ (already dependencies; pin or redirect them below if needed):")
        lines += [f"#   {f}" for f in found]
        lines.append("")
    elif wit.is_dir():
        lines += [f"# {wit.as_posix()}/ uses no foreign package yet.", ""]
    else:
        lines += [f"# no {wit.as_posix()}/ directory yet: create it for your WIT files, or list packages below.", ""]
    lines += [
        "[dependencies]",
        '# "wasi:http" = "0.2"                          # a Cargo-style requirement',
        '# "my-org:lib" = { version = "1", registry = "registry.my-org.dev" }',
        '# "my-org:local" = { path = "../local-lib/wit" }  # a local WIT directory or .wasm file',
        "",
        "# [pkgloader]",
        "# max_concurrency = 8",
    ]
    if wit_given:
        lines.insert(0, f"# (created with --wit {wit.as_posix()}: pass --wit to lock and sync as well)")
    return "\n".join(lines) + "\n"


def cmd_init(args: argparse.Namespace) -> int:
    from .._errors import OutputExists
    from .._fsutil import atomic_write_bytes

    target = Path.cwd() / "pkgloader.toml"
    if target.exists() or target.is_symlink():
        raise OutputExists(f"{target} already exists; pkgloader init never overwrites it",
                           hint="edit it, or remove it and run pkgloader init again")
    wit = Path(args.wit) if args.wit else Path("wit")
    found: list[str] = []
    if wit.is_dir():
        from .._witdeps import scan_wit_dir

        scan = scan_wit_dir(wit)
        found = [f"{d}  ({d.location})" for d in scan.dependencies]
    atomic_write_bytes(target, _init_text(wit, found, args.wit is not None).encode())
    if args.json:
        emit_json({"project_file": str(target), "wit_dir": str(wit.resolve()) if wit.is_dir() else None,
                   "wit_dependencies": [str(d) for d in (scan.dependencies if found else ())]})
    else:
        sys.stdout.write(f"{target}\n")
    if not args.json and not args.quiet:
        sys.stderr.write(f"wrote {target.name}" + (f" ({len(found)} package(s) found in {wit.as_posix()}/)" if found else "")
                         + "; next: pkgloader sync\n")
    return 0


def _client(args: argparse.Namespace) -> Any:
    from .._client import Client

    if getattr(args, "frozen", False):
        args.locked = args.offline = True
    return Client(load_config(args), offline=args.offline, verify=getattr(args, "verify", None))


def _report(args: argparse.Namespace, result: Any, verb: str, engine: Any = None) -> int:
    """Results on stdout (sync: the paths written), messages on stderr; ``-q`` silences the
    messages only, as for every command."""
    if args.json:
        data = result.to_json()
        if engine is not None:  # with registry mirrors: which endpoint served each package
            from ..backends._mirrors import served_by

            for entry in data["packages"]:
                where = served_by(engine, entry["package"], entry["version"])
                if where:
                    entry["served_by"] = where
        emit_json(data)
        return 0
    say = (lambda text: None) if args.quiet else (lambda text: sys.stderr.write(f"{text}\n"))
    for line in result.changes:
        say(line)
    n = sum(1 for r in result.resolution.values() if r.version is not None)
    state = "written" if result.lock_written else "up to date"
    say(f"{result.lock_path.name} {state} ({n} package{'s' if n != 1 else ''})")
    if verb == "sync":
        for p in result.synced:
            sys.stdout.write(f"{p}\n")
        for p in result.removed:
            say(f"removed {p}")
    return 0


def cmd_lock(args: argparse.Namespace) -> int:
    with _client(args) as client:
        result = client.lock(client.project(lock=args.lock, wit_dir=args.wit), locked=args.locked)
    return _report(args, result, "lock", client.engine)


def cmd_update(args: argparse.Namespace) -> int:
    with _client(args) as client:
        result = client.update(args.refs, project=client.project(lock=args.lock, wit_dir=args.wit), locked=args.locked)
    return _report(args, result, "update", client.engine)


def cmd_sync(args: argparse.Namespace) -> int:
    from .._errors import FetchManyError

    with _client(args) as client:
        try:
            result = client.sync(client.project(lock=args.lock, wit_dir=args.wit), locked=args.locked,
                                 replace_deps=getattr(args, "replace_deps", False),
                                 deps_format=getattr(args, "deps_format", None))
        except FetchManyError as exc:
            return _report_failed_sync(args, exc)
    return _report(args, result, "sync", client.engine)


def _report_failed_sync(args: argparse.Namespace, exc: Any) -> int:
    """Some packages of a sync failed: every one is reported (the paths written on stdout,
    one error per failed package on stderr), the exit code that of the most severe."""
    written = [p for o in exc.fetched for p in o]
    if args.json:
        emit_json({"error": exc.to_json(), "fetched": [str(p) for p in written],
                   "errors": [dict(err.to_json(), package=spec) for spec, err in exc.errors]})
    else:
        for p in written:
            sys.stdout.write(f"{p}\n")
    for spec, err in exc.errors:
        sys.stderr.write(f"{spec}: {err.render()}\n")
    if not args.quiet:
        sys.stderr.write(f"{len(exc.errors)} of {len(exc.outcomes)} packages failed; the lock file is written, "
                         "run sync again to retry them\n")
    return exc.exit_code
