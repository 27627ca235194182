"""Hashing files and trees into subjects. (Stub: filled in by the hashing work.)

CONTRACT used by ``attest`` and ``hash``:
``hash_paths(paths, excludes=(), dir_digest=False) -> list[Subject]``: subjects named relative
to each root given, sorted by name, deterministic; raises AttestStepError on any problem.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from attest_step.model import Subject


def hash_paths(
    paths: Sequence[Path], *, excludes: Sequence[str] = (), dir_digest: bool = False
) -> list[Subject]:
    raise NotImplementedError
