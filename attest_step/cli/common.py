"""Output helpers shared by the verbs: JSON on standard output, the spool of signed output
that is then pushed (files a flag names: attest_step.fileio.write_output_file). The shared
options are in :mod:`attest_step.cli.options`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from attest_step.errors import RegistryError


def emit_json(data: Any) -> None:
    """Print ``data`` as stable, indented JSON followed by a newline."""
    click.echo(json.dumps(data, indent=2, sort_keys=True))


@contextmanager
def spool_then_push(spool_dir: Path | None, what: str) -> Iterator[Path]:
    """The spool directory for signed output that is then pushed: ``spool_dir``, or a new
    temporary directory, removed once the block succeeded. A registry or log failure in the
    block says where the output is kept and how to upload it later; the error keeps its
    class, so its exit code (2, or 75 for a service that was unavailable)."""
    import shutil  # noqa: PLC0415 - only the verbs that push need them
    import tempfile  # noqa: PLC0415

    directory = spool_dir or Path(tempfile.mkdtemp(prefix="attest-step-spool-"))
    try:
        yield directory
    except RegistryError as err:
        raise type(err)(
            f"{err}; the {what} is kept in {directory}: upload it later with "
            f"attest-step push --from {directory}"
        ) from err
    if spool_dir is None:
        shutil.rmtree(directory, ignore_errors=True)
