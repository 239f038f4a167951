"""The names the HTTP backend uses, and the benchmark helper (run small; no timing asserts)."""

from __future__ import annotations

import subprocess
import sys

import pkgloader.backends.warg as warg
from pkgloader.backends.warg._bench import bench_validate_package_log, build_package_log


def test_public_names() -> None:
    assert sorted(warg.__all__) == sorted(
        [
            "Checkpoint",
            "LogHead",
            "OPERATOR_LOG_ID",
            "OperatorState",
            "PackageState",
            "PublishedRecord",
            "Release",
            "STATE_FORMAT",
            "SignedCheckpoint",
            "Timestamp",
            "Update",
            "VerifiedState",
            "package_log_id",
            "validate_operator_log",
            "validate_package_log",
            "validate_package_name",
            "verify_update",
        ]
    )
    assert warg.Update.__module__ == "pkgloader.backends.warg"
    assert repr(warg.Timestamp(1, 2)) == "Timestamp(seconds=1, nanos=2)"
    assert str(warg.Timestamp(1, 2)) == "1.2"


def test_bench_helper_small() -> None:
    result = bench_validate_package_log(40, repeat=1)
    assert result["records"] == 40 and result["releases"] == 39
    assert result["seconds"] > 0


def test_generated_log_validates_incrementally() -> None:
    records = build_package_log(30)
    first = warg.validate_package_log("bench:package", records[:10])
    assert warg.validate_package_log("bench:package", records[10:], first) == warg.validate_package_log("bench:package", records)


def test_bench_module_runs() -> None:
    code = "import pkgloader.backends.warg._bench as b; r = b.bench_validate_package_log(20, repeat=1); print(r['records'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "20"
