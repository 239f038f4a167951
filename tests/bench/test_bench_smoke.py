"""End-to-end smoke test of ``scripts/bench.py``.

Runs ``scripts/bench.py --quick --runs 1`` exactly as a developer would (real sizes: the
~40 KB WIT package, 1 MiB and 100 MiB components, 50 packages, 1,500 paged tags, a
10,000-record warg log; one warm-up round; ~30 s), and checks that every workload completed and
produced numbers: registry, paging proxy, seeding with pkgloader's publish, every tool and
peer, the JSON and Markdown reports. It never asserts a time or a target: the benchmark
reports, it does not judge.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.registry, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "scripts" / "bench.py"
QUICK_WORKLOADS = {"fetch-1mib", "fetch-100mib", "cold-small", "warm-small", "multi-cold", "tags-paged", "warg-validate"}


def _positive(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def test_quick_run_completes_every_workload_with_numbers(tmp_path: Path) -> None:
    report, table = tmp_path / "bench.json", tmp_path / "bench.md"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--runs", "1",
         "--json", str(report), "--markdown", str(table)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    data = json.loads(report.read_text())

    assert data["summary"]["failed"] == []
    assert {w["name"] for w in data["workloads"]} == QUICK_WORKLOADS  # --quick skips fetch-1gib
    assert set(data["summary"]["completed"]) == QUICK_WORKLOADS
    assert data["meta"]["tiny"] is False and data["meta"]["quick"] is True

    for w in data["workloads"]:
        name = w["name"]
        assert w["status"] == "ok", (name, w["error"])
        assert w["series"], name
        for s in w["series"]:
            assert len(s["samples"]) == 1, (name, s["name"])
            assert all(_positive(x) for x in s["samples"]), (name, s)
            assert _positive(s["median"]) and s["min"] <= s["median"] <= s["max"], (name, s)
            assert _positive(s["peak_rss_kib"]), (name, s["name"])
            if w["size_bytes"]:
                assert _positive(s["throughput_mib_s"]), (name, s["name"])
        roles = {s["role"] for s in w["series"]}
        assert "pkgloader" in roles, name
        for p in w["pairs"]:
            assert _positive(p["ratio"]) and p["ok"] in (True, False, None), (name, p)
        for c in w["checks"]:
            assert c["measured"] and c["ok"] in (True, False), (name, c)

    by_name = {w["name"]: w for w in data["workloads"]}
    # every peer ran where the issue names it
    fetch_series = {s["name"] for s in by_name["fetch-100mib"]["series"]}
    assert {"pkgloader CLI (process)", "oras-py (process)", "oras-py (in-process)", "skopeo copy (process)",
            "curl -o (process)"} <= fetch_series
    assert "python -c pass (process)" in {s["name"] for s in by_name["warm-small"]["series"]}
    assert "pkgloader library (in-process)" in {s["name"] for s in by_name["multi-cold"]["series"]}
    # the paging proxy really paged: the peer (oras-py follows Link) saw every tag over 15 pages
    oras_tags = next(s for s in by_name["tags-paged"]["series"] if s["name"] == "oras-py (process)")
    assert [(e["versions"], e["pages"]) for e in oras_tags["extras"]] == [(1500, 15)]
    # the targets are evaluated (whatever the outcome)
    assert any(p["max_ratio"] is not None for p in by_name["cold-small"]["pairs"])
    assert [c["name"] for c in by_name["warm-small"]["checks"]] == ["HTTP requests, warm fetch"]

    md = table.read_text()
    assert "| workload | series | median |" in md and "warg-validate" in md
    assert "pkgloader/peer" in proc.stdout  # the table is printed too


def test_unknown_workload_is_a_usage_error(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(BENCH), "--only", "nope", "--json", str(tmp_path / "r.json")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    assert "unknown workload(s) nope" in proc.stderr
    assert not (tmp_path / "r.json").exists()
