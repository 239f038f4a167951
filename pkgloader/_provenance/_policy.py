"""Provenance policy: who must have signed a package, and what happens when nobody did.

The config's ``[provenance."PATTERN"]`` tables (``PATTERN`` is ``*``, ``NS:*`` or ``NS:NAME``;
the most specific one that applies wins) hold ``mode`` (``require``, ``warn``, ``off``),
``signers`` (public keys or keyless identities), and optionally ``registry`` (the policy
applies only where the package resolves to that registry) and ``trusted_root`` (a Sigstore
trusted root JSON for keyless signers). Each field is layered like every config key.

The built-in ``wasi:*`` policy (mode ``warn``, registry ``wasi.dev``) accepts GitHub
artifact attestations made by WebAssembly/WASI's ``publish-proposal.yml`` workflow and the
keyless cosign signatures made by the archived per-proposal ``WebAssembly/wasi-*``
repositories. Opt out with ``[provenance."wasi:*"] mode = "off"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._builtin import BUILTIN_POLICIES, GITHUB_ISSUER  # the data, kept apart (see _builtin)

if TYPE_CHECKING:  # pragma: no cover
    from .._config import Config
    from .._ref import PackageRef

__all__ = ["MODES", "Signer", "Policy", "BUILTIN_POLICIES", "policy_for", "GITHUB_ISSUER"]

MODES = ("require", "warn", "off")
SIGNER_KEYS = ("key", "issuer", "san", "san_regex", "source_repository")
POLICY_KEYS = ("mode", "signers", "registry", "trusted_root")


@dataclass(frozen=True)
class Signer:
    """One accepted signer: a public key file, or a keyless identity (OIDC issuer plus the
    certificate's SAN, exactly or by regular expression, and/or its source repository)."""

    key: str | None = None
    issuer: str | None = None
    san: str | None = None
    san_regex: str | None = None
    source_repository: str | None = None

    @property
    def keyless(self) -> bool:
        return self.key is None

    def __str__(self) -> str:
        if self.key is not None:
            return f"key {self.key}"
        parts = [f"issuer {self.issuer}"]
        if self.san is not None:
            parts.append(f"identity {self.san}")
        if self.san_regex is not None:
            parts.append(f"identity matching {self.san_regex}")
        if self.source_repository is not None:
            parts.append(f"source repository {self.source_repository}")
        return "keyless " + ", ".join(parts)

    def to_json(self) -> dict[str, str]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    def matches(self, identity: dict[str, str | None]) -> bool:
        """Does a certificate identity (``issuer``, ``san``, ``source_repository``) match?"""
        if self.keyless is False or identity.get("issuer") != self.issuer:
            return False
        san = identity.get("san") or ""
        if self.san is not None and san != self.san:
            return False
        if self.san_regex is not None and not re.fullmatch(self.san_regex, san):
            return False
        if self.source_repository is not None and identity.get("source_repository") != self.source_repository:
            return False
        return True

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Signer:
        return cls(**{k: data[k] for k in SIGNER_KEYS if isinstance(data.get(k), str)})


@dataclass(frozen=True)
class Policy:
    """The policy that applies to one package."""

    pattern: str
    mode: str
    signers: tuple[Signer, ...] = ()
    registry: str | None = None
    trusted_root: str | None = None
    origins: dict[str, str] = field(default_factory=dict)  # field -> where it was set

    def describe_signers(self) -> str:
        return "; ".join(str(s) for s in self.signers) or "no signer configured"

    def fingerprint(self) -> str:
        """What a cached verification result depends on: the signers (and the bytes of every
        key file and of the trusted root), not the mode."""
        import hashlib
        import json

        parts: list[Any] = [[s.to_json() for s in self.signers], self.trusted_root]
        for path in [s.key for s in self.signers if s.key] + ([self.trusted_root] if self.trusted_root else []):
            try:
                with open(path, "rb") as f:
                    parts.append(hashlib.sha256(f.read(1 << 20)).hexdigest())
            except OSError:
                parts.append(None)
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _candidates(ref: PackageRef) -> tuple[str, str, str]:
    from . import policy_patterns

    return policy_patterns(ref)


def policy_for(config: Config, ref: PackageRef, registry: str) -> Policy | None:
    """The most specific ``[provenance]`` policy that applies to ``ref`` at ``registry``
    (a policy naming another registry does not apply), or None."""
    table = getattr(config, "provenance", None) or {}
    for pattern in _candidates(ref):
        fields = table.get(pattern)
        if not fields:
            continue
        reg = fields.get("registry")
        if reg is not None and reg.value not in ("*", registry):
            continue
        mode = fields["mode"].value if "mode" in fields else "require"
        signers = tuple(Signer.from_json(s) for s in fields["signers"].value) if "signers" in fields else ()
        root = fields.get("trusted_root")
        return Policy(pattern, mode, signers, reg.value if reg is not None else None,
                      root.value if root is not None else None,
                      {k: str(s.origin) for k, s in fields.items()})
    return None


# ---------------------------------------------------------------------------------------
# the [provenance] config table (called by _config's loader; each field keeps its origin)


_PATTERN = r"\*|[a-z][a-z0-9]*(?:-[a-z][a-z0-9]*)*:(?:\*|[a-z][a-z0-9]*(?:-[a-z][a-z0-9]*)*)"


def load_config_table(loader: Any, table: Any) -> None:
    """Validate ``[provenance]`` and merge it field by field into ``loader.cfg.provenance``."""
    from pathlib import Path

    from .._config import Setting

    loader.expect(["provenance"], table, dict, 'a table of policies, e.g. [provenance."my-org:*"]')
    target = loader.cfg.provenance
    for pattern, ptable in table.items():
        kp = ["provenance", pattern]
        if not re.fullmatch(_PATTERN, pattern):
            raise loader.fail(kp, f"invalid policy pattern {pattern!r}",
                              'write "*", "NAMESPACE:*" or "NAMESPACE:NAME", e.g. [provenance."wasi:*"]')
        loader.expect(kp, ptable, dict, "a table with mode and signers")
        fields = target.setdefault(pattern, {})
        for key, value in ptable.items():
            fkp = kp + [key]
            if key not in POLICY_KEYS:
                raise loader.unknown(fkp, POLICY_KEYS, "provenance key")
            if key == "mode":
                loader.expect(fkp, value, str, '"require", "warn" or "off"')
                if value not in MODES:
                    raise loader.fail(fkp, f"mode must be \"require\", \"warn\" or \"off\", got {value!r}")
            elif key == "registry":
                loader.expect(fkp, value, str, 'a registry name, or "*" for any')
                if value != "*":
                    value = loader.registry_name(fkp, value)
            elif key == "trusted_root":
                loader.expect(fkp, value, str, "the path of a Sigstore trusted root JSON file")
                p = Path(value).expanduser()
                value = str(p if p.is_absolute() else loader.base_dir / p)
            else:  # signers
                loader.expect(fkp, value, list, "an array of signer tables ({ key = \"FILE\" } or { issuer = ..., san = ... })")
                signers = []
                for i, s in enumerate(value):
                    skp = fkp + [str(i)]
                    loader.expect(skp, s, dict, 'a table { key = "FILE" } or { issuer = "URL", san = "..." }')
                    for sk, sv in s.items():
                        if sk not in SIGNER_KEYS:
                            raise loader.unknown(skp + [sk], SIGNER_KEYS, "signer key")
                        loader.expect(skp + [sk], sv, str, "a string")
                    if "key" in s:
                        if len(s) > 1:
                            raise loader.fail(fkp, f"signer #{i + 1} is both a key and a keyless identity",
                                              "write two signers")
                        p = Path(s["key"]).expanduser()
                        signers.append({"key": str(p if p.is_absolute() else loader.base_dir / p)})
                        continue
                    if "issuer" not in s:
                        raise loader.fail(fkp, f"signer #{i + 1} needs issuer (the OIDC issuer URL) or key",
                                          'e.g. issuer = "https://token.actions.githubusercontent.com"')
                    if not any(k in s for k in ("san", "san_regex", "source_repository")):
                        raise loader.fail(fkp, f"keyless signer #{i + 1} needs san, san_regex or source_repository",
                                          "an issuer alone would accept anyone it issues certificates to")
                    if "san_regex" in s:
                        try:
                            re.compile(s["san_regex"])
                        except re.error as exc:
                            raise loader.fail(skp + ["san_regex"], f"invalid regular expression: {exc}") from None
                    signers.append(dict(s))
                value = signers
            fields[key] = Setting(value, loader.origin(fkp))


def fields_to_dict(fields: dict[str, Any], show: Any) -> dict[str, Any]:
    return {k: show(s) for k, s in sorted(fields.items())}
