"""JSON parsing for answers and files pkgloader does not control.

``json.loads`` raises ``RecursionError`` (not ``ValueError``) for deeply nested input such as
100,000 ``[``; every reader here treats malformed JSON as a ``ValueError``, so this one
function makes nesting one more way of being malformed.

A registry's answer is capped in bytes before it is parsed, but the objects it parses into
are not: 16 MiB of ``[],`` are 5.5 million lists, ~450 MiB of memory. Readers of such answers
pass ``max_containers``: more arrays and objects than that is malformed too (the count is
of ``[`` and ``{`` bytes, an upper bound that is cheap to take before parsing)."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["load_json", "MAX_ANSWER_CONTAINERS"]

#: arrays and objects allowed in a registry's answer (a tag list has 2; a warg page of a
#: thousand records a few thousand): ~10 MiB of Python objects at most
MAX_ANSWER_CONTAINERS = 100_000


def load_json(data: str | bytes | bytearray, *, max_containers: int | None = None) -> Any:
    if max_containers is not None:
        if isinstance(data, str):
            count = data.count("[") + data.count("{")
        else:
            count = data.count(b"[") + data.count(b"{")
        if count > max_containers:
            raise ValueError(f"the JSON has more than {max_containers:,} arrays and objects")
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None
