"""JSON parsing for answers and files pkgloader does not control.

``json.loads`` raises ``RecursionError`` (not ``ValueError``) for deeply nested input such as
100,000 ``[``; every reader here treats malformed JSON as a ``ValueError``, so this one
function makes nesting one more way of being malformed."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["load_json"]


def load_json(data: str | bytes | bytearray) -> Any:
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None
