"""The bag every verification test starts from."""

from __future__ import annotations

from pathlib import Path

import pytest

from .bags import LOC_SAFE, PERCENT, make_bag


@pytest.fixture
def bag(tmp_path: Path) -> Path:
    make_bag(tmp_path, LOC_SAFE | PERCENT)
    return tmp_path
