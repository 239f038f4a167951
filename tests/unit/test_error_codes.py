"""Every error code pkgloader can raise is in ``_errors.CODES`` with the right exit code, and
README's error-code and exit-code tables are what ``_errors`` says (no drift)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pkgloader
from pkgloader import _errors

ROOT = Path(__file__).resolve().parents[2]
FIX = "add it to pkgloader/_errors.py CODES, then run: .venv/bin/python scripts/update_readme.py"


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_subclasses(sub))
    return out


def _error_classes() -> dict[str, type]:
    import pkgloader._client  # noqa: F401  - imports every module that defines an error class
    for mod in ROOT.joinpath("pkgloader").rglob("*.py"):
        if "__pycache__" in mod.parts or mod.name == "__main__.py":
            continue
        name = ".".join(mod.relative_to(ROOT).with_suffix("").parts)
        if name.endswith(".__init__"):
            name = name[: -len(".__init__")]
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - an optional extra's module; not our concern here
            pass
    return {c.__qualname__: c for c in [_errors.PkgLoaderError, *_subclasses(_errors.PkgLoaderError)]}


def _codes_in_source() -> dict[str, list[str]]:
    """Every string given as ``code=`` (a literal, or a module constant) anywhere in pkgloader."""
    found: dict[str, list[str]] = {}
    for path in sorted(ROOT.joinpath("pkgloader").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants = {t.id: node.value.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
                     for t in node.targets if isinstance(t, ast.Name) and isinstance(node.value, ast.Constant)
                     and isinstance(node.value.value, str)}
        for node in ast.walk(tree):
            values = []
            if isinstance(node, ast.keyword) and node.arg == "code":
                values.append(node.value)
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "code" for t in node.targets):
                values.append(node.value)
            for v in values:
                text = v.value if isinstance(v, ast.Constant) else constants.get(v.id) if isinstance(v, ast.Name) else None
                if isinstance(text, str) and re.fullmatch(r"[a-z][a-z0-9-]+", text):
                    found.setdefault(text, []).append(f"{path.relative_to(ROOT)}:{node.lineno if hasattr(node, 'lineno') else v.lineno}")
    return found


def test_every_class_code_is_listed_with_its_exit_code() -> None:
    for name, cls in _error_classes().items():
        if cls is _errors.FetchManyError:
            continue  # takes the code of its most severe failure
        assert cls.code in _errors.CODES, f"{name}.code {cls.code!r} is not in CODES: {FIX}"
        assert _errors.CODES[cls.code][0] == cls.exit_code, (
            f"{name}: CODES says exit {_errors.CODES[cls.code][0]} for {cls.code!r}, the class exits {cls.exit_code}")


def test_every_code_raised_in_the_source_is_listed() -> None:
    found = _codes_in_source()
    missing = {code: where for code, where in found.items() if code not in _errors.CODES}
    assert not missing, f"codes raised but not in CODES ({FIX}): {missing}"
    classes = {c.code for c in _error_classes().values()}
    unused = set(_errors.CODES) - set(found) - classes
    assert not unused, f"CODES lists codes nothing raises (remove them): {sorted(unused)}"


def test_readme_lists_every_code_and_exit_code() -> None:
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "update_readme.py"), "--check"], capture_output=True,
                       text=True)
    assert r.returncode == 0, f"README.md's error-code table is out of date: run {FIX.split(': ')[-1]}"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for code, (exit_code, meaning) in _errors.CODES.items():
        assert f"| `{code}` | {exit_code} | {meaning} |" in readme
    section = readme.split("## Exit codes", 1)[1]
    for exit_code in pkgloader.EXIT_CODES:
        assert re.search(rf"^\| {exit_code} \| ", section, re.M), f"exit code {exit_code} is not in README's table"
    documented = {int(m) for m in re.findall(r"^\| (\d+) \| [a-z]", section.split("<!-- error-codes", 1)[0], re.M)}
    assert documented == set(pkgloader.EXIT_CODES)
    assert {e for e, _ in _errors.CODES.values()} <= set(pkgloader.EXIT_CODES)
