"""What the entry point started before click loaded, handed to the verb as click's ``obj``.

:func:`attest_step.cli.main.main` may start two things from the raw arguments: the scrypt of
a cosign ``--key`` (:class:`attest_step.keys.early_kdf.KdfPrefetch`) and a thread importing
the verb's heavy modules. A verb finds them with :func:`early_work`; called in-process
(tests, CliRunner) it gets an empty :class:`EarlyWork`.
"""

from __future__ import annotations

import threading

import click

from attest_step.keys.early_kdf import KdfPrefetch


class EarlyWork:
    """The early scrypt (None if it could not start) and the background import thread."""

    __slots__ = ("imports", "kdf")

    def __init__(
        self, kdf: KdfPrefetch | None = None, imports: threading.Thread | None = None
    ) -> None:
        self.kdf = kdf
        self.imports = imports

    def wait_for_imports(self) -> None:
        """Return once the background imports are done (at once if there are none)."""
        if self.imports is not None:
            self.imports.join()

    def __repr__(self) -> str:
        return f"EarlyWork(kdf={self.kdf!r}, imports={self.imports is not None})"


def early_work() -> EarlyWork:
    """The current command's :class:`EarlyWork` (empty when the entry point started none)."""
    found = click.get_current_context().find_object(EarlyWork)
    return found if found is not None else EarlyWork()
