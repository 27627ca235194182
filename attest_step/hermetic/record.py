"""The network-isolation record carried in the provenance. (Stub: hermetic work fills it.)"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def isolation_byproducts(
    evidence_files: Sequence[Path], declared_hermetic_steps: Sequence[str]
) -> list[dict[str, Any]]:
    """ResourceDescriptors to append to ``runDetails.byproducts``."""
    raise NotImplementedError
