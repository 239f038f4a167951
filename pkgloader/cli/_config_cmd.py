"""``pkgloader config show | path | init | resolve``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

from ._main import emit_json, load_config


def register(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("config", help="show, explain and create configuration",
                       description="Show, explain and create pkgloader configuration.")
    csub = p.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    csub.required = True

    show = csub.add_parser("show", help="the effective config (secrets masked)",
                           description="Print the effective configuration after merging every layer. Secrets are masked.")
    show.add_argument("--origin", action="store_true", help="show which layer (and file:line) set each value")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    common(show)
    show.set_defaults(func=cmd_show)

    path = csub.add_parser("path", help="every config file consulted, found or not")
    path.add_argument("--json", action="store_true", help="machine-readable output")
    common(path)
    path.set_defaults(func=cmd_path)

    init = csub.add_parser(
        "init", help="write a commented global config file (never clobbers one)",
        description="Write a commented wasm-pkg config.toml (the file wkg reads too). Refuses to overwrite an existing file.")
    init.add_argument("--path", metavar="FILE", help="write here instead of the global config path")
    init.add_argument("--migrate", action="store_true",
                      help="convert the legacy warg-loader config (warg/config.toml) into the new file")
    init.add_argument("--json", action="store_true", help="machine-readable output")
    common(init)
    init.set_defaults(func=cmd_init)

    resolve = csub.add_parser(
        "resolve", help="which registry, backend and location a reference maps to, and why",
        description="Explain where a package comes from: registry (and the config layer that chose it), "
        "backend, and OCI repository / warg URL / local path. May fetch registry metadata.")
    resolve.add_argument("ref", metavar="REF", help="a package reference, e.g. wasi:http or wasi:http@0.2")
    resolve.add_argument("--offline", action="store_true", help="do not fetch registry metadata")
    resolve.add_argument("--json", action="store_true", help="machine-readable output")
    common(resolve)
    resolve.set_defaults(func=cmd_resolve)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value))


def _toml_key(key: str) -> str:
    import re

    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _line(key: str, entry: Any, origins: bool) -> str:
    if origins:
        from .._config import Origin

        text = f"{_toml_key(key)} = {_toml_value(entry['value'])}"
        o = entry["origin"]
        return f"{text:<48} # {Origin(o['layer'], o['source'], o['line'])}"
    return f"{_toml_key(key)} = {_toml_value(entry)}"


def cmd_show(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    data = cfg.to_dict(origins=args.origin)
    if args.json:
        emit_json(data)
        return 0
    out: list[str] = []
    if "default_registry" in data:
        out.append(_line("default_registry", data["default_registry"], args.origin))
    if "registry_override" in data:
        out.append("# --registry applies to the packages named on the command line")
        out.append("# " + _line("registry_override", data["registry_override"], args.origin))
    for table in ("namespace_registries", "package_registry_overrides"):
        if data[table]:
            out.append("")
            out.append(f"[{table}]")
            for key, entry in data[table].items():
                out.append(_line(key, entry, args.origin))
    if data["fallback_namespace_registries"]:
        # built in, not a config key: shown as comments, so that this output loads back as a config
        out.append("")
        out.append("# built-in fallbacks, used after default_registry (override them in [namespace_registries]):")
        for key, entry in data["fallback_namespace_registries"].items():
            out.append("#   " + _line(key, entry, args.origin))
    for name, entry in data["registry"].items():
        if "default" in entry:
            out.append("")
            out.append(f"[registry.{json.dumps(name)}]")
            out.append(_line("default", entry["default"], args.origin))
        for backend, table in entry.items():
            if backend == "default":
                continue
            out.append("")
            out.append(f"[registry.{json.dumps(name)}.{backend}]")
            for key, value in table.items():
                out.append(_line(key, value, args.origin))
    out.append("")
    out.append("[pkgloader]")
    for key, entry in data["pkgloader"].items():
        out.append(_line(key, entry, args.origin))
    if "dependencies" in data:
        out.append("")
        out.append("[dependencies]")
        for key, entry in data["dependencies"].items():
            out.append(_line(key, entry, args.origin))
    for pattern, fields in data.get("provenance", {}).items():  # signature policies (README, Provenance)
        out.append("")
        out.append(f"[provenance.{json.dumps(pattern)}]")
        for key, entry in fields.items():
            out.append(_line(key, entry, args.origin))
    sys.stdout.write("\n".join(out).lstrip("\n") + "\n")
    return 0


def cmd_path(args: argparse.Namespace) -> int:
    from .._config import global_config_path, legacy_config_path

    cfg = load_config(args)
    rows: list[dict[str, Any]] = []
    seen = {(layer, str(path)) for layer, path, _ in cfg.files}
    for layer, path, found in cfg.files:
        rows.append({"layer": layer, "path": str(path), "found": found})
    gp, lp = global_config_path(), legacy_config_path()
    if ("global", str(lp)) not in seen:
        rows.insert(1 if rows and rows[0]["path"] == str(gp) else 0,
                    {"layer": "global (legacy, read only when the wasm-pkg file is missing)", "path": str(lp),
                     "found": lp.is_file()})
    if args.json:
        emit_json({"files": rows, "cache_dir": str(cfg.cache_dir)})
        return 0
    width = max(len(r["layer"]) for r in rows)
    for r in rows:
        state = "found" if r["found"] else "not found"
        sys.stdout.write(f"{r['layer']:<{width}}  {r['path']}  ({state})\n")
    env_note = "env: PKGLOADER_CONFIG / WKG_CONFIG_FILE (not set)"
    if not any(r["layer"] == "env" for r in rows):
        sys.stdout.write(env_note + "\n")
    sys.stdout.write(f"cache dir: {cfg.cache_dir}\n")
    return 0


INIT_TEMPLATE = """\
# wasm-pkg configuration: read by pkgloader and by wkg (one config for all tools).
# Reference: pkgloader README, "Configuration". Layers, lowest first: built-in defaults <
# this file < pkgloader.toml / [tool.pkgloader] in pyproject.toml < environment < flags.

# The registry for namespaces not mapped below (a host[:port], no scheme).
# default_registry = "example.com"

[namespace_registries]
# Built-in fallbacks (used when neither this table nor default_registry decides):
#   wasi = "wasi.dev", ba = "bytecodealliance.org"
# my-org = "registry.example.com"
# Inline metadata skips the /.well-known/wasm-pkg/registry.json lookup:
# my-org = { registry = "my-org", metadata = { preferredProtocol = "oci", oci = { registry = "ghcr.io", namespacePrefix = "my-org/" } } }

[package_registry_overrides]
# "my-org:special" = "other.example.com"

# [registry."registry.example.com".oci]
# auth = { username = "me", password = "secret" }   # or auth = "<base64 of user:pass>"
# protocol = "https"                                 # "http" for a plain-HTTP registry
# accept_invalid_certificates = false
# extra_root_certificates = [{ encoding = "pem", data = "-----BEGIN CERTIFICATE-----..." }]

# [registry."local-dir".local]
# root = "/path/to/packages"    # <root>/<namespace>/<name>/<version>.wasm

# [registry."warg.example.com".warg]
# url = "https://warg.example.com"
# auth_token = "..."
"""


def cmd_init(args: argparse.Namespace) -> int:
    import tomli_w

    from .._config import global_config_path, legacy_config_path, legacy_to_toml
    from .._errors import ConfigError, OutputExists
    from .._fsutil import atomic_write_bytes

    target = Path(args.path).expanduser() if args.path else global_config_path()
    if target.exists():
        raise OutputExists(
            f"config file {str(target)!r} already exists; not overwriting it",
            hint="edit it, or choose another file with --path",
        )
    if args.migrate:
        legacy = legacy_config_path()
        if not legacy.is_file():
            raise ConfigError(f"no legacy warg-loader config at {str(legacy)!r} to migrate")
        data = legacy_to_toml(legacy)
        text = f"# migrated by 'pkgloader config init --migrate' from {legacy}\n" + tomli_w.dumps(data)
    else:
        text = INIT_TEMPLATE
    try:
        atomic_write_bytes(target, text.encode())
    except OSError as exc:
        from .._errors import LocalIOError

        raise LocalIOError(f"cannot write {str(target)!r}: {exc.strerror or exc}") from None
    if args.json:
        emit_json({"written": str(target), "migrated": bool(args.migrate)})
        return 0
    sys.stdout.write(f"{target}\n")  # the result on stdout, as every command writes its paths
    if not args.quiet:
        sys.stderr.write(f"wrote {target}\n")
    return 0


def cmd_resolve(args: argparse.Namespace) -> int:
    from .._ref import PackageSpec
    from .._source import resolve_source

    spec = PackageSpec.parse(args.ref)
    cfg = load_config(args)
    source = resolve_source(cfg, spec.package, offline=args.offline)
    plan = None
    if source.backend == "oci":  # registry mirrors (backends/_mirrors)
        from ..backends._mirrors import mirror_plan

        plan = mirror_plan(cfg, source)
    if args.json:
        data = source.to_json()
        data["requirement"] = str(spec.requirement) if spec.requirement is not None else None
        if plan is not None:
            data["mirrors"] = [{"location": m.label, "scheme": m.scheme, "resolve": m.resolve} for m in plan.mirrors]
            data["mirror_fallback"] = plan.fallback
        emit_json(data)
        return 0
    rows = [
        ("package", str(spec.package) + (f"  (requirement {spec.requirement})" if spec.requirement is not None else "")),
        ("registry", f"{source.registry}  (by {source.choice.rule}; {source.choice.origin})"),
        ("backend", f"{source.backend}  ({source.backend_rule})"),
        ("metadata", source.metadata.how),
    ]
    if source.backend == "oci":
        rows.append(("oci", f"{source.oci_scheme}://{source.oci_registry}  repository {source.oci_repository}"))
        if plan is not None:
            shown = ", ".join(m.label + (" (resolve)" if m.resolve else "") for m in plan.mirrors)
            rows.append(("mirrors", f"{shown}  (from registry.\"{plan.configured_in}\"; "
                                    f"fallback to the origin {'on' if plan.fallback else 'off'})"))
    elif source.backend in ("local", "oci-layout"):
        rows.append((source.backend, source.location))
    else:
        rows.append(("warg", str(source.warg_url)))
    for key, value in rows:
        sys.stdout.write(f"{key + ':':<10} {value}\n")
    return 0
