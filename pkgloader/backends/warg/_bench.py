"""Benchmark: validate an n-record package log (``python -m pkgloader.backends.warg._bench``).

The log is generated in memory with fresh keys (an owner that initializes the package and
grants ``release`` to a second key; the two keys then alternate releasing versions) and
served as the JSON envelopes of a fetch-logs response. The timed part is what the client
does per record: parse the envelope, hash, decode, apply the state machine, and verify
the ECDSA signature.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from ._crypto import PACKAGE_SIGNATURE_PREFIX, SigningKey, b64encode
from ._records import (
    PACKAGE_RECORD_ID_PREFIX,
    GrantEntry,
    InitEntry,
    ReleaseEntry,
    Timestamp,
    encode_package_record,
)
from ._state import validate_package_log

__all__ = ["build_package_log", "bench_validate_package_log"]


def build_package_log(n: int, *, name: str = "bench:package") -> list[dict[str, Any]]:
    """``n`` signed records of package ``name`` as fetch-logs JSON envelopes."""
    owner = SigningKey.generate()
    releaser = SigningKey.generate()
    out: list[dict[str, Any]] = []
    prev: str | None = None
    base = 1_700_000_000
    for i in range(n):
        if i == 0:
            entries: list[Any] = [InitEntry(owner.public.text), GrantEntry(releaser.public.text, ("release",))]
            key = owner
        else:
            digest = "sha256:" + hashlib.sha256(i.to_bytes(8, "big")).hexdigest()
            entries = [ReleaseEntry(f"{i // 1000}.{i % 1000}.0", digest)]
            key = releaser if i % 2 else owner
        content = encode_package_record(prev, Timestamp(base + i, 0), entries)
        record_id = "sha256:" + hashlib.sha256(PACKAGE_RECORD_ID_PREFIX + content).hexdigest()
        out.append(
            {
                "contentBytes": b64encode(content),
                "keyId": key.key_id,
                "signature": key.sign(PACKAGE_SIGNATURE_PREFIX, content),
                "registryIndex": i + 1,
                "fetchToken": record_id,
            }
        )
        prev = record_id
    return out


def bench_validate_package_log(n: int = 10_000, *, repeat: int = 3, name: str = "bench:package") -> dict[str, Any]:
    """Generate an ``n``-record log, validate it ``repeat`` times, and report the best time."""
    records = build_package_log(n, name=name)
    best = float("inf")
    state = None
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        state = validate_package_log(name, records)
        best = min(best, time.perf_counter() - start)
    assert state is not None and state.head.length == n
    return {
        "records": n,
        "releases": len(state.releases),
        "seconds": best,
        "records_per_second": n / best if best else float("inf"),
        "microseconds_per_record": best / n * 1e6,
    }


if __name__ == "__main__":
    result = bench_validate_package_log()
    print(
        f"validated a {result['records']}-record warg package log in {result['seconds']:.3f} s "
        f"({result['microseconds_per_record']:.1f} µs/record, {result['records_per_second']:.0f} records/s)"
    )
