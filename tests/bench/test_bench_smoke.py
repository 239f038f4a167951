"""End-to-end smoke test of ``scripts/bench.py``.

Runs ``scripts/bench.py --setup both --tiny --quick --runs 1 --warmup 0`` as a developer would
run the full benchmark, with small sizes (tiny: the ~40 KB WIT package, components of 256 KiB
and 4 MiB, 5 packages, 250 paged tags, a 300-record warg log; ~40 s), so that every code path
runs in both set-ups: the default ghcr-like one (HTTPS with a throw-away CA given to every
tool, anonymous bearer tokens, blobs redirected to a second host, tags paged 100 at a time)
and the plain-HTTP one; seeding with pkgloader's publish, every tool and peer, the request
counts at the front, CDN and token server, the JSON and Markdown reports. It never asserts a
time or a target: the benchmark reports, it does not judge.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.registry, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "scripts" / "bench.py"
REGISTRY_WORKLOADS = {"fetch-1mib", "fetch-100mib", "cold-small", "warm-small", "multi-cold", "tags-paged"}
TINY_MULTI, TINY_TAGS = 5, 250


def _positive(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def _check_numbers(table: dict[str, Any]) -> None:
    for w in table["workloads"]:
        name = w["name"]
        assert w["status"] == "ok", (table["setup"], name, w["error"])
        assert w["series"], name
        for s in w["series"]:
            assert len(s["samples"]) == 1, (name, s["name"])
            assert all(_positive(x) for x in s["samples"]), (name, s)
            assert _positive(s["median"]) and s["min"] <= s["median"] <= s["max"], (name, s)
            assert _positive(s["peak_rss_kib"]), (name, s["name"])
            assert all(_positive(c) for c in s["cpu_seconds"]), (name, s["name"])
            if w["size_bytes"]:
                assert _positive(s["throughput_mib_s"]), (name, s["name"])
        assert "pkgloader" in {s["role"] for s in w["series"]}, name
        for p in w["pairs"]:
            assert _positive(p["ratio"]) and p["ok"] in (True, False, None), (name, p)
        for c in w["checks"]:
            assert c["measured"] and c["ok"] in (True, False), (name, c)


def test_both_setups_complete_every_workload_with_numbers(tmp_path: Path) -> None:
    report, table = tmp_path / "bench.json", tmp_path / "bench.md"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--setup", "both", "--tiny", "--quick", "--runs", "1", "--warmup", "0",
         "--json", str(report), "--markdown", str(table)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    data = json.loads(report.read_text())

    assert data["summary"]["failed"] == []
    assert data["meta"]["tiny"] is True and data["meta"]["quick"] is True
    assert [t["setup"] for t in data["tables"]] == ["ghcr", "plain"]  # HTTPS first: the default
    ghcr, plain = data["tables"]
    # --quick skips fetch-1gib; warg validation uses no registry and is measured once
    assert {w["name"] for w in ghcr["workloads"]} == REGISTRY_WORKLOADS | {"warg-validate"}
    assert {w["name"] for w in plain["workloads"]} == REGISTRY_WORKLOADS
    for t in data["tables"]:
        assert t["summary"]["failed"] == []
        _check_numbers(t)

    by_name = {w["name"]: w for w in ghcr["workloads"]}
    series = {name: {s["name"]: s for s in w["series"]} for name, w in by_name.items()}
    # every peer ran over TLS where the issue names it
    assert {"pkgloader CLI (process)", "oras-py (process)", "oras-py (in-process)", "skopeo copy (process)",
            "curl -o (process)"} <= set(series["fetch-100mib"])
    assert "python -c pass (process)" in series["warm-small"]
    assert "pkgloader library (in-process)" in series["multi-cold"]

    # the ghcr-like path really ran: each cold fetch took one token and had its blob redirected to the CDN
    for tool in ("pkgloader CLI (process)", "oras-py (process)", "curl -o (process)"):
        for e in series["fetch-100mib"][tool]["extras"]:
            assert e["requests"]["cdn"] == 1, (tool, e["requests"])
    for e in series["fetch-100mib"]["pkgloader CLI (process)"]["extras"]:
        assert (e["requests"]["token"], e["requests"]["token_scopes"]) == (1, 1), e["requests"]
    for tool in ("pkgloader CLI (process)", "pkgloader library (process)"):
        for e in series["multi-cold"][tool]["extras"]:
            r = e["requests"]
            assert (r["token"], r["token_scopes"], r["cdn"]) == (TINY_MULTI, TINY_MULTI, TINY_MULTI), (tool, r)
    # the warm fetch made no request anywhere
    for e in series["warm-small"]["pkgloader CLI (process)"]["extras"]:
        r = e["requests"]
        assert (r["registry"], r["cdn"], r["token"]) == (0, 0, 0), r
    # the front really paged: every tool saw every tag over 3 pages
    for s in series["tags-paged"].values():
        assert [(e["versions"], e["pages"]) for e in s["extras"]] == [(TINY_TAGS, 3)], s["name"]

    # the targets and checks are evaluated (whatever the outcome)
    assert any(p["max_ratio"] is not None for p in by_name["cold-small"]["pairs"])
    assert [c["name"] for c in by_name["warm-small"]["checks"]] == ["HTTP requests, warm fetch"]
    assert {c["name"] for c in by_name["multi-cold"]["checks"]} == {
        "CPU user+sys, pkgloader CLI", "CPU user+sys, pkgloader library", "token requests"}
    token_rows = {c["name"]: c for c in by_name["multi-cold"]["checks"]}["token requests"]
    assert token_rows["ok"] is True, token_rows  # a count, not a time: pkgloader makes one per scope

    plain_tags = {s["name"]: s for s in {w["name"]: w for w in plain["workloads"]}["tags-paged"]["series"]}
    assert [(e["versions"], e["pages"]) for e in plain_tags["oras-py (process)"]["extras"]] == [(TINY_TAGS, 3)]

    md = table.read_text()
    assert "## ghcr: HTTPS + token" in md and "## plain: plain HTTP" in md
    assert "| workload | series | median |" in md and "warg-validate" in md
    assert "pkgloader/peer" in proc.stdout  # the tables are printed too


def test_unknown_workload_is_a_usage_error(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(BENCH), "--only", "nope", "--json", str(tmp_path / "r.json")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    assert "unknown workload(s) nope" in proc.stderr
    assert not (tmp_path / "r.json").exists()
