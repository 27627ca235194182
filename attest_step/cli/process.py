"""Whether the running interpreter is attest-step's own short-lived process, and ending it."""

from __future__ import annotations

import atexit
import os
import sys
import threading


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


def exit_now() -> None:
    """End the process with status 0 now, skipping interpreter teardown, when that is safe;
    otherwise return (the verb then returns as usual).

    Teardown frees every object and module one by one after the output is complete (~5-15
    ms with the registry client or tens of thousands of hashed names loaded); the kernel
    reclaims it all at once. Safe only in attest-step's own process (never in in-process
    callers such as tests or CliRunner) and when no non-daemon thread runs (teardown would
    wait for it; daemon threads are stopped by teardown too). What teardown would still do
    is done first: the ``atexit`` handlers run and standard output and error are flushed (a
    flush error is raised as usual, before this). The status is click's for a verb that
    returns: 0.
    """
    current = threading.current_thread()
    if not is_own_process() or any(
        thread is not current and not thread.daemon and thread.is_alive()
        for thread in threading.enumerate()
    ):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()  # CPython: what teardown runs first
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
