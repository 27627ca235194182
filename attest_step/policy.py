"""Deploy-time policy over a verified provenance statement. (Stub: hermetic work fills it.)"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def load_policy(path: Path) -> dict[str, Any]:
    """Load and validate a policy file (YAML or JSON)."""
    raise NotImplementedError


def evaluate_policy(statement: Mapping[str, Any], policy: Mapping[str, Any]) -> list[str]:
    """Violations, one sentence each; empty when the statement satisfies the policy."""
    raise NotImplementedError
