"""Registry metadata (``/.well-known/wasm-pkg/registry.json``): the value type.

Discovery over HTTP lives in ``_discovery.py`` so that this module stays I/O free.
"""

from __future__ import annotations

from typing import Any, Mapping

from ._frozen import FACTORY, Frozen, init_field

__all__ = ["RegistryMetadata", "METADATA_PATH", "LEGACY_METADATA_PATH"]

METADATA_PATH = "/.well-known/wasm-pkg/registry.json"
LEGACY_METADATA_PATH = "/.well-known/warg/registry.json"


class RegistryMetadata(Frozen):
    """What a registry says about itself.

    Understands the current shape (``preferredProtocol``, ``oci.registry``,
    ``oci.namespacePrefix``, ``warg.url``) and the legacy one (``ociRegistry``,
    ``ociNamespacePrefix``, ``wargUrl``).
    """

    __fields__ = ("preferred_protocol", "protocols")
    preferred_protocol: str | None = None
    protocols: Mapping[str, Mapping[str, Any]]

    def __init__(self, preferred_protocol: str | None = None,
                 protocols: Mapping[str, Mapping[str, Any]] = FACTORY) -> None:
        init_field(self, "preferred_protocol", preferred_protocol)
        init_field(self, "protocols", dict() if protocols is FACTORY else protocols)

    @classmethod
    def from_json(cls, data: Any) -> RegistryMetadata:
        if not isinstance(data, dict):
            raise ValueError("registry metadata must be a JSON object")
        preferred = data.get("preferredProtocol")
        if preferred is not None and not isinstance(preferred, str):
            raise ValueError("'preferredProtocol' must be a string")
        protocols: dict[str, dict[str, Any]] = {}
        legacy: dict[str, dict[str, Any]] = {}
        for key, value in data.items():
            if key == "preferredProtocol":
                continue
            if key in ("ociRegistry", "ociNamespacePrefix"):
                if not isinstance(value, str):
                    raise ValueError(f"{key!r} must be a string")
                legacy.setdefault("oci", {})["registry" if key == "ociRegistry" else "namespacePrefix"] = value
            elif key == "wargUrl":
                if not isinstance(value, str):
                    raise ValueError("'wargUrl' must be a string")
                legacy.setdefault("warg", {})["url"] = value
            elif isinstance(value, dict):
                protocols[key] = dict(value)
            else:
                raise ValueError(f"{key!r} must be an object with that protocol's settings")
        for proto, values in legacy.items():
            merged = dict(values)
            merged.update(protocols.get(proto, {}))
            protocols[proto] = merged
        for proto, keys in (("oci", ("registry", "namespacePrefix")), ("warg", ("url",))):
            for k in keys:
                v = protocols.get(proto, {}).get(k)
                if v is not None and not isinstance(v, str):
                    raise ValueError(f"'{proto}.{k}' must be a string")
        return cls(preferred, protocols)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.preferred_protocol:
            out["preferredProtocol"] = self.preferred_protocol
        for proto, values in sorted(self.protocols.items()):
            out[proto] = dict(values)
        return out

    @property
    def protocol(self) -> str | None:
        """``preferredProtocol``, else the only protocol described, else None."""
        if self.preferred_protocol:
            return self.preferred_protocol
        if len(self.protocols) == 1:
            return next(iter(self.protocols))
        return None

    @property
    def oci_registry(self) -> str | None:
        return self.protocols.get("oci", {}).get("registry")

    @property
    def oci_namespace_prefix(self) -> str:
        return self.protocols.get("oci", {}).get("namespacePrefix") or ""

    @property
    def warg_url(self) -> str | None:
        return self.protocols.get("warg", {}).get("url")
