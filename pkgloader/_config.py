"""Layered configuration.

Layers, lowest to highest (a later layer wins per key; registry backend tables merge per
key inside the table, as the wasm-pkg ``config.toml`` merge does):

1. ``default``  built-in: namespace ``wasi`` -> ``wasi.dev``, ``ba`` -> ``bytecodealliance.org``
   (fallbacks, consulted after ``default_registry``, exactly as wkg does);
2. ``global``   the wasm-pkg ``config.toml`` that ``wkg`` reads (or, when only that is
   missing, a legacy warg-loader ``warg/config.toml``);
3. ``project``  the nearest ``pkgloader.toml``, or ``[tool.pkgloader]`` in the nearest
   ``pyproject.toml``, walking up from the working directory;
4. ``env``      ``PKGLOADER_CONFIG`` (or ``WKG_CONFIG_FILE``) as an extra file,
   ``PKGLOADER_DEFAULT_REGISTRY``, ``PKGLOADER_CACHE_DIR`` (or ``WKG_CACHE_DIR``);
5. ``flag``     ``--config FILE`` (extra files), ``--registry NAME``, ``--cache-dir DIR``.

Every value is a :class:`Setting` that remembers its :class:`Origin`.
This module does no network I/O.
"""

from __future__ import annotations

import base64
import functools
import os
import re
import stat
import sys
import tomllib
from pathlib import Path
from typing import Any, Generic, Iterable, Mapping, TypeVar

from ._frozen import FACTORY, Frozen, Record, init_field, replace
from ._lazyre import LazyPattern
from ._errors import ConfigError, RegistryNotConfigured
from ._metadata import RegistryMetadata
from ._ref import PackageRef

__all__ = [
    "Origin",
    "Setting",
    "RegistryMapping",
    "RegistryConfig",
    "OciConfig",
    "LocalConfig",
    "WargConfig",
    "BasicAuth",
    "Settings",
    "Config",
    "RegistryChoice",
    "global_config_path",
    "legacy_config_path",
    "default_cache_dir",
    "validate_registry_name",
]

T = TypeVar("T")

LAYERS = ("default", "global", "project", "env", "flag")
BUILTIN_NAMESPACES = {"wasi": "wasi.dev", "ba": "bytecodealliance.org"}
KNOWN_BACKENDS = ("oci", "local", "warg", "oci-layout")
SECRET_MASK = "********"

# ---------------------------------------------------------------------------------------
# where the files are


def _xdg_config_home() -> Path:
    env = os.environ.get("XDG_CONFIG_HOME")
    if env and os.path.isabs(env):
        return Path(env)
    return Path.home() / ".config"


def _config_base() -> Path:
    """The base config dir wkg uses (etcetera's base strategy): XDG on Unix and macOS,
    the roaming AppData folder on Windows."""
    if sys.platform == "win32":  # pragma: no cover - not exercised on Linux CI
        import platformdirs

        return Path(platformdirs.user_config_dir(appauthor=False, roaming=True))
    return _xdg_config_home()


def global_config_path() -> Path:
    """The wasm-pkg ``config.toml`` shared with ``wkg``."""
    return _config_base() / "wasm-pkg" / "config.toml"


def legacy_config_path() -> Path:
    """The warg-loader config file (read only when the wasm-pkg file is missing)."""
    return _config_base() / "warg" / "config.toml"


def default_cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("pkgloader", appauthor=False))


# ---------------------------------------------------------------------------------------
# value types


class Origin(Frozen):
    """Which layer set a value, and from where (file and line, env var or flag)."""

    __fields__ = ("layer", "source", "line")
    layer: str
    source: str | None = None
    line: int | None = None

    def __init__(self, layer: str, source: str | None = None, line: int | None = None) -> None:
        init_field(self, "layer", layer)
        init_field(self, "source", source)
        init_field(self, "line", line)

    def __str__(self) -> str:
        if self.layer == "default":
            return "built-in default"
        where = self.source or ""
        if self.line is not None:
            where = f"{where}:{self.line}"
        return f"{self.layer} {where}".strip()

    def to_json(self) -> dict[str, Any]:
        return {"layer": self.layer, "source": self.source, "line": self.line}


DEFAULT_ORIGIN = Origin("default")


class Setting(Frozen, Generic[T]):
    __fields__ = ("value", "origin")
    value: T
    origin: Origin

    def __init__(self, value: T, origin: Origin) -> None:
        init_field(self, "value", value)
        init_field(self, "origin", origin)


class RegistryMapping(Frozen):
    """What ``namespace_registries`` / ``package_registry_overrides`` map to: a registry
    name, optionally with inline metadata (which replaces the well-known fetch)."""

    __fields__ = ("registry", "metadata")
    registry: str
    metadata: RegistryMetadata | None = None

    def __init__(self, registry: str, metadata: RegistryMetadata | None = None) -> None:
        init_field(self, "registry", registry)
        init_field(self, "metadata", metadata)


class BasicAuth(Frozen):
    __fields__ = ("username", "password")
    username: str
    password: str

    def __init__(self, username: str, password: str) -> None:
        init_field(self, "username", username)
        init_field(self, "password", password)

    def __repr__(self) -> str:  # never show the password
        return f"BasicAuth(username={self.username!r}, password='{SECRET_MASK}')"


class OciConfig(Frozen):
    __fields__ = ("auth", "protocol", "accept_invalid_certificates", "extra_root_certificates", "client_certificate",
                  "client_key")
    auth: BasicAuth | None = None
    protocol: str | None = None  # "http" | "https" | None (https; http on loopback)
    accept_invalid_certificates: bool = False
    extra_root_certificates: tuple[bytes, ...] = ()  # PEM or DER bytes
    client_certificate: str | None = None  # PEM file (may hold the key too), for mutual TLS
    client_key: str | None = None  # PEM file of the client certificate's key

    def __init__(self, auth: BasicAuth | None = None, protocol: str | None = None,
                 accept_invalid_certificates: bool = False, extra_root_certificates: tuple[bytes, ...] = (),
                 client_certificate: str | None = None, client_key: str | None = None) -> None:
        init_field(self, "auth", auth)
        init_field(self, "protocol", protocol)
        init_field(self, "accept_invalid_certificates", accept_invalid_certificates)
        init_field(self, "extra_root_certificates", extra_root_certificates)
        init_field(self, "client_certificate", client_certificate)
        init_field(self, "client_key", client_key)


class LocalConfig(Frozen):
    __fields__ = ("root",)
    root: Path

    def __init__(self, root: Path) -> None:
        init_field(self, "root", root)


class WargConfig(Frozen):
    __fields__ = ("url", "auth_token")
    url: str | None = None
    auth_token: str | None = None

    def __init__(self, url: str | None = None, auth_token: str | None = None) -> None:
        init_field(self, "url", url)
        init_field(self, "auth_token", auth_token)

    def __repr__(self) -> str:
        token = SECRET_MASK if self.auth_token else None
        return f"WargConfig(url={self.url!r}, auth_token={token!r})"


class RegistryConfig(Record):
    """``[registry."NAME"]``: an optional ``default`` backend and backend tables."""

    __fields__ = ("name", "default", "backends", "problems", "other_backends")
    name: str
    default: Setting[str] | None = None
    backends: dict[str, dict[str, Setting[Any]]]
    #: why the entry is unusable (each also a warning when the config was loaded), as wkg
    #: fails only the registry concerned; empty when it is fine
    problems: list[str]
    #: backend tables of other tools (wkg allows any name), ignored
    other_backends: list[str]

    def __init__(self, name: str, default: Setting[str] | None = None,
                 backends: dict[str, dict[str, Setting[Any]]] = FACTORY, problems: list[str] = FACTORY,
                 other_backends: list[str] = FACTORY) -> None:
        self.name = name
        self.default = default
        self.backends = dict() if backends is FACTORY else backends
        self.problems = list() if problems is FACTORY else problems
        self.other_backends = list() if other_backends is FACTORY else other_backends

    def check_usable(self) -> None:
        """Raise ``ConfigError`` (``registry-unusable``) repeating why this registry's
        config entry cannot be used."""
        problems = list(self.problems)
        if not problems and not self.backends and self.default is None and self.other_backends:
            problems.append(f"its only backend table ({', '.join(self.other_backends)}) is not one pkgloader speaks")
        if problems:
            raise ConfigError(
                f"registry {self.name!r} cannot be used: its config entry is invalid",
                details=problems,
                hint=f'fix [registry."{self.name}"] (pkgloader speaks the oci, local and warg backends), '
                     "or map the package to another registry",
                code="registry-unusable",
            )

    def default_backend(self) -> str | None:
        """The explicit ``default``/``type``, else the only configured backend."""
        if self.default is not None:
            return self.default.value
        if len(self.backends) == 1:
            return next(iter(self.backends))
        return None

    def _table(self, backend: str) -> dict[str, Any]:
        return {k: s.value for k, s in self.backends.get(backend, {}).items()}

    def oci(self) -> OciConfig:
        table = self._table("oci")
        certs: list[bytes] = []
        for cert in table.get("extra_root_certificates", ()):
            data = cert["data"]
            if cert.get("encoding", "pem") == "der":
                certs.append(base64.b64decode(data))
            else:
                certs.append(data.encode())
        auth = table.get("auth")
        return OciConfig(
            auth=_decode_auth(auth) if auth is not None else None,
            protocol=table.get("protocol"),
            accept_invalid_certificates=bool(table.get("accept_invalid_certificates", False)),
            extra_root_certificates=tuple(certs),
            client_certificate=table.get("client_certificate"),
            client_key=table.get("client_key"),
        )

    def local(self) -> LocalConfig | None:
        table = self._table("local")
        root = table.get("root")
        return LocalConfig(Path(root)) if root is not None else None

    def warg(self) -> WargConfig:
        table = self._table("warg")
        return WargConfig(url=table.get("url"), auth_token=table.get("auth_token"))


def _decode_auth(auth: Any) -> BasicAuth:
    if isinstance(auth, dict):
        return BasicAuth(auth["username"], auth["password"])
    raw = base64.b64decode(auth + "=" * (-len(auth) % 4))
    user, _, password = raw.decode().partition(":")
    return BasicAuth(user, password)


class Settings(Frozen):
    """pkgloader's own settings (the ``[pkgloader]`` table, env and flags)."""

    __fields__ = (
        "cache_dir", "strict", "timeout", "connect_timeout", "metadata_timeout", "metadata_ttl", "max_concurrency",
        "retries", "fsync", "stall_timeout", "low_speed_limit", "low_speed_time", "trust_store", "proxy",
        "https_proxy", "http_proxy", "no_proxy", "deps_format"
    )
    cache_dir: Setting[Path] | None = None
    strict: Setting[bool] = Setting(False, DEFAULT_ORIGIN)
    timeout: Setting[float] = Setting(30.0, DEFAULT_ORIGIN)
    connect_timeout: Setting[float] = Setting(10.0, DEFAULT_ORIGIN)
    metadata_timeout: Setting[float] = Setting(5.0, DEFAULT_ORIGIN)
    metadata_ttl: Setting[int] = Setting(86400, DEFAULT_ORIGIN)
    max_concurrency: Setting[int] = Setting(8, DEFAULT_ORIGIN)
    retries: Setting[int] = Setting(3, DEFAULT_ORIGIN)
    fsync: Setting[bool] = Setting(True, DEFAULT_ORIGIN)
    stall_timeout: Setting[float] = Setting(30.0, DEFAULT_ORIGIN)
    low_speed_limit: Setting[int] = Setting(1024, DEFAULT_ORIGIN)
    low_speed_time: Setting[float] = Setting(30.0, DEFAULT_ORIGIN)
    trust_store: Setting[str] = Setting("auto", DEFAULT_ORIGIN)
    proxy: Setting[str] | None = None  # both schemes (ALL_PROXY)
    https_proxy: Setting[str] | None = None
    http_proxy: Setting[str] | None = None
    no_proxy: Setting[str] | None = None
    deps_format: Setting[str] = Setting("wasm", DEFAULT_ORIGIN)  # how sync writes wit/deps/: wasm | wit

    def __init__(self, cache_dir: Setting[Path] | None = None, strict: Setting[bool] = Setting(False, DEFAULT_ORIGIN),
                 timeout: Setting[float] = Setting(30.0, DEFAULT_ORIGIN),
                 connect_timeout: Setting[float] = Setting(10.0, DEFAULT_ORIGIN),
                 metadata_timeout: Setting[float] = Setting(5.0, DEFAULT_ORIGIN),
                 metadata_ttl: Setting[int] = Setting(86400, DEFAULT_ORIGIN),
                 max_concurrency: Setting[int] = Setting(8, DEFAULT_ORIGIN),
                 retries: Setting[int] = Setting(3, DEFAULT_ORIGIN),
                 fsync: Setting[bool] = Setting(True, DEFAULT_ORIGIN),
                 stall_timeout: Setting[float] = Setting(30.0, DEFAULT_ORIGIN),
                 low_speed_limit: Setting[int] = Setting(1024, DEFAULT_ORIGIN),
                 low_speed_time: Setting[float] = Setting(30.0, DEFAULT_ORIGIN),
                 trust_store: Setting[str] = Setting("auto", DEFAULT_ORIGIN), proxy: Setting[str] | None = None,
                 https_proxy: Setting[str] | None = None, http_proxy: Setting[str] | None = None,
                 no_proxy: Setting[str] | None = None,
                 deps_format: Setting[str] = Setting("wasm", DEFAULT_ORIGIN)) -> None:
        init_field(self, "cache_dir", cache_dir)
        init_field(self, "strict", strict)
        init_field(self, "timeout", timeout)
        init_field(self, "connect_timeout", connect_timeout)
        init_field(self, "metadata_timeout", metadata_timeout)
        init_field(self, "metadata_ttl", metadata_ttl)
        init_field(self, "max_concurrency", max_concurrency)
        init_field(self, "retries", retries)
        init_field(self, "fsync", fsync)
        init_field(self, "stall_timeout", stall_timeout)
        init_field(self, "low_speed_limit", low_speed_limit)
        init_field(self, "low_speed_time", low_speed_time)
        init_field(self, "trust_store", trust_store)
        init_field(self, "proxy", proxy)
        init_field(self, "https_proxy", https_proxy)
        init_field(self, "http_proxy", http_proxy)
        init_field(self, "no_proxy", no_proxy)
        init_field(self, "deps_format", deps_format)


_SETTING_TYPES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "cache_dir": (str, "a path"),
    "strict": (bool, "true or false"),
    "timeout": ((int, float), "a number of seconds"),
    "connect_timeout": ((int, float), "a number of seconds"),
    "metadata_timeout": ((int, float), "a number of seconds"),
    "metadata_ttl": (int, "a whole number of seconds"),
    "max_concurrency": (int, "a whole number from 1 to 64"),
    "retries": (int, "a whole number from 0 to 10"),
    "fsync": (bool, "true or false"),
    "stall_timeout": ((int, float), "a number of seconds"),
    "low_speed_limit": (int, "a whole number of bytes per second (0 turns the check off)"),
    "low_speed_time": ((int, float), "a number of seconds"),
    "trust_store": (str, '"auto", "openssl" or "system"'),
    "proxy": (str, "a proxy URL such as http://proxy.example.com:3128"),
    "https_proxy": (str, "a proxy URL such as http://proxy.example.com:3128"),
    "http_proxy": (str, "a proxy URL such as http://proxy.example.com:3128"),
    "no_proxy": ((str, list), 'a list of hosts, e.g. "localhost,.internal,10.0.0.0/8" or an array'),
    "deps_format": (str, '"wasm" or "wit"'),
}
_FLOAT_SETTINGS = ("timeout", "connect_timeout", "metadata_timeout", "stall_timeout", "low_speed_time")
_PROXY_SETTINGS = ("proxy", "https_proxy", "http_proxy")
TRUST_STORES = ("auto", "openssl", "system")


class RegistryChoice(Frozen):
    """Which registry a package maps to, and what decided it."""

    __fields__ = ("package", "registry", "origin", "rule", "metadata")
    package: PackageRef
    registry: str
    origin: Origin
    rule: str  # e.g. 'namespace_registries.wasi', 'default_registry', 'built-in wasi'
    metadata: RegistryMetadata | None = None  # inline metadata from the mapping

    def __init__(self, package: PackageRef, registry: str, origin: Origin, rule: str, metadata: RegistryMetadata | None = None) -> None:
        init_field(self, "package", package)
        init_field(self, "registry", registry)
        init_field(self, "origin", origin)
        init_field(self, "rule", rule)
        init_field(self, "metadata", metadata)


# ---------------------------------------------------------------------------------------
# the merged config


class Config(Record):
    """The effective configuration: every layer merged, each value with its origin."""

    __fields__ = (
        "default_registry", "namespace_registries", "package_registry_overrides", "fallback_namespace_registries",
        "registries", "settings", "forced_registry", "dependencies", "project_root", "files", "warnings",
        "provenance", "load_inputs"
    )
    default_registry: Setting[str] | None = None
    namespace_registries: dict[str, Setting[RegistryMapping]]
    package_registry_overrides: dict[str, Setting[RegistryMapping]]
    fallback_namespace_registries: dict[str, Setting[str]]
    registries: dict[str, RegistryConfig]
    settings: Settings
    forced_registry: Setting[str] | None = None  # --registry
    dependencies: dict[str, Setting[Any]]
    project_root: Path | None = None
    files: list[tuple[str, Path, bool]]  # (layer, path, found)
    warnings: list[str]
    #: [provenance] policies: pattern -> field -> Setting (see _provenance._policy; built-in wasi:*)
    provenance: dict[str, dict[str, Setting[Any]]]
    #: what Config.load was given (cwd, flag files, --registry): the warm-fetch memo key
    load_inputs: tuple[str, tuple[str, ...], str | None] | None = None

    def __init__(self, default_registry: Setting[str] | None = None,
                 namespace_registries: dict[str, Setting[RegistryMapping]] = FACTORY,
                 package_registry_overrides: dict[str, Setting[RegistryMapping]] = FACTORY,
                 fallback_namespace_registries: dict[str, Setting[str]] = FACTORY,
                 registries: dict[str, RegistryConfig] = FACTORY, settings: Settings = FACTORY,
                 forced_registry: Setting[str] | None = None, dependencies: dict[str, Setting[Any]] = FACTORY,
                 project_root: Path | None = None, files: list[tuple[str, Path, bool]] = FACTORY,
                 warnings: list[str] = FACTORY, provenance: dict[str, dict[str, Setting[Any]]] = FACTORY,
                 load_inputs: tuple[str, tuple[str, ...], str | None] | None = None) -> None:
        self.default_registry = default_registry
        self.namespace_registries = dict() if namespace_registries is FACTORY else namespace_registries
        self.package_registry_overrides = dict() if package_registry_overrides is FACTORY else package_registry_overrides
        self.fallback_namespace_registries = dict() if fallback_namespace_registries is FACTORY else fallback_namespace_registries
        self.registries = dict() if registries is FACTORY else registries
        self.settings = Settings() if settings is FACTORY else settings
        self.forced_registry = forced_registry
        self.dependencies = dict() if dependencies is FACTORY else dependencies
        self.project_root = project_root
        self.files = list() if files is FACTORY else files
        self.warnings = list() if warnings is FACTORY else warnings
        self.provenance = dict() if provenance is FACTORY else provenance
        self.load_inputs = load_inputs

    # --- construction ------------------------------------------------------------------

    @classmethod
    def builtin(cls) -> Config:
        cfg = cls()
        for ns, reg in BUILTIN_NAMESPACES.items():
            cfg.fallback_namespace_registries[ns] = Setting(reg, DEFAULT_ORIGIN)
        from ._provenance._builtin import builtin_fields  # the built-in wasi:* provenance policy

        cfg.provenance = builtin_fields()
        return cfg

    @classmethod
    def load(
        cls,
        *,
        config_files: Iterable[str | os.PathLike[str]] = (),
        registry: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        use_global: bool = True,
        use_project: bool = True,
    ) -> Config:
        """Load every layer the way the CLI does.

        ``config_files``, ``registry`` and ``cache_dir`` are the command-line flag layer.
        """
        env = os.environ if env is None else env
        cfg = cls.builtin()
        if use_global and use_project and env is os.environ:
            cfg.load_inputs = (str(Path(cwd) if cwd is not None else Path.cwd()),
                               tuple(str(f) for f in config_files), registry)

        if use_global:
            path = global_config_path()
            # anything at the path (a directory, a FIFO) is reported as what it is
            if _path_kind(path) != "missing":
                cfg.files.append(("global", path, True))
                cfg.merge_file(path, "global")
            else:
                cfg.files.append(("global", path, False))
                legacy = legacy_config_path()
                if _path_kind(legacy) != "missing":
                    cfg.files.append(("global", legacy, True))
                    cfg.merge_file(legacy, "global", legacy=True)
                    cfg.warnings.append(
                        f"read the legacy warg-loader config {legacy}; "
                        f"run 'pkgloader config init --migrate' to write {path}"
                    )

        if use_project:
            start = Path(cwd) if cwd is not None else Path.cwd()
            found = find_project_file(start)
            if found is not None:
                path, table = found
                cfg.files.append(("project", path, True))
                cfg.project_root = path.parent
                if table:
                    cfg.merge_data(_pyproject_table(path), path, "project", text=_read_text(path))
                else:
                    cfg.merge_file(path, "project")
            else:
                cfg.files.append(("project", start / "pkgloader.toml", False))

        for var in ("PKGLOADER_CONFIG", "WKG_CONFIG_FILE"):
            value = env.get(var)
            if value:
                path = Path(value).expanduser()
                _check_config_path(path, f"named by {var}", f"create the file or unset {var}",
                                   f"set {var} to the path of a TOML file, or unset it")
                cfg.files.append(("env", path, True))
                cfg.merge_file(path, "env", source_override=f"{path} (from {var})")
                break
        value = env.get("PKGLOADER_DEFAULT_REGISTRY")
        if value:
            origin = Origin("env", "PKGLOADER_DEFAULT_REGISTRY")
            cfg.default_registry = Setting(validate_registry_name(value, origin), origin)
        for var in ("PKGLOADER_CACHE_DIR", "WKG_CACHE_DIR"):
            value = env.get(var)
            if value:
                cfg.settings = replace(
                    cfg.settings, cache_dir=Setting(Path(value).expanduser(), Origin("env", var))
                )
                break

        mirrors_env = env.get("PKGLOADER_MIRRORS")
        if mirrors_env:  # [REGISTRY=]MIRROR[,MIRROR...] groups separated by ';' (see _mirrorconfig)
            from ._mirrorconfig import parse_env_mirrors

            try:
                parsed_mirrors = parse_env_mirrors(mirrors_env)
            except ValueError as exc:
                raise ConfigError(f"invalid PKGLOADER_MIRRORS: {exc}", details=["set by: environment variable PKGLOADER_MIRRORS"],
                                  hint="write [REGISTRY=]HOST[:PORT][/PREFIX][,...] groups separated by ';'") from None
            for name, mirror_list in parsed_mirrors.items():
                mrc = cfg.registries.setdefault(name, RegistryConfig(name))
                mrc.backends.setdefault("oci", {})["mirrors"] = Setting(mirror_list, Origin("env", "PKGLOADER_MIRRORS"))

        from ._proxy import from_environment

        for key, (value, var) in from_environment(env).items():
            if key != "no_proxy":
                check_proxy_url(value, f"environment variable {var}")
            cfg.settings = replace(cfg.settings, **{key: Setting(value.strip(), Origin("env", var))})

        for file in config_files:
            path = Path(file).expanduser()
            _check_config_path(path, "given with --config",
                               "check the path; --config adds a layer on top of the other config files",
                               "give --config the path of a TOML file")
            cfg.files.append(("flag", path, True))
            cfg.merge_file(path, "flag")
        if registry:
            origin = Origin("flag", "--registry")
            cfg.forced_registry = Setting(validate_registry_name(registry, origin), origin)
        if cache_dir is not None:
            cfg.settings = replace(
                cfg.settings, cache_dir=Setting(Path(cache_dir).expanduser(), Origin("flag", "--cache-dir"))
            )
        return cfg

    @classmethod
    def from_toml(cls, text: str, *, layer: str = "project", source: str = "<string>", base_dir: Path | None = None) -> Config:
        """A config made of the built-ins plus one TOML document (for build tools)."""
        cfg = cls.builtin()
        data = _parse_toml(text, source)
        cfg.merge_data(data, Path(source) if base_dir is None else base_dir / "config.toml", layer, text=text, source_override=source)
        return cfg

    def merge_file(self, path: Path, layer: str, *, legacy: bool = False, source_override: str | None = None) -> None:
        text = _read_text(path)
        data = _parse_toml(text, str(path))
        if legacy or _looks_legacy(data):
            if not legacy:
                self.warnings.append(
                    f"{path} uses the legacy warg-loader shape ([namespace.X] / flat [registry.X] fields); "
                    "see 'pkgloader config init --help' for the wasm-pkg shape"
                )
            data = _convert_legacy(data, path, text)
        self.merge_data(data, path, layer, text=text, source_override=source_override)

    def merge_data(
        self,
        data: Mapping[str, Any],
        path: Path,
        layer: str,
        *,
        text: str = "",
        source_override: str | None = None,
    ) -> None:
        """Validate one layer's TOML data and merge it on top of this config."""
        _Loader(self, path, layer, text, source_override).load(data)

    # --- queries -------------------------------------------------------------------------

    @property
    def cache_dir(self) -> Path:
        if self.settings.cache_dir is not None:
            return self.settings.cache_dir.value
        return default_cache_dir()

    def registry_config(self, name: str) -> RegistryConfig:
        return self.registries.get(name) or RegistryConfig(name)

    def choose_registry(self, package: PackageRef | str) -> RegistryChoice:
        """``--registry`` > ``package_registry_overrides`` > ``namespace_registries`` >
        ``default_registry`` > built-in namespace fallbacks."""
        if isinstance(package, str):
            package = PackageRef.parse(package)
        key = str(package)
        ns = package.namespace
        if self.forced_registry is not None:
            meta = None
            for mapping in (self.package_registry_overrides.get(key), self.namespace_registries.get(ns)):
                if mapping and mapping.value.registry == self.forced_registry.value:
                    meta = mapping.value.metadata
                    break
            return RegistryChoice(package, self.forced_registry.value, self.forced_registry.origin, "--registry", meta)
        if key in self.package_registry_overrides:
            s = self.package_registry_overrides[key]
            return RegistryChoice(package, s.value.registry, s.origin, f'package_registry_overrides."{key}"', s.value.metadata)
        if ns in self.namespace_registries:
            s = self.namespace_registries[ns]
            return RegistryChoice(package, s.value.registry, s.origin, f"namespace_registries.{ns}", s.value.metadata)
        if self.default_registry is not None:
            s2 = self.default_registry
            return RegistryChoice(package, s2.value, s2.origin, "default_registry")
        if ns in self.fallback_namespace_registries:
            s3 = self.fallback_namespace_registries[ns]
            return RegistryChoice(package, s3.value, s3.origin, f"built-in namespace {ns}")
        add = (f'add  {ns} = "REGISTRY"  under [namespace_registries] in {global_config_path()} '
               "or pkgloader.toml, or pass --registry REGISTRY")
        known = {**{n: "built in" for n in self.fallback_namespace_registries},
                 **{n: "configured" for n in self.namespace_registries},
                 **{PackageRef.parse(k).namespace: "configured" for k in self.package_registry_overrides
                    if _parse_ref_quietly(k)}}
        import difflib

        close = difflib.get_close_matches(ns, sorted(known), n=1, cutoff=0.6)
        raise RegistryNotConfigured(
            f"no registry is configured for namespace {ns!r} (package {key})",
            details=[f"config files consulted: {', '.join(str(p) for _, p, found in self.files if found) or 'none'}"],
            hint=(f"did you mean {close[0]}:{package.name}? (namespace {close[0]!r} is {known[close[0]]}); "
                  f"otherwise {add}") if close else add,
        )

    # --- display ----------------------------------------------------------------------

    def to_dict(self, *, origins: bool = False, secrets: bool = False) -> dict[str, Any]:
        """The effective config as plain data (secrets masked unless ``secrets``)."""

        def show(s: Setting[Any], value: Any = None) -> Any:
            v = s.value if value is None else value
            if isinstance(v, Path):
                v = str(v)
            if origins:
                return {"value": v, "origin": s.origin.to_json()}
            return v

        def mapping_value(m: RegistryMapping) -> Any:
            if m.metadata is None:
                return m.registry
            return {"registry": m.registry, "metadata": m.metadata.to_json()}

        out: dict[str, Any] = {}
        if self.default_registry is not None:
            out["default_registry"] = show(self.default_registry)
        if self.forced_registry is not None:
            out["registry_override"] = show(self.forced_registry)
        out["namespace_registries"] = {
            k: show(s, mapping_value(s.value)) for k, s in sorted(self.namespace_registries.items())
        }
        out["fallback_namespace_registries"] = {
            k: show(s) for k, s in sorted(self.fallback_namespace_registries.items())
        }
        out["package_registry_overrides"] = {
            k: show(s, mapping_value(s.value)) for k, s in sorted(self.package_registry_overrides.items())
        }
        regs: dict[str, Any] = {}
        for name, rc in sorted(self.registries.items()):
            entry: dict[str, Any] = {}
            if rc.default is not None:
                entry["default"] = show(rc.default)
            for backend, table in sorted(rc.backends.items()):
                entry[backend] = {
                    k: show(s, s.value if secrets else _mask(backend, k, s.value)) for k, s in sorted(table.items())
                }
            regs[name] = entry
        out["registry"] = regs
        st = self.settings
        pk: dict[str, Any] = {}
        pk["cache_dir"] = show(st.cache_dir) if st.cache_dir else show(Setting(default_cache_dir(), DEFAULT_ORIGIN))
        for name in ("strict", "timeout", "connect_timeout", "metadata_timeout", "metadata_ttl", "max_concurrency", "retries",
                     "fsync", "stall_timeout", "low_speed_limit", "low_speed_time", "trust_store"):
            pk[name] = show(getattr(st, name))
        for name in ("proxy", "https_proxy", "http_proxy", "no_proxy"):
            setting = getattr(st, name)
            if setting is not None:
                pk[name] = show(setting, setting.value if secrets or name == "no_proxy" else _redact_proxy(setting.value))
        out["pkgloader"] = pk
        if self.dependencies:
            out["dependencies"] = {k: show(s) for k, s in sorted(self.dependencies.items())}
        if self.provenance:  # [provenance] policies, field by field (see _provenance._policy)
            out["provenance"] = {p: {k: show(s) for k, s in sorted(f.items())} for p, f in sorted(self.provenance.items())}
        return out


def check_proxy_url(value: str, origin: str) -> None:
    """A ConfigError (naming ``origin``, never the credentials) unless ``value`` is a proxy
    URL pkgloader can use."""
    from urllib.parse import urlsplit

    from ._proxy import parse_proxy_url

    hint = "write http://host:port (credentials, if any, as http://user:password@host:port)"
    try:
        parse_proxy_url(value, origin)
    except ValueError as exc:
        raise ConfigError(f"invalid proxy setting: {exc}", details=[f"set by: {origin}"], hint=hint) from None
    text = value.strip()
    try:
        parts = urlsplit(text if "://" in text else "http://" + text)
    except ValueError:  # pragma: no cover - parse_proxy_url has refused these
        parts = None
    if parts is None or parts.path not in ("", "/") or parts.query or parts.fragment:
        # e.g. "http//user:pw@host": the credentials would sit in a path nothing reads (or shows redacted)
        raise ConfigError(f"invalid proxy setting: {origin}: a proxy URL has no path, query or fragment",
                          details=[f"set by: {origin}"], hint=hint)


def _redact_proxy(value: str) -> str:
    from ._http import redact_url

    return redact_url(value if "://" in value else "http://" + value)


def _mask(backend: str, key: str, value: Any) -> Any:
    if backend == "oci" and key == "mirrors":
        from ._mirrorconfig import mask_mirrors

        return mask_mirrors(value)
    if backend == "oci" and key == "auth":
        if isinstance(value, dict):
            return {"username": value.get("username"), "password": SECRET_MASK}
        return SECRET_MASK
    if key in ("auth_token", "password", "signing_key"):
        return SECRET_MASK
    return value


# ---------------------------------------------------------------------------------------
# files


def find_project_file(start: Path) -> tuple[Path, bool] | None:
    """The nearest ``pkgloader.toml``, or ``pyproject.toml`` with ``[tool.pkgloader]``,
    walking up from ``start``. Returns (path, is_pyproject)."""
    start = start.resolve()
    for directory in (start, *start.parents):
        candidate = directory / "pkgloader.toml"
        if _path_kind(candidate) != "missing":
            return candidate, False  # a directory or FIFO there is reported when it is read
        pyproject = directory / "pyproject.toml"
        if pyproject.is_file():
            text = _read_text(pyproject)
            try:
                data = tomllib.loads(text)
            except (tomllib.TOMLDecodeError, RecursionError):
                if _PYPROJECT_TABLE_RE.search(text):
                    return pyproject, True  # ours, and broken: reading it reports where
                continue  # not ours to judge; pip will complain about it
            if isinstance(data.get("tool"), dict) and "pkgloader" in data["tool"]:
                return pyproject, True
    return None


_PYPROJECT_TABLE_RE = LazyPattern(r"(?m)^[ \t]*\[{1,2}[ \t]*tool[ \t]*\.[ \t]*[\"']?pkgloader\b")


def _pyproject_table(path: Path) -> dict[str, Any]:
    data = _parse_toml(_read_text(path), str(path))
    table = data["tool"]["pkgloader"]
    if not isinstance(table, dict):
        raise ConfigError(f"[tool.pkgloader] in {path} must be a table", details=[f"file: {path}"])
    return table


#: The most a config file (or pyproject.toml) may hold; a bigger one is refused unread.
MAX_CONFIG_BYTES = 4 * 1024 * 1024

_KINDS = ((stat.S_ISREG, "file"), (stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO"),
          (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"))


def _mode_kind(mode: int) -> str:
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return "special file"


def _path_kind(path: Path) -> str:
    """``"missing"``, ``"file"`` (a regular file, after symlinks), ``"directory"``, ``"FIFO"``...
    without opening anything (opening a FIFO blocks)."""
    try:
        return _mode_kind(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError:
        return "unknown"  # e.g. no permission on a parent: reading says why


def _not_regular(path: Path, kind: str, named_by: str = "") -> str:
    where = f" {named_by}" if named_by else ""
    if kind == "directory":
        return f"config file {str(path)!r}{where} is a directory"
    return f"config file {str(path)!r}{where} is not a regular file (it is a {kind})"


_NOT_REGULAR_HINT = "a config file must be a regular TOML file; remove or replace this one"


def _check_config_path(path: Path, named_by: str, missing_hint: str, kind_hint: str) -> None:
    """A ConfigError unless ``path`` is (or links to) a regular file; says what it is."""
    kind = _path_kind(path)
    if kind == "missing":
        raise ConfigError(f"config file {str(path)!r} {named_by} does not exist", hint=missing_hint)
    if kind not in ("file", "unknown"):
        raise ConfigError(_not_regular(path, kind, named_by), hint=kind_hint)


def _read_text(path: Path) -> str:
    """The text of a config file: only a regular file (checked on the open descriptor, which
    is opened without blocking, so a FIFO never hangs), at most MAX_CONFIG_BYTES."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
                     | getattr(os, "O_BINARY", 0))
    except IsADirectoryError:  # Windows
        raise ConfigError(_not_regular(path, "directory"), hint=_NOT_REGULAR_HINT) from None
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist", hint="check the path") from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read config file {str(path)!r}: {exc.strerror or exc}",
            hint="check the file's permissions",
        ) from None
    try:
        kind = _mode_kind(os.fstat(fd).st_mode)
        if kind != "file":
            raise ConfigError(_not_regular(path, kind), hint=_NOT_REGULAR_HINT)
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_CONFIG_BYTES:
            chunk = os.read(fd, MAX_CONFIG_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise ConfigError(
            f"cannot read config file {str(path)!r}: {exc.strerror or exc}",
            hint="check the file's permissions",
        ) from None
    finally:
        os.close(fd)
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {str(path)!r} is larger than {MAX_CONFIG_BYTES >> 20} MiB; not reading it",
                          hint="a config file is a few KiB; check that the path names the right file")
    data = b"".join(chunks)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text",
                          details=[f"invalid byte at offset {exc.start}"]) from None


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    """tomllib, with its errors as ConfigErrors that never show a secret (see
    :func:`secret_lines`) and deep nesting (tomllib recurses) as one more syntax error."""
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise ConfigError(
            f"config file {source!r} is not valid TOML: arrays or inline tables nested too deeply",
            details=[f"file: {source}"],
            hint="a config file needs a few levels of nesting at most; check that this is the right file",
        ) from None
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r" \(at line (\d+), column (\d+)\)$", msg)
        problem = msg[: m.start()] if m else msg
        details = [f"file: {source}" + (f":{m.group(1)}" if m else "")]
        if m:
            lines = text.split("\n")  # as tomllib counts them (splitlines also splits at \f, \x85...)
            lineno, col = int(m.group(1)), int(m.group(2))
            if 0 < lineno <= len(lines):
                line = lines[lineno - 1].rstrip("\r")
                why = _hidden_line(text, lines, lineno)
                if why:
                    # neither the line nor the character tomllib quotes
                    if not problem.endswith("'\\n'"):  # the end of the line is no secret
                        problem = re.sub(r"^(Illegal character|Found invalid character) .*", r"\1", problem)
                    details[0] += f" (column {col})"
                    details.append(f"(the line is not shown: it {why})")
                else:
                    m2 = re.match(r"^(Illegal character|Found invalid character) '(.*)'$", problem)
                    if m2 and m2.group(2).isprintable() and not m2.group(2).startswith("\\"):
                        problem = m2.group(1)  # a printable character may be one of a string's (masked below)
                    shown, caret = _excerpt(_masked(line), col)
                    details.append(shown)
                    details.append(" " * caret + "^")
        raise ConfigError(
            f"config file {source!r} is not valid TOML: {problem}",
            details=details,
            hint="fix the TOML syntax at the position shown",
        ) from None


def _excerpt(line: str, col: int, width: int = 120) -> tuple[str, int]:
    """The part of ``line`` to show around column ``col`` (1-based), and the caret's offset."""
    if len(line) <= width:
        return line, max(col - 1, 0)
    start = max(0, min(col - 1 - width // 2, len(line) - width))
    shown = line[start:start + width]
    caret = col - 1 - start
    if start > 0:
        shown, caret = "..." + shown, caret + 3
    if start + width < len(line):
        shown += "..."
    return shown, max(caret, 0)


#: Keys whose values are secrets, wherever they appear: masked in ``config show`` and never
#: quoted in an error. Proxy URLs may carry credentials (``http://user:password@host``) too.
SECRET_KEYS = frozenset({"auth", "password", "auth_token", "signing_key"})
PROXY_KEYS = frozenset({"proxy", "https_proxy", "http_proxy"})
_URL_CREDENTIALS_RE = LazyPattern(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s@]*@")
_BARE_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def _is_secret_key(part: str) -> bool:
    return part in SECRET_KEYS or part in PROXY_KEYS


_SECRET_WORDS = ("auth", "pass", "token", "secret", "signing", "key", "proxy", "cred")
_SECRET_NAMES = sorted(SECRET_KEYS | PROXY_KEYS)
_WORD_RE = LazyPattern(r"[A-Za-z][A-Za-z0-9_-]*")


@functools.lru_cache(maxsize=4096)
def _secretish(name: str) -> bool:
    """A key that may hold a secret, typos included (``pasword``, ``Auth``, ``my_token``): what
    a syntax error's excerpt is careful about. Broader than :func:`_is_secret_key` on purpose:
    hiding a harmless line costs only the excerpt; the line and column are still given."""
    low = name.lower()
    if low == "no_proxy":  # host names only
        return False
    if any(word in low for word in _SECRET_WORDS):
        return True
    near = [n for n in _SECRET_NAMES if abs(len(n) - len(low)) <= 3]  # a ratio of 0.75 needs that
    if not near:
        return False
    import difflib

    return bool(difflib.get_close_matches(low, near, n=1, cutoff=0.75))


def _mentions_secret(line: str) -> bool:
    """Whether a line names a secret-ish key anywhere or holds a URL with credentials (the
    second net under :func:`secret_lines`, for lines whose structure a typo has changed)."""
    if "@" in line and _URL_CREDENTIALS_RE.search(line):
        return True
    return any(_secretish(word) for word in set(_WORD_RE.findall(line)))


def _hidden_line(text: str, lines: list[str], lineno: int) -> str | None:
    """Why the excerpt of line ``lineno`` must not be shown at all, or None. Three nets, each
    for what the others miss in a damaged file: the line names a secret-ish key (or holds a URL
    with credentials); TOML's own structure puts a secret on it (:func:`secret_lines`); by text
    alone it continues a secret's multi-line string or array (:func:`_continued_secret_lines`).
    Any other line is shown :func:`_masked`: an edit may have destroyed a key's name
    (``a"th = "<base64>"``) or turned a secret into a key or a bare word, where no net sees it."""
    line = lines[lineno - 1]
    if _mentions_secret(line) or lineno in secret_lines(text) or lineno in _continued_secret_lines(lines):
        return "holds a secret"
    return None


_TOKEN_RE = LazyPattern("|".join((
    r"'{3}.*?(?:'{3}|$)",                # multi-line literal string (or its first line)
    r'"{3}(?:[^\\]|\\.)*?(?:"{3}|$)',  # multi-line basic string
    r'"(?:[^"\\]|\\.)*(?:"|$)',        # basic string, to its end or the line's
    r"'[^']*(?:'|$)",                    # literal string
    r"[^\s\"'=\[\]{},.#]+",              # anything else but TOML's punctuation: a bare word, a number
)))
_SAFE_WORDS = frozenset({"true", "false", "inf", "nan", "+inf", "-inf"})


def _masked(line: str) -> str:
    """``line`` with the contents of every string and every word that is not a known config
    key, a backend name or a TOML keyword replaced by ``*`` (column for column, so the caret
    still points at the right place); short numbers are kept (``timeout = 30``)."""

    def mask(m: re.Match[str]) -> str:
        token = m.group(0)
        if token[0] in "\"'":
            quote = token[:3] if token[:3] in ('"""', "'''") else token[0]
            closed = len(token) >= 2 * len(quote) and token.endswith(quote)
            inner = token[len(quote):len(token) - len(quote)] if closed else token[len(quote):]
            return quote + "*" * len(inner) + (quote if closed else "")
        if token in _SAFE_NAMES or token in _SAFE_WORDS or (len(token) <= 6 and re.fullmatch(r"[0-9_.+:-]+", token)):
            return token
        return "*" * len(token)

    return _TOKEN_RE.sub(mask, line)


def _continued_secret_lines(lines: list[str]) -> set[int]:
    """The third net, by text alone: the lines after a line that names a secret-ish key and
    opens a multi-line string or array there (``password = \"\"\"``, ``auth = [``), up to the
    line that closes it. This holds even when an edit earlier in the file (an unclosed
    ``\"\"\"``) makes TOML read the secret as something else, a key, say."""
    out: set[int] = set()
    number = 0
    while number < len(lines):
        line = lines[number]
        number += 1
        if not _mentions_secret(line):
            continue
        rest = line.split("=", 1)[1] if "=" in line else line
        quote = next((q for q in ('"""', "'''") if rest.count(q) % 2), None)
        depth = rest.count("[") + rest.count("{") - rest.count("]") - rest.count("}")
        if quote is None and depth <= 0:
            continue
        while number < len(lines):
            following = lines[number]
            number += 1
            out.add(number)
            if quote is not None:
                if quote in following:
                    break
            else:
                depth += following.count("[") + following.count("{") - following.count("]") - following.count("}")
                if depth <= 0:
                    break
    return out


def secret_lines(text: str) -> set[int]:
    """The numbers (1-based, counting ``\n`` as tomllib does) of the lines of ``text`` that hold
    any part of a secret: a value (at any depth) of a key that looks like one of
    :data:`SECRET_KEYS` or :data:`PROXY_KEYS` (:func:`_secretish`: typos and look-alikes too),
    the line of such a key even without its ``=``, anything in a table whose header names one
    (``[registry."r".oci.auth]``), and any line with a URL that has credentials. ``text`` may be malformed TOML: a small lexer follows strings (all four kinds),
    comments, arrays and inline tables as TOML reads them, so an unterminated string or table
    keeps counting as the secret it started as. Used only to word a syntax error."""
    out: set[int] = set()
    n = len(text)
    i = 0
    line = 1
    header_secret = False  # the current [table] / [[array]] header names a secret key
    # one frame per open container: [kind, inherited secret, expecting a key, value secret, key parts]
    stack: list[list[Any]] = [["doc", False, True, False, []]]

    def mark(first: int, last: int) -> None:
        out.update(range(first, last + 1))

    while i < n:
        c = text[i]
        frame = stack[-1]
        kind = frame[0]
        in_key = kind != "array" and frame[2]
        active = False if in_key else (frame[1] if kind == "array" else frame[3])
        if c == "\n":
            line += 1
            i += 1
            if kind == "doc":
                frame[2], frame[3], frame[4] = True, False, []
            continue
        if c in " \t\r":
            i += 1
            continue
        if c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        if c in "\"'":
            triple = text.startswith(c * 3, i)
            start_line = line
            if triple:
                j = i + 3
                while True:
                    end = text.find(c * 3, j)
                    if end < 0:
                        end = n
                        break
                    if c == '"':  # an escaped quote does not close the string
                        k = end - 1
                        while k >= j and text[k] == "\\":
                            k -= 1
                        if (end - 1 - k) % 2:
                            j = end + 1
                            continue
                    break
                for _ in range(2):  # up to two quotes right before the closing three belong to the string
                    if text.startswith(c * 3, end + 1):
                        end += 1
                value = text[i + 3:end]
                stop = min(end + 3, n)
            else:
                j = i + 1
                while j < n and text[j] != c and text[j] != "\n":
                    j += 2 if c == '"' and text[j] == "\\" and j + 1 < n and text[j + 1] != "\n" else 1
                value = text[i + 1:j]
                stop = j + 1 if j < n and text[j] == c else j
            line += text.count("\n", i, stop)
            i = stop
            if in_key:
                frame[4].append(value)
                if _secretish(value) or (frame[1] or (kind == "doc" and header_secret)):
                    mark(start_line, line)
            elif active:
                mark(start_line, line)
            continue
        if in_key:
            if c == "[" and kind == "doc":  # a table header: [a.b] or [[a.b]]
                end = text.find("\n", i)
                end = n if end < 0 else end
                header = text[i:end]
                parts = re.findall(r'"((?:[^"\\]|\\.)*)"|\'([^\']*)\'|([A-Za-z0-9_-]+)', header)
                header_secret = any(_secretish(a or b or d) for a, b, d in parts)
                i = end
                continue
            if c in _BARE_KEY_CHARS:
                j = i
                while j < n and text[j] in _BARE_KEY_CHARS:
                    j += 1
                frame[4].append(text[i:j])
                if _secretish(text[i:j]) or (frame[1] or (kind == "doc" and header_secret)):
                    out.add(line)  # a secret key's line, even if its '=' is missing
                i = j
                continue
            if c == "=":
                inherited = frame[1] or (kind == "doc" and header_secret)
                frame[2], frame[3] = False, inherited or any(_secretish(p) for p in frame[4])
                frame[4] = []
                i += 1
                continue
            if c == "}" and kind == "inline":
                stack.pop()
                i += 1
                continue
            if frame[1] or (kind == "doc" and header_secret):
                out.add(line)  # junk inside a secret table
            i += 1  # '.', or junk tomllib stops at
            continue
        # in a value
        if active:
            out.add(line)
        if c == "[":
            stack.append(["array", active, False, False, []])
        elif c == "{":
            stack.append(["inline", active, True, False, []])
        elif c == "]" and kind == "array":
            stack.pop()
        elif c == "}" and kind == "inline":
            stack.pop()
        elif c == "," and kind == "inline":
            frame[2], frame[3], frame[4] = True, False, []
        i += 1
    for number, text_line in enumerate(text.split("\n"), 1):  # tomllib counts lines by "\n" only
        if "@" in text_line and _URL_CREDENTIALS_RE.search(text_line):
            out.add(number)
    return out


_HOST_RE = re.compile(
    r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*)(?::[0-9]{1,5})?$"
)


def validate_registry_name(value: str, origin: Origin) -> str:
    """A registry name is an HTTP authority ``host[:port]``, no scheme or path."""
    if not isinstance(value, str) or not _HOST_RE.match(value):
        hint = "a registry name is a host with an optional port, e.g. wasi.dev or localhost:5000"
        if isinstance(value, str) and "://" in value:
            bare = value.split("://", 1)[1].rstrip("/")
            hint = f"drop the scheme: write {bare!r} (set protocol = \"http\" under [registry.\"{bare}\".oci] for plain HTTP)"
        raise ConfigError(
            f"invalid registry name {value!r} ({origin})",
            details=[f"set by: {origin}"],
            hint=hint,
        )
    if value.startswith("[") is False and ":" in value:
        port = int(value.rsplit(":", 1)[1])
        if not 0 < port < 65536:
            raise ConfigError(f"invalid port in registry name {value!r} ({origin})", details=[f"set by: {origin}"])
    return value


_TOP_KEYS = ("default_registry", "namespace_registries", "package_registry_overrides", "registry", "pkgloader", "dependencies",
             "provenance")  # provenance: see _provenance._policy
_OCI_KEYS = ("auth", "protocol", "accept_invalid_certificates", "extra_root_certificates", "client_certificate",
             "client_key", "mirrors", "mirror_fallback")  # mirrors: see _mirrorconfig
_LOCAL_KEYS = ("root",)
_WARG_KEYS = ("url", "auth_token", "config_file", "signing_key")
#: names an excerpt may start with in a file that holds secrets (see _plainly_safe)
_SAFE_NAMES = frozenset(_TOP_KEYS + _OCI_KEYS + _LOCAL_KEYS + _WARG_KEYS + tuple(_SETTING_TYPES) + (
    "default", "type", "username", "metadata", "encoding", "data", "version", "path", "tool", "namespace",
    "preferredProtocol", "oci", "warg", "local"))


def _did_you_mean(key: str, choices: Iterable[str]) -> str | None:
    import difflib

    close = difflib.get_close_matches(key, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


def _key_line(line: str, key: str) -> bool:
    """``key = ...`` (bare or quoted) at the start of ``line``."""
    s = line.lstrip()
    for form in (f'"{key}"', f"'{key}'", key):
        if s.startswith(form) and s[len(form):].lstrip().startswith("="):
            return True
    return False


def _dotted_mention(line: str, key: str) -> bool:
    """``key`` as one part of a dotted key or inline table (``a.key = ``, ``{ key = ``)."""
    start = line.find(key)
    while start >= 0:
        end = start + len(key)
        if start == 0 or line[start - 1] in '. "\'[\t':
            rest = line[end:]
            if rest[:1] in "\"'":
                rest = rest[1:]
            if rest.lstrip()[:1] in ("=", "]", "."):
                return True
        start = line.find(key, start + 1)
    return False


def _find_line(text: str, path: list[str]) -> int | None:
    """Best-effort line number of a key path in TOML text (tomllib gives no positions).
    Plain string matching: this runs for every value of every config file on every start."""
    if not text:
        return None
    last = path[-1]
    # Prefer a line inside the right table header.
    header_prefix = path[:-1]
    current: list[str] = []
    best: int | None = None
    for i, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("["):
            current = [p.strip().strip('"\'') for p in re.split(r"\.(?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)", stripped.strip("[]"))]
            if current == path:
                return i
            continue
        if last not in line:
            continue
        if _key_line(line, last) and current == header_prefix[: len(current)]:
            if current == header_prefix:
                return i
            best = best or i
        elif best is None and _dotted_mention(line, last) and current == header_prefix[: len(current)]:
            best = i
    return best


class _Loader:
    """Validates one layer's data and merges it into a Config."""

    def __init__(self, cfg: Config, path: Path, layer: str, text: str, source_override: str | None) -> None:
        self.cfg = cfg
        self.path = path
        self.layer = layer
        self.text = text
        self.source = source_override or str(path)
        self.base_dir = path.parent

    def origin(self, keypath: list[str]) -> Origin:
        return Origin(self.layer, self.source, _find_line(self.text, keypath))

    def fail(self, keypath: list[str], message: str, hint: str | None = None) -> ConfigError:
        origin = self.origin(keypath)
        dotted = ".".join(f'"{k}"' if not re.fullmatch(r"[A-Za-z0-9_-]+", k) else k for k in keypath)
        where = f"{self.source}:{origin.line}" if origin.line else self.source
        return ConfigError(
            f"{dotted}: {message}",
            details=[f"in {where} ({self.layer} layer)"],
            hint=hint,
        )

    def unknown(self, keypath: list[str], choices: Iterable[str], what: str) -> ConfigError:
        choices = list(choices)
        hint = _did_you_mean(keypath[-1], choices) or f"known keys: {', '.join(choices)}"
        return self.fail(keypath, f"unknown {what} {keypath[-1]!r}", hint)

    def expect(self, keypath: list[str], value: Any, types: type | tuple[type, ...], expected: str) -> None:
        if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            ok = False
        else:
            ok = isinstance(value, types)
        if not ok:
            got = _type_name(value)
            if not _hides_value(keypath, types):
                got = f"{got} {_short(value)}".rstrip()
            raise self.fail(keypath, f"expected {expected}, got {got}")

    def registry_name(self, keypath: list[str], value: Any) -> str:
        self.expect(keypath, value, str, "a registry name (string)")
        try:
            return validate_registry_name(value, self.origin(keypath))
        except ConfigError as exc:
            raise self.fail(keypath, f"invalid registry name {value!r}", exc.hint) from None

    def load(self, data: Mapping[str, Any]) -> None:
        cfg = self.cfg
        for key in data:
            if key not in _TOP_KEYS:
                if key == "namespace":
                    raise self.fail([key], "[namespace.X] is the legacy warg-loader shape",
                                    'write [namespace_registries] with  X = "REGISTRY"  instead')
                raise self.unknown([key], _TOP_KEYS, "key")
        if "dependencies" in data and self.layer not in ("project", "env", "flag"):
            raise self.fail(["dependencies"], "[dependencies] belongs in a project file",
                            "move it to pkgloader.toml or [tool.pkgloader] in pyproject.toml")

        if "default_registry" in data:
            name = self.registry_name(["default_registry"], data["default_registry"])
            cfg.default_registry = Setting(name, self.origin(["default_registry"]))

        for table_key, target, key_check in (
            ("namespace_registries", cfg.namespace_registries, self._check_namespace),
            ("package_registry_overrides", cfg.package_registry_overrides, self._check_package),
        ):
            if table_key not in data:
                continue
            table = data[table_key]
            self.expect([table_key], table, dict, "a table")
            for k, v in table.items():
                kp = [table_key, k]
                k = key_check(kp, k)
                target[k] = Setting(self.mapping(kp, v), self.origin(kp))

        if "registry" in data:
            self.expect(["registry"], data["registry"], dict, "a table of registries")
            for name, rtable in data["registry"].items():
                self.registry(name, rtable)

        if "pkgloader" in data:
            self.settings(data["pkgloader"])

        if "provenance" in data:  # signature policies (see _provenance._policy)
            from ._provenance._policy import load_config_table

            load_config_table(self, data["provenance"])

        if "dependencies" in data:
            deps = data["dependencies"]
            self.expect(["dependencies"], deps, dict, "a table")
            for k, v in deps.items():
                kp = ["dependencies", k]
                self._check_package(kp, k)
                self.expect(kp, v, (str, dict), 'a version requirement string or an inline table such as { version = "0.2" }')
                cfg.dependencies[k] = Setting(v, self.origin(kp))

    def _check_namespace(self, kp: list[str], ns: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9]*(-[a-z][a-z0-9]*)*", ns):
            raise self.fail(kp, f"invalid namespace {ns!r}", "a namespace is lowercase words joined by '-', e.g. wasi or my-org")
        return ns

    def _check_package(self, kp: list[str], key: str) -> str:
        try:
            return str(PackageRef.parse(key))
        except ValueError as exc:
            raise self.fail(kp, f"invalid package name {key!r}: {exc}", "write it as namespace:name, e.g. \"wasi:http\"") from None

    def mapping(self, kp: list[str], value: Any) -> RegistryMapping:
        if isinstance(value, str):
            return RegistryMapping(self.registry_name(kp, value))
        self.expect(kp, value, dict, 'a registry name or an inline table { registry = "...", metadata = {...} }')
        for k in value:
            if k not in ("registry", "metadata"):
                raise self.unknown(kp + [k], ("registry", "metadata"), "key")
        if "registry" not in value:
            raise self.fail(kp, "inline mapping has no 'registry'", 'add registry = "NAME"')
        reg = self.registry_name(kp + ["registry"], value["registry"])
        meta = None
        if "metadata" in value:
            self.expect(kp + ["metadata"], value["metadata"], dict, "a table")
            try:
                meta = RegistryMetadata.from_json(value["metadata"])
            except ValueError as exc:
                raise self.fail(kp + ["metadata"], f"invalid registry metadata: {exc}") from None
        return RegistryMapping(reg, meta)

    def registry(self, name: str, rtable: Any) -> None:
        # As in wkg, a bad [registry."NAME"] entry fails that registry only: each problem is a
        # warning naming file, line and key, and using the registry is an error repeating it
        # (RegistryConfig.check_usable). Unknown top-level keys and TOML errors stay errors.
        kp = ["registry", name]
        rc = self.cfg.registries.setdefault(name, RegistryConfig(name))
        try:
            if name != "*":  # [registry."*"]: mirrors for every registry (see _mirrorconfig)
                self.registry_name(kp, name)
            self.expect(kp, rtable, dict, "a table")
        except ConfigError as exc:
            self.tolerate(rc, exc)
            return
        for key, value in rtable.items():
            try:
                self.registry_key(rc, name, key, value)
            except ConfigError as exc:
                self.tolerate(rc, exc)

    def tolerate(self, rc: RegistryConfig, exc: ConfigError, *, unusable: bool = True) -> None:
        where = exc.details[0].removeprefix("in ") if exc.details else self.source
        problem = f"{where}: {exc.message}"
        if unusable:
            rc.problems.append(problem)
            effect = f"registry {rc.name!r} cannot be used until this is fixed; other registries are unaffected"
        else:
            effect = "pkgloader ignores it"
        self.cfg.warnings.append(f"{problem}: {effect}" + (f" (hint: {exc.hint})" if exc.hint else ""))

    def registry_key(self, rc: RegistryConfig, name: str, key: str, value: Any) -> None:
        kpk = ["registry", name, key]
        if key in ("default", "type"):
            self.expect(kpk, value, str, 'a backend name ("oci", "local" or "warg")')
            if value not in KNOWN_BACKENDS:
                raise self.fail(kpk, f"unknown backend {value!r}", _did_you_mean(value, KNOWN_BACKENDS) or "use oci, local or warg")
            rc.default = Setting(value, self.origin(kpk))
            return
        if key not in KNOWN_BACKENDS:
            if key in _OCI_KEYS + _LOCAL_KEYS + ("auth_token", "url"):
                backend = "oci" if key in _OCI_KEYS else "local" if key in _LOCAL_KEYS else "warg"
                raise self.fail(kpk, f"{key!r} must be inside a backend table",
                                f'move it under [registry."{name}".{backend}]')
            if not isinstance(value, dict):
                raise self.unknown(kpk, ("default", "type", *KNOWN_BACKENDS), "registry key")
            # another tool's backend table (wkg allows any): ignored unless it is the only one
            rc.other_backends.append(key)
            hint = _did_you_mean(key, KNOWN_BACKENDS)
            self.tolerate(rc, self.fail(kpk, f"backend table {key!r} is not one pkgloader speaks (oci, local, warg)", hint),
                          unusable=False)
            return
        self.expect(kpk, value, dict, "a table")
        allowed = {"oci": _OCI_KEYS, "local": _LOCAL_KEYS, "warg": _WARG_KEYS, "oci-layout": _LOCAL_KEYS}[key]
        table = rc.backends.setdefault(key, {})
        for bkey, bval in value.items():
            bkp = kpk + [bkey]
            try:
                if bkey not in allowed:
                    raise self.unknown(bkp, allowed, f"{key} key")
                table[bkey] = Setting(self.backend_value(key, bkp, bval), self.origin(bkp))
            except ConfigError as exc:
                self.tolerate(rc, exc)

    def backend_value(self, backend: str, kp: list[str], value: Any) -> Any:
        key = kp[-1]
        if backend == "oci" and key in ("mirrors", "mirror_fallback"):  # registry mirrors (_mirrorconfig)
            from . import _mirrorconfig

            def fail(sub: list[str], message: str, hint: str | None) -> ConfigError:
                return self.fail(kp + sub, message, hint)

            if key == "mirror_fallback":
                return _mirrorconfig.check_fallback(value, fail)
            return _mirrorconfig.check_mirrors(value, fail,
                                               lambda sub, v: self.backend_value("oci", kp + sub, v))
        if backend == "oci":
            if key == "auth":
                if isinstance(value, dict):
                    for k in value:
                        if k not in ("username", "password"):
                            raise self.unknown(kp + [k], ("username", "password"), "auth key")
                    for k in ("username", "password"):
                        if not isinstance(value.get(k), str):
                            raise self.fail(kp, f"auth table needs a string {k!r}", "write auth = { username = \"...\", password = \"...\" }")
                    return dict(value)
                self.expect(kp, value, str, 'a table { username, password } or base64 of "user:pass"')
                try:
                    raw = base64.b64decode(value + "=" * (-len(value) % 4), validate=True).decode()
                except Exception:
                    raise self.fail(kp, "auth is not valid base64", 'write base64 of "user:pass", or a { username, password } table') from None
                if ":" not in raw:
                    raise self.fail(kp, "decoded auth has no ':' between user and password", 'encode "user:pass"')
                return value
            if key == "protocol":
                self.expect(kp, value, str, '"http" or "https"')
                if value not in ("http", "https"):
                    raise self.fail(kp, f"protocol must be \"http\" or \"https\", got {value!r}")
                return value
            if key == "accept_invalid_certificates":
                self.expect(kp, value, bool, "true or false")
                return value
            if key in ("client_certificate", "client_key"):
                self.expect(kp, value, str, "the path of a PEM file")
                path = Path(value).expanduser()
                return str(path if path.is_absolute() else self.base_dir / path)
            if key == "extra_root_certificates":
                self.expect(kp, value, list, 'an array of { encoding = "pem", data = "..." } tables')
                out = []
                for i, cert in enumerate(value):
                    ckp = kp + [str(i)]
                    self.expect(ckp, cert, dict, 'a table { encoding = "pem"|"der", data = "..." }')
                    for ck in cert:
                        if ck not in ("encoding", "data"):
                            raise self.unknown(ckp + [ck], ("encoding", "data"), "certificate key")
                    enc = cert.get("encoding", "pem")
                    if enc not in ("pem", "der"):
                        raise self.fail(ckp + ["encoding"], f"encoding must be \"pem\" or \"der\", got {enc!r}")
                    data = cert.get("data")
                    self.expect(ckp + ["data"], data, str, "the certificate text (PEM) or base64 (DER)")
                    if enc == "pem" and "-----BEGIN CERTIFICATE-----" not in data:
                        raise self.fail(ckp + ["data"], "data is not a PEM certificate", "paste the whole -----BEGIN CERTIFICATE----- block")
                    if enc == "der":
                        try:
                            base64.b64decode(data, validate=True)
                        except Exception:
                            raise self.fail(ckp + ["data"], "DER certificate data must be base64") from None
                    out.append({"encoding": enc, "data": data})
                return out
        if backend in ("local", "oci-layout") and key == "root":
            self.expect(kp, value, str, "a directory path")
            root = Path(value).expanduser()
            if not root.is_absolute():
                root = self.base_dir / root
            return str(root)
        if backend == "warg":
            if key == "url":
                self.expect(kp, value, str, "a URL such as https://warg.example.com")
                if not re.match(r"^https?://[^/\s]+", value):
                    raise self.fail(kp, f"invalid warg URL {value!r}", "write the full URL, e.g. https://warg.example.com")
                return value.rstrip("/")
            self.expect(kp, value, str, "a string")
            return value
        return value

    def settings(self, table: Any) -> None:
        self.expect(["pkgloader"], table, dict, "a table")
        st = self.cfg.settings
        for key, value in table.items():
            kp = ["pkgloader", key]
            if key not in _SETTING_TYPES:
                raise self.unknown(kp, _SETTING_TYPES, "pkgloader setting")
            types, expected = _SETTING_TYPES[key]
            self.expect(kp, value, types, expected)
            if key == "cache_dir":
                p = Path(value).expanduser()
                value = p if p.is_absolute() else self.base_dir / p
            elif key in _FLOAT_SETTINGS and not 0 < value <= 3600:
                raise self.fail(kp, f"{key} must be between 0 and 3600 seconds, got {value}")
            elif key == "low_speed_limit" and value < 0:
                raise self.fail(kp, f"low_speed_limit must not be negative, got {value}")
            elif key == "deps_format" and value not in ("wasm", "wit"):
                raise self.fail(kp, f"deps_format must be \"wasm\" or \"wit\", got {_short(value)}")
            elif key == "trust_store" and value not in TRUST_STORES:
                raise self.fail(kp, f"trust_store must be one of {', '.join(TRUST_STORES)}, got {_short(value)}")
            elif key in _PROXY_SETTINGS:
                check_proxy_url(value, str(self.origin(kp)))
            elif key == "no_proxy":
                if isinstance(value, list):
                    for i, item in enumerate(value):
                        self.expect(kp + [str(i)], item, str, "a host, host:port, IP address or CIDR range")
                    value = ",".join(value)
            elif key == "max_concurrency" and not 1 <= value <= 64:
                raise self.fail(kp, f"max_concurrency must be from 1 to 64, got {value}")
            elif key == "retries" and not 0 <= value <= 10:
                raise self.fail(kp, f"retries must be from 0 to 10, got {value}")
            elif key == "metadata_ttl" and value < 0:
                raise self.fail(kp, f"metadata_ttl must not be negative, got {value}")
            if key in _FLOAT_SETTINGS:
                value = float(value)
            st = replace(st, **{key: Setting(value, self.origin(kp))})
        self.cfg.settings = st


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array", dict: "a table"}.get(
        type(value), type(value).__name__
    )


def _short(value: Any) -> str:
    """A scalar as the error shows it (shortened); nothing for an array or a table, whose
    contents may be anything (a secret, a million levels of nesting)."""
    if isinstance(value, (dict, list)):
        return ""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _hides_value(keypath: list[str], types: type | tuple[type, ...]) -> bool:
    """Whether an error about the value at ``keypath`` must not quote it: a secret key's value
    (``auth = ["s3cr3t"]``), or whatever stands where a table belongs (``oci = "<base64>"``:
    a table that would hold secrets)."""
    if any(_is_secret_key(part) for part in keypath):
        return True
    return dict in (types if isinstance(types, tuple) else (types,))


# ---------------------------------------------------------------------------------------
# legacy warg-loader shape


def _looks_legacy(data: Mapping[str, Any]) -> bool:
    if "namespace" in data:
        return True
    regs = data.get("registry")
    if isinstance(regs, dict):
        for table in regs.values():
            if isinstance(table, dict) and "type" in table and any(
                k in table for k in ("auth", "root", "auth_token", "config_file")
            ):
                return True
    return False


def _convert_legacy(data: Mapping[str, Any], path: Path, text: str) -> dict[str, Any]:
    """warg-loader 0.0.2-0.0.6 -> wasm-pkg shape."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key == "default_registry":
            out[key] = value
        elif key == "namespace":
            if not isinstance(value, dict):
                raise ConfigError(f"[namespace] in {path} must be a table", details=[f"file: {path}"])
            nsr = out.setdefault("namespace_registries", {})
            for ns, table in value.items():
                if not isinstance(table, dict) or set(table) != {"registry"}:
                    raise ConfigError(
                        f"[namespace.{ns}] in {path} must contain exactly 'registry'",
                        details=[f"file: {path}:{_find_line(text, ['namespace', ns]) or '?'}"],
                    )
                nsr[ns] = table["registry"]
        elif key == "namespace_registries":
            out[key] = value
        elif key == "registry":
            regs: dict[str, Any] = {}
            for name, table in (value or {}).items():
                if not isinstance(table, dict):
                    regs[name] = table
                    continue
                kind = table.get("type")
                fields = {k: v for k, v in table.items() if k != "type"}
                if kind is None:
                    regs[name] = table
                    continue
                if kind not in KNOWN_BACKENDS:
                    raise ConfigError(
                        f"unknown registry type {kind!r} for [registry.\"{name}\"] in {path}",
                        details=[f"file: {path}:{_find_line(text, ['registry', name, 'type']) or '?'}"],
                        hint="use oci, local or warg",
                    )
                regs[name] = {"default": kind, kind: fields}
            out["registry"] = regs
        else:
            raise ConfigError(
                f"unknown key {key!r} in legacy config {path}",
                details=[f"file: {path}:{_find_line(text, [key]) or '?'}"],
                hint=_did_you_mean(key, ("default_registry", "namespace", "registry")),
            )
    return out


def legacy_to_toml(path: Path) -> dict[str, Any]:
    """Convert a legacy warg-loader file to wasm-pkg ``config.toml`` data (for ``config init --migrate``)."""
    text = _read_text(path)
    return _convert_legacy(_parse_toml(text, str(path)), path, text)


def _parse_ref_quietly(text: str) -> bool:
    """Whether ``text`` is a package reference (a config key that is not one is reported elsewhere)."""
    try:
        PackageRef.parse(text)
    except ValueError:
        return False
    return True
