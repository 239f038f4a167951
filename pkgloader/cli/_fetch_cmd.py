"""``pkgloader fetch | versions | info | publish``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

from ._main import emit_json, load_config
from ._progress import progress_factory


def register(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    f = sub.add_parser(
        "fetch", help="download verified packages",
        description="Resolve each REF, download (or reuse from the verified cache) and write it atomically. "
        "Default output: ./<namespace>_<name>@<version>.wasm.")
    f.add_argument("refs", nargs="*", metavar="REF",
                   help="package reference, e.g. wasi:http@0.2 (requirement: Cargo rules); none in a project = sync")
    f.add_argument("-o", "--output", metavar="PATH|DIR/",
                   help="output file (one REF) or directory (ends with / or exists)")
    f.add_argument("--overwrite", action="store_true",
                   help="replace existing output files that hold other bytes (one that holds these bytes is "
                        "up to date and left untouched either way)")
    f.add_argument("--check", action="store_true",
                   help="write nothing: report whether every output holds the release it selects "
                        "(exit 0 when all are up to date, 7 output-out-of-date otherwise)")
    f.add_argument("--offline", action="store_true", help="use only the local cache; fail on a miss")
    f.add_argument("--strict", action="store_true", help="require the CNCF Wasm OCI artifact layout")
    f.add_argument("--json", action="store_true", help="machine-readable output")
    f.add_argument("--format", choices=("wasm", "wit", "auto"), default=None,
                   help="as wkg get --format: wasm (the default), wit (WIT text, needs pkgloader[wit]) or auto "
                        "(by the output's extension, else text for a WIT package and .wasm for a component)")
    from ._verify_cmd import add_verify_flags  # --verify / --no-verify (provenance)

    add_verify_flags(f)
    common(f)
    f.set_defaults(func=cmd_fetch)

    v = sub.add_parser("versions", help="list a package's versions",
                       description="List the released versions of a package (stable only unless --all).")
    v.add_argument("ref", metavar="REF")
    v.add_argument("--all", action="store_true", help="include pre-releases and yanked versions (marked)")
    v.add_argument("--offline", action="store_true", help="answer from the cache")
    v.add_argument("--json", action="store_true", help="machine-readable output")
    common(v)
    v.set_defaults(func=cmd_versions)

    i = sub.add_parser("info", help="show the release a reference selects",
                       description="Version, digest, size, registry, repository, media types and annotations of the "
                       "release REF selects. Downloads nothing but the manifest.")
    i.add_argument("ref", metavar="REF")
    i.add_argument("--offline", action="store_true", help="answer from the cache")
    i.add_argument("--strict", action="store_true", help="require the CNCF Wasm OCI artifact layout")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    common(i)
    i.set_defaults(func=cmd_info)

    p = sub.add_parser("publish", help="push a wasm file as a CNCF Wasm OCI artifact",
                       description="Push FILE as ns:name@version (config application/vnd.wasm.config.v0+json, one "
                       "application/wasm layer). Refuses to replace an existing version unless --force.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--package", metavar="NS:NAME@VERSION",
                   help="e.g. my-org:greeter@1.2.0; default: the name and version a WIT package declares")
    p.add_argument("--annotation", action="append", default=[], metavar="KEY=VALUE",
                   help="manifest annotation (repeatable), e.g. org.opencontainers.image.description=...")
    p.add_argument("--force", action="store_true", help="replace an existing version")
    p.add_argument("--dry-run", action="store_true",
                   help="print the manifest and config that would be pushed (JSON); push nothing")
    p.add_argument("--skip-dupes", action="store_true",
                   help="an already published version is skipped (exit 0), not an error and not replaced")
    p.add_argument("--sign-key", metavar="FILE",
                   help="sign it: attach a keyed Sigstore bundle (PEM private key: ECDSA P-256/P-384, Ed25519, RSA) "
                        "as a referrer (README, Provenance)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    common(p)
    p.set_defaults(func=cmd_publish)


def _client(args: argparse.Namespace, **kw: Any) -> Any:
    from .._client import Client

    return Client(load_config(args), offline=getattr(args, "offline", False),
                  strict=True if getattr(args, "strict", False) else None, verify=getattr(args, "verify", None), **kw)


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet and not args.json:
        sys.stderr.write(text + "\n")


def cmd_fetch(args: argparse.Namespace) -> int:
    from .._errors import UsageError
    from .._ref import PackageSpec

    if not args.refs:
        return _fetch_project(args)

    specs = [PackageSpec.parse(r) for r in args.refs]
    output = args.output
    if output and len(specs) > 1 and not (output.endswith(("/", "\\")) or Path(output).is_dir()):
        raise UsageError(f"-o {output!r} names one file but {len(specs)} packages were given",
                         hint="end the path with / to write into a directory")
    from .._errors import FetchManyError, PkgLoaderError

    if args.check:
        if getattr(args, "format", None) not in (None, "wasm"):
            raise UsageError("--check compares .wasm outputs only; it cannot check WIT text outputs (--format "
                             f"{args.format})", hint="run the fetch itself: an output that holds the same text is "
                             "reported up to date and left untouched")
        return _check(args, specs, output)
    progress = None if (args.quiet or args.json) else progress_factory()
    failed: FetchManyError | None = None
    try:
        with _client(args, progress=progress) as client:
            if getattr(args, "format", None) not in (None, "wasm"):  # WIT text output (_wittext)
                from .._wittext import fetch_outcomes

                try:
                    outcomes: list[tuple[str, Any]] = fetch_outcomes(client, specs, output, args.format, args.overwrite)
                except FetchManyError as exc:
                    failed, outcomes = exc, exc.outcomes
            elif len(specs) == 1:
                outcomes = [(str(specs[0]), client.fetch(specs[0], output, overwrite=args.overwrite))]
            else:
                try:
                    outcomes = [(str(r.release.package), r)
                                for r in client.fetch_many(specs, output or ".", overwrite=args.overwrite)]
                except FetchManyError as exc:
                    failed, outcomes = exc, exc.outcomes
    finally:
        if progress is not None:
            progress.close()  # the live lines go before anything else is printed
    # every package is reported, in the order given: a line per success and per failure
    fetched = [o for _, o in outcomes if not isinstance(o, PkgLoaderError)]
    if args.json:
        out: dict[str, Any] = {"fetched": [dict(r.to_json(), path=_shown(r.path)) for r in fetched]}
        from ..backends._mirrors import served_by  # with registry mirrors: who served each package

        for entry in out["fetched"]:
            where = served_by(client.engine, entry["package"], entry["version"])
            if where:
                entry["served_by"] = where
        out["errors"] = [dict(err.to_json(), package=spec) for spec, err in failed.errors] if failed is not None else []
        emit_json(out)
    for spec, o in outcomes:
        if isinstance(o, PkgLoaderError):
            sys.stderr.write(f"{spec}: {o.render()}\n")
            continue
        if not args.json:
            how = "up to date" if o.up_to_date else "cached" if o.from_cache else "fetched"
            sys.stdout.write(f"{_shown(o.path)}\n")
            _say(args, f"{how} {o.release.package}@{o.release.version} ({o.release.digest.short}, "
                       f"{_size(o.release.size)}) from {o.release.registry}")
    if failed is not None:
        _say(args, f"{len(failed.errors)} of {len(outcomes)} packages failed")
        return failed.exit_code
    return 0


def _check(args: argparse.Namespace, specs: list[Any], output: str | None) -> int:
    """``fetch --check``: resolve each REF and compare its output; write nothing."""
    from concurrent.futures import ThreadPoolExecutor
    from functools import partial

    from .._client import _distinct, _outcome
    from .._errors import FetchManyError, OutputOutOfDate, PkgLoaderError

    parsed = _distinct(specs)
    dest = output if len(parsed) == 1 else (output or ".").rstrip("/\\") + "/"

    with _client(args) as client:
        workers = max(1, min(client.config.settings.max_concurrency.value, len(parsed)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pkgloader") as pool:
            checked = pool.map(lambda spec: _outcome(partial(client.check, spec, dest)), parsed)
            outcomes = list(zip((str(s) for s in parsed), checked))
    errors = [(spec, o) for spec, o in outcomes if isinstance(o, PkgLoaderError)]
    if len(outcomes) == 1 and errors:
        raise errors[0][1]  # one REF: its error, as fetch reports it
    statuses = [o for _, o in outcomes if not isinstance(o, PkgLoaderError)]
    stale = [st for st in statuses if not st.up_to_date]
    if args.json:
        out: dict[str, Any] = {"checked": [dict(st.to_json(), path=_shown(st.path)) for st in statuses],
                               "errors": [dict(err.to_json(), package=spec) for spec, err in errors]}
        emit_json(out)
    words = {"up-to-date": "up to date", "missing": "would write (missing)",
             "different": "would replace (it holds other bytes; needs --overwrite)"}
    for spec, o in outcomes:
        if isinstance(o, PkgLoaderError):
            sys.stderr.write(f"{spec}: {o.render()}\n")
        elif not args.json:
            sys.stdout.write(f"{_shown(o.path)}\n")
            _say(args, f"{words[o.state]} {o.release.package}@{o.release.version} ({o.release.digest.short}, "
                       f"{_size(o.release.size)})")
    if errors:
        return FetchManyError(outcomes).exit_code  # that of the most severe failure
    if stale:
        err = OutputOutOfDate(f"{len(stale)} of {len(statuses)} outputs are not up to date",
                              details=[f"{_shown(st.path)}: {st.state}" for st in stale],
                              hint="run the same fetch without --check to write them")
        if not args.json:
            sys.stderr.write(err.render() + "\n")
        return err.exit_code
    return 0


def _shown(path: Any) -> str | None:
    """Output paths are always printed the same way: absolute."""
    import os

    return os.path.abspath(path) if path is not None else None


def _fetch_project(args: argparse.Namespace) -> int:
    """``pkgloader fetch`` with no REF inside a project is ``pkgloader sync``."""
    from pathlib import Path

    from .._errors import UsageError
    from . import _project_cmd

    cfg = load_config(args)
    root = cfg.project_root or Path.cwd()
    if cfg.project_root is None and not (root / "wit").is_dir() and not (root / "pkgloader.lock").is_file():
        raise UsageError("fetch needs at least one REF outside a project",
                         hint="name a package (pkgloader fetch wasi:http@0.2), or run it in a project with "
                              "pkgloader.toml, [tool.pkgloader] in pyproject.toml or a wit/ directory")
    if args.output or args.overwrite or args.strict or args.check:
        raise UsageError("-o, --overwrite, --check and --strict apply to named packages; a project syncs into "
                         "wit/deps/", hint="pkgloader sync --locked checks a project without changing its lock")
    args.lock = args.wit = None
    args.locked = args.frozen = False
    args.deps_format = {"wit": "wit", "wasm": "wasm"}.get(getattr(args, "format", None) or "")
    return _project_cmd.cmd_sync(args)


def _size(n: int | None) -> str:
    from ._fast import _size as size

    return "? bytes" if n is None else size(n)


def cmd_versions(args: argparse.Namespace) -> int:
    from .._ref import PackageSpec

    spec = PackageSpec.parse(args.ref)
    with _client(args) as client:
        infos = client.versions(spec.package)
    shown = [i for i in infos if args.all or (not i.version.is_prerelease and not i.yanked)]
    if spec.requirement is not None:
        shown = [i for i in shown if spec.requirement.matches(i.version) or (args.all and i.version.is_prerelease)]
    if args.json:
        emit_json({"package": str(spec.package), "versions": [i.to_json() for i in shown]})
        return 0
    for i in shown:
        marks = [m for m, on in (("pre-release", i.version.is_prerelease), ("yanked", i.yanked)) if on]
        sys.stdout.write(f"{i.version}" + (f"  ({', '.join(marks)})" if marks else "") + "\n")
    hidden = len(infos) - len(shown)
    if not shown:
        _say(args, f"no {'matching ' if spec.requirement else ''}stable versions of {spec.package}"
                   + (f" ({hidden} pre-release/yanked hidden; use --all)" if hidden else ""))
    elif hidden and not args.all:
        _say(args, f"({hidden} pre-release/yanked version(s) hidden; use --all)")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .._ref import PackageSpec

    spec = PackageSpec.parse(args.ref)
    with _client(args) as client:
        rel = client.resolve(spec)
    if args.json:
        emit_json(rel.to_json())
        return 0
    rows = [
        ("package", str(rel.package)),
        ("version", str(rel.version)),
        ("digest", str(rel.digest)),
        ("size", f"{rel.size} bytes" if rel.size is not None else "?"),
        ("registry", rel.registry),
        ("backend", rel.backend),
        ("location", rel.location),
        ("media type", rel.media_type or "-"),
    ]
    if rel.manifest_digest:
        rows.append(("manifest", f"{rel.manifest_digest} ({rel.manifest_media_type})"))
    if rel.config_media_type:
        rows.append(("config", rel.config_media_type))
    if rel.yanked:
        rows.append(("yanked", "yes"))
    for k, v in rows:
        sys.stdout.write(f"{k + ':':<12}{v}\n")
    for k, v in sorted(rel.annotations.items()):
        sys.stdout.write(f"{'annotation:':<12}{k}={v}\n")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from .._engine import parse_publish_target
    from .._errors import LocalIOError, UsageError

    annotations: dict[str, str] = {}
    for a in args.annotation:
        key, sep, value = a.partition("=")
        if not sep or not key:
            raise UsageError(f"--annotation {a!r} is not KEY=VALUE")
        annotations[key] = value
    path = Path(args.file)
    if path.is_dir():  # a WIT directory is built first, as wkg publish does (needs pkgloader[wit])
        import tempfile

        from .._wittext import build_wit_dir

        with tempfile.TemporaryDirectory(prefix="pkgloader-publish-") as tmp:
            args.file = str(build_wit_dir(path, Path(tmp) / "package.wasm"))
            return cmd_publish(args)
    if not path.exists():
        raise LocalIOError(f"cannot read {args.file!r}: no such file")
    if not path.is_file():
        raise LocalIOError(f"cannot read {args.file!r}: not a regular file")
    if args.package:
        target = parse_publish_target(args.package)
    else:
        from .._wittext import package_of

        declared = package_of(path)
        if declared is None:
            raise UsageError(f"{args.file!r} declares no package name and version (a component, or an unversioned "
                             "WIT package): name it", hint="pass --package NS:NAME@VERSION")
        target = declared
    progress = None if (args.quiet or args.json) else progress_factory()
    try:
        with _client(args, progress=progress) as client:
            result = client.publish(path, target, annotations=annotations, force=args.force,
                                    sign_key=getattr(args, "sign_key", None), dry_run=args.dry_run,
                                    skip_dupes=args.skip_dupes)
    finally:
        if progress is not None:
            progress.close()
    if args.json:
        emit_json(result.to_json())
    elif result.dry_run:
        emit_json({"reference": result.reference, "manifest": result.manifest, "config": result.config})
        _say(args, f"dry run: nothing pushed for {result.package}@{result.version}")
    elif result.skipped:
        sys.stdout.write(f"{result.reference}\n")
        _say(args, f"skipped {result.package}@{result.version}: already published (--skip-dupes)")
    else:
        sys.stdout.write(f"{result.reference}@{result.manifest_digest}\n")
        _say(args, f"published {result.package}@{result.version} ({_size(result.size)})")
        if result.signature:
            _say(args, f"signed {result.manifest_digest} (signature {result.signature})")
    return 0
