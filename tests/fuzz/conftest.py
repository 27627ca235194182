"""Fixtures of the fuzz suites."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.support import Scratch


@pytest.fixture
def scratch(tmp_path: Path) -> Scratch:
    """A fresh directory per hypothesis example, the previous one removed (2000 examples of
    a long run must not leave 2000 directories behind)."""
    return Scratch(tmp_path)
