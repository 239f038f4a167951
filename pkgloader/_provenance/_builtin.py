"""The built-in provenance policies, as plain config data (``Config.builtin()`` loads them on
every command, so this module imports nothing).

``wasi:*`` (mode ``warn``, only where ``wasi:`` resolves to the built-in ``wasi.dev``
registry) accepts two keyless signers, both with the GitHub Actions OIDC issuer:

- GitHub artifact attestations made by WebAssembly/WASI's ``publish-proposal.yml``
  (``actions/attest-build-provenance``): source repository ``https://github.com/WebAssembly/WASI``
  and the workflow's identity, on a tag or a branch;
- the keyless cosign signatures of the archived per-proposal repositories
  (``WebAssembly/wasi-*``, any workflow file, on a tag or a branch).
"""

from __future__ import annotations

from typing import Any

__all__ = ["BUILTIN_POLICIES", "GITHUB_ISSUER", "builtin_fields"]

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"

#: pattern -> field -> value, as a [provenance."PATTERN"] table would give them
BUILTIN_POLICIES: dict[str, dict[str, Any]] = {
    "wasi:*": {
        "mode": "warn",
        "registry": "wasi.dev",
        "signers": [
            {"issuer": GITHUB_ISSUER,
             "san_regex": r"https://github\.com/WebAssembly/WASI/\.github/workflows/publish-proposal\.yml@refs/(tags|heads)/.+",
             "source_repository": "https://github.com/WebAssembly/WASI"},
            {"issuer": GITHUB_ISSUER,
             "san_regex": r"https://github\.com/WebAssembly/wasi-[a-z0-9-]+/\.github/workflows/[A-Za-z0-9_.-]+\.ya?ml@refs/(tags|heads)/.+"},
        ],
    },
}


def builtin_fields() -> dict[str, dict[str, Any]]:
    """The built-in policies as config fields: pattern -> field -> Setting (built-in origin)."""
    from .._config import DEFAULT_ORIGIN, Setting

    return {pattern: {k: Setting(v, DEFAULT_ORIGIN) for k, v in fields.items()}
            for pattern, fields in BUILTIN_POLICIES.items()}
