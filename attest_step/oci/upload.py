"""Upload spooled signatures and attestations. (Stub.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from attest_step.oci.options import RegistryOptions


def push_spool(out_dir: Path, registry: RegistryOptions) -> list[dict[str, Any]]:
    """Upload everything spooled in ``out_dir``; return one record per upload."""
    raise NotImplementedError
