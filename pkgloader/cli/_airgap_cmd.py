"""``pkgloader export DIR [REF...]`` and ``pkgloader import DIR``: OCI image layouts for air gaps."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

from ._main import emit_json, load_config


def register(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    e = sub.add_parser("export", help="write packages (the project's lock, or REFs) as an OCI image layout",
                       description="Write every package of the project's lock file (or the REFs given) into DIR as an "
                                   "OCI image layout (oci-layout, index.json, blobs/sha256/), one index entry per package "
                                   "named <namespace>/<name>:<version>. The same lock gives the same bytes. Copy it with "
                                   "skopeo copy oci:DIR:<ns>/<name>:<version> docker://HOST/..., or pkgloader import DIR.")
    e.add_argument("dir", metavar="DIR", help="the layout directory (created; existing entries are kept)")
    e.add_argument("refs", nargs="*", metavar="REF", help="packages to export instead of the lock's")
    e.add_argument("--lock", metavar="PATH", help="read this lock file instead of the project's")
    e.add_argument("--json", action="store_true", help="machine-readable output")
    common(e)
    e.set_defaults(func=cmd_export)
    i = sub.add_parser("import", help="verify an OCI image layout and put its packages into the cache",
                       description="Verify every blob of the OCI image layout DIR (as pkgloader export writes it), then "
                                   "put each package into the cache, so that sync --frozen --offline works without a "
                                   "registry.")
    i.add_argument("dir", metavar="DIR", help="the layout directory")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    common(i)
    i.set_defaults(func=cmd_import)


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet and not args.json:
        sys.stderr.write(text + "\n")


def _lock_specs(client: Any, lock: str | None) -> list[Any]:
    from .._errors import UsageError
    from .._lockfile import LockFile
    from .._ref import PackageSpec
    from .._semver import VersionReq

    project = client.project(lock=lock)
    if not Path(project.lock_read).is_file():
        raise UsageError(f"nothing to export: {project.lock_read} does not exist",
                         hint="run pkgloader lock first, or name the packages: pkgloader export DIR REF...")
    lf = LockFile.load(project.lock_read)
    specs = {}
    for p in lf.packages:
        for v in p.versions:
            specs[f"{p.name}@={v.version}"] = PackageSpec(p.name, VersionReq.parse(f"={v.version}"))
    return list(specs.values())


def cmd_export(args: argparse.Namespace) -> int:
    from .. import _ocilayout
    from .._airgap import export_flow
    from .._client import Client
    from .._errors import LocalIOError
    from .._ref import PackageSpec
    from ..backends._mirrors import served_by

    root = Path(args.dir)
    with Client(load_config(args)) as client:
        specs = [PackageSpec.parse(r) for r in args.refs] if args.refs else _lock_specs(client, args.lock)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LocalIOError(f"cannot create {str(root)!r}: {exc.strerror or exc}", hint="choose another DIR") from None
        entries = []
        report = []
        for spec in specs:
            entry, sigs = client._run(client._registry(spec), export_flow(client.engine, spec, root))
            entries.append(entry)
            entries.extend(sigs)
            ref_name = entry["annotations"][_ocilayout.REF_NAME]
            package, _, version = str(spec).partition("@")
            version = version.lstrip("=")
            report.append({"package": package, "version": version, "ref_name": ref_name,
                           "manifest_digest": entry["digest"], "registry": entry["annotations"][_ocilayout.REGISTRY_ANNOTATION],
                           "served_by": served_by(client.engine, package, version),
                           "signatures": [s["annotations"][_ocilayout.REF_NAME] for s in sigs]})
            _say(args, f"exported {package}@{version} as {ref_name}"
                 + (f" (with {', '.join(s['annotations'][_ocilayout.REF_NAME].rpartition(':')[2] for s in sigs)})"
                    if sigs else ""))
        try:
            _ocilayout.write_layout(root, entries)
        except OSError as exc:
            raise LocalIOError(f"cannot write the layout in {str(root)!r}: {exc.strerror or exc}") from None
    if args.json:
        emit_json({"layout": str(root.resolve()), "exported": report})
    else:
        sys.stdout.write(f"{root.resolve()}\n")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from .._airgap import import_layout
    from .._client import Client

    root = Path(args.dir)
    with Client(load_config(args)) as client:
        rels = import_layout(client.engine, root)
        verified = client.engine.verified
    for r in rels:
        v = verified.get((str(r.package), str(r.version)))
        _say(args, f"imported {r.package}@{r.version} ({r.digest.short}) for registry {r.registry}"
             + (f", signed by {v.signer}" if v is not None else ""))
    if args.json:
        emit_json({"layout": str(root.resolve()),
                   "imported": [{"package": str(r.package), "version": str(r.version), "digest": str(r.digest),
                                 "size": r.size, "registry": r.registry,
                                 "signed_by": (verified[(str(r.package), str(r.version))].signer
                                               if (str(r.package), str(r.version)) in verified else None)}
                                for r in rels]})
    elif not rels:
        _say(args, f"no packages in {root}")
    return 0
