"""Shared builders for tests/wkg: a real component (wasm-tools component embed + new) that
exports ``get: func() -> u32`` answering 42, and a registry project fixture."""

from __future__ import annotations

import subprocess
from pathlib import Path

from support.wit import wasm_tools

ANSWER_WIT = "package test:answer@0.1.0;\n\nworld answer {\n  export get: func() -> u32;\n}\n"
ANSWER_WAT = '(module\n  (memory (export "memory") 1)\n  (func (export "get") (result i32) i32.const 42))\n'


def run_wasm_tools(*args: str | Path) -> str:
    done = subprocess.run([wasm_tools(), *map(str, args)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def build_answer_component(tmp: Path, *, metadata: list[str] = ()) -> Path:  # type: ignore[assignment]
    """A component exporting ``get`` (returns 42); ``metadata``: ``wasm-tools metadata add``
    arguments (``--description``, ``--licenses``, ...)."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "wit").mkdir(exist_ok=True)
    (tmp / "wit" / "world.wit").write_text(ANSWER_WIT)
    (tmp / "core.wat").write_text(ANSWER_WAT)
    run_wasm_tools("component", "embed", tmp / "wit", tmp / "core.wat", "-o", tmp / "embedded.wasm", "--world", "answer")
    out = tmp / "answer.wasm"
    run_wasm_tools("component", "new", tmp / "embedded.wasm", "-o", out)
    if metadata:
        run_wasm_tools("metadata", "add", out, *metadata, "-o", out)
    return out
