"""``pkgloader verify REF``: who signed what (README, Provenance); and the ``--verify`` /
``--no-verify`` flags that fetch, sync, lock and update share."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from ._main import emit_json, load_config


def add_verify_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--verify", dest="verify", action="store_const", const=True, default=None,
                   help="require a valid signature by an accepted signer (the policy's mode becomes require)")
    g.add_argument("--no-verify", dest="verify", action="store_const", const=False,
                   help="do not check signatures (the provenance policy is ignored for this run)")


def register(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    v = sub.add_parser(
        "verify", help="check and show who signed a package",
        description="Resolve REF, find its signatures and attestations (referrers API, the sha256-<hex> "
        "fallback index, the legacy .sig tag) and check them against the config's provenance policy, or "
        "against the signer given here. Prints format, signer, time and log entry. Downloads no content.")
    v.add_argument("ref", metavar="REF", help="package reference, e.g. my-org:tool@1.2")
    g = v.add_mutually_exclusive_group()
    g.add_argument("--key", metavar="FILE", help="accept this public key (PEM) instead of the policy's signers")
    g.add_argument("--identity", metavar="ID", help="accept this keyless certificate identity (SAN; with --issuer)")
    v.add_argument("--issuer", metavar="URL", help="the OIDC issuer of --identity, e.g. https://token.actions.githubusercontent.com")
    v.add_argument("--json", action="store_true", help="machine-readable output")
    common(v)
    v.set_defaults(func=cmd_verify)


def cmd_verify(args: argparse.Namespace) -> int:
    from .._client import Client
    from .._errors import UsageError
    from .._provenance import Policy, Signer, policy_for, verify_release_flow

    if (args.identity is None) != (args.issuer is None):
        raise UsageError("--identity and --issuer go together", hint="pass both, e.g. --identity https://github.com/ORG/REPO/"
                         ".github/workflows/release.yml@refs/tags/v1 --issuer https://token.actions.githubusercontent.com")
    with Client(load_config(args)) as client:
        engine = client.engine
        rel = client.resolve(args.ref)
        if rel.backend != "oci" or not rel.manifest_digest:
            raise UsageError(f"{rel.package}@{rel.version} comes from a {rel.backend} registry; verify checks OCI signatures",
                             hint="warg registries verify their own signed logs on every fetch")
        if args.key is not None:
            from pathlib import Path

            policy = Policy("--key", "require", (Signer(key=str(Path(args.key).expanduser().absolute())),),
                            origins={"signers": "flag --key"})
        elif args.identity is not None:
            configured = policy_for(engine.config, rel.package, rel.registry)  # its trusted_root, if any
            policy = Policy("--identity", "require", (Signer(issuer=args.issuer, san=args.identity),),
                            trusted_root=configured.trusted_root if configured else None,
                            origins={"signers": "flag --identity"})
        else:
            found = policy_for(engine.config, rel.package, rel.registry)
            policy = found if found is not None else Policy("(none)", "require", origins={"signers": "no [provenance] policy applies"})

        def flow() -> Any:
            source = yield from engine._source(rel.package)
            return (yield from verify_release_flow(engine.oci, source, rel, policy))

        verified = client._run(rel.registry, flow())
    if args.json:
        emit_json({"package": str(rel.package), "version": str(rel.version), "registry": rel.registry,
                   "manifest_digest": rel.manifest_digest, "policy": policy.pattern, **verified.to_json()})
        return 0
    if not args.quiet:
        log = verified.log
        when = ""
        if isinstance(log.get("integratedTime"), (int, str)) and str(log.get("integratedTime")).isdigit():
            import time

            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(int(log["integratedTime"])))
        lines = [f"{rel.package}@{rel.version} ({rel.manifest_digest}) from {rel.registry}: verified",
                 f"  format:    {verified.format}" + (f" ({verified.predicate_type})" if verified.predicate_type else ""),
                 f"  signer:    {verified.signer}",
                 f"  found:     {verified.found}",
                 f"  where:     {verified.where}",
                 f"  time:      {when or 'not recorded'}",
                 f"  log entry: {log.get('logIndex', 'none')}"]
        sys.stdout.write("\n".join(lines) + "\n")
    return 0
