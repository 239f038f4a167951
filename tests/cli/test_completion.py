"""Shell completion generated from the parser, exercised in a real bash."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any, Callable

import pytest


def _complete(script: str, words: list[str]) -> list[str]:
    bash = shutil.which("bash")
    assert bash, "bash is part of every Debian system"
    words_text = " ".join(f"'{w}'" for w in words)
    program = f"{script}\nCOMP_WORDS=({words_text}); COMP_CWORD={len(words) - 1}; _pkgloader; printf '%s\\n' \"${{COMPREPLY[@]}}\"\n"
    r = subprocess.run([bash, "--norc", "-c", program], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return [w for w in r.stdout.splitlines() if w]


@pytest.fixture
def bash_script(run_cli: Callable[..., Any]) -> str:
    r = run_cli("completion", "bash")
    assert r.code == 0, r.err
    return str(r.out)


@pytest.mark.parametrize("words, expected", [
    (["pkgloader", "fe"], ["fetch"]),
    (["pkgloader", "c"], ["cache", "completion", "config"]),
    (["pkgloader", "fetch", "--ov"], ["--overwrite"]),
    (["pkgloader", "config", "s"], ["show"]),
    (["pkgloader", "config", "show", "--or"], ["--origin"]),
    (["pkgloader", "cache", "clean", "--old"], ["--older-than"]),
])
def test_bash_completes_commands_subcommands_and_options(bash_script: str, words: list[str], expected: list[str]) -> None:
    assert _complete(bash_script, words) == expected


def test_zsh_and_fish_scripts_name_every_command(run_cli: Callable[..., Any]) -> None:
    zsh = run_cli("completion", "zsh").out
    assert "bashcompinit" in zsh and "complete -o filenames -F _pkgloader pkgloader" in zsh
    fish = run_cli("completion", "fish").out
    for cmd in ("fetch", "versions", "info", "publish", "lock", "sync", "update", "config", "cache", "completion"):
        assert f" -a {cmd} " in fish
    assert "__fish_seen_subcommand_from fetch' -l check -d 'write nothing: report whether every output holds the release it selects (exit 0 when all are up to date, 7 output-out-of-date otherwise)'" in fish
