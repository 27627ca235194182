"""Whether the running interpreter is attest-step's own short-lived process."""

from __future__ import annotations

import sys


def is_own_process() -> bool:
    """True when this process is attest-step itself (console script or ``python -m
    attest_step``), not an in-process caller (tests, CliRunner) whose interpreter lives on.

    Verbs use it before shortcuts that only a process about to exit may take (no garbage
    collection, skipping interpreter teardown).
    """
    main_module = sys.modules.get("__main__")
    entry = sys.modules.get("attest_step.cli.main")
    return (
        entry is not None
        and main_module is not None
        and getattr(main_module, "main", None) is getattr(entry, "main", object())
    )
