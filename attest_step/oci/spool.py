"""Signed output on disk before any push; ``push --from DIR`` uploads it later. (Stub.)"""

from __future__ import annotations

from pathlib import Path

from attest_step.imageref import ImageRef


def write_attestation(out_dir: Path, envelope: bytes, image: ImageRef, predicate_type: str) -> Path:
    """Write the envelope and what is needed to upload it later; return the file written."""
    raise NotImplementedError
