"""The verified-result cache: ``<cache>/provenance/<hex of the manifest digest>.json`` maps
a policy fingerprint (its signers, key files and trusted root) to the :class:`Verified`
record. A manifest verified once under a policy is never verified again under it; a changed
key file or signer list is a new fingerprint, verified afresh."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ._verify import Verified

__all__ = ["get_verified", "put_verified"]

MAX_RECORD = 256 * 1024


def _path(cache_root: Path, subject: str) -> Path | None:
    algo, _, hexpart = subject.partition(":")
    if algo != "sha256" or len(hexpart) != 64 or not all(c in "0123456789abcdef" for c in hexpart):
        return None
    return cache_root / "provenance" / f"{hexpart}.json"


def _read(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read(MAX_RECORD))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def get_verified(cache_root: Path, subject: str, fingerprint: str) -> Verified | None:
    path = _path(cache_root, subject)
    if path is None:
        return None
    rec = _read(path).get(fingerprint)
    if not isinstance(rec, dict):
        return None
    try:
        v = Verified.from_json(rec)
    except (KeyError, TypeError, ValueError):
        return None
    return v if v.subject == subject else None


def put_verified(cache_root: Path, fingerprint: str, verified: Verified, *, durable: bool = False) -> None:
    from .._fsutil import atomic_write_bytes

    path = _path(cache_root, verified.subject)
    if path is None:
        return
    data = _read(path)
    data[fingerprint] = verified.to_json()
    try:
        atomic_write_bytes(path, json.dumps(data, sort_keys=True).encode(), durable=durable)
    except OSError:
        pass  # a cache of a result: verified again next time
