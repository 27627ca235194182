"""Output helpers shared by the verbs: JSON on standard output, files a flag names, the
spool of signed output that is then pushed. The shared options are in
:mod:`attest_step.cli.options`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from attest_step.errors import AttestStepError, RegistryError, UsageError
from attest_step.fileio import write_atomically


def emit_json(data: Any) -> None:
    """Print ``data`` as stable, indented JSON followed by a newline."""
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def write_output_file(path: Path, data: bytes, flag: str, *, make_parents: bool = False) -> None:
    """Write ``data`` to the file a flag names, atomically; one-line errors naming the flag."""
    try:
        if make_parents:
            path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, data, prefix=f".{path.name}.")
    except UsageError as err:
        raise UsageError(f"{flag} {err}") from None
    except OSError as err:
        raise AttestStepError(
            f"{flag} {path}: cannot write it ({err.strerror or err}); check the directory"
        ) from err


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
