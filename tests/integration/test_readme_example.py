"""README's Python example, exactly as README shows it, run as a script against a real
registry that serves the wasi packages it names."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    text = README.read_text()
    start = text.index("From Python (a build tool):")
    m = re.search(r"```python\n(.*?)```", text[start:], re.S)
    assert m, "README has no Python example after 'From Python (a build tool):'"
    return m.group(1)


def test_readme_python_example_runs(registry: Any, registry_config: Callable[..., Path], wit_package: Callable[..., Path],
                                    tmp_path: Path) -> None:
    registry_config(registry, namespace="wasi")
    from pkgloader import Client

    with Client() as c:
        for ref in ("wasi:http@0.2.0", "wasi:http@0.2.3", "wasi:io@0.2.3", "wasi:cli@0.2.1"):
            ns, rest = ref.split(":")
            name, version = rest.split("@")
            c.publish(wit_package(ns, name, version), ref)
    work = tmp_path / "work"
    work.mkdir()
    script = work / "example.py"
    script.write_text(readme_example())
    r = subprocess.run([sys.executable, str(script)], cwd=work, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("0.2.3 sha256:") and lines[0].endswith("wasi_http@0.2.3.wasm")
    assert sorted(ln.split()[0] + "@" + ln.split()[1] for ln in lines[1:]) == ["wasi:cli@0.2.1", "wasi:io@0.2.3"]
    assert sorted(p.name for p in (work / "wit" / "deps").iterdir()) == [
        "wasi_cli@0.2.1.wasm", "wasi_http@0.2.3.wasm", "wasi_io@0.2.3.wasm"]
