"""Fixtures of the provenance suites (helpers: tests/support/signing.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from support.signing import Key, key_factory


@pytest.fixture
def make_key(tmp_path: Path) -> Callable[..., Key]:
    return key_factory(tmp_path)
