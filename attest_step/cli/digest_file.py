"""``--digest-file``: the digest of the image a verb made, written to a file, as kaniko's
``--digest-file`` does (in a Task, the path of the ``IMAGE_DIGEST`` result)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from attest_step.fileio import write_output_file

F = TypeVar("F", bound=Callable[..., Any])


def digest_file_option(what: str) -> Callable[[F], F]:
    """The option; the command receives ``digest_file`` (a Path, or None)."""
    return click.option(
        "--digest-file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help=f"Also write {what} digest (sha256:HEX, no newline) to this file "
        "(e.g. a Tekton IMAGE_DIGEST result).",
    )


def write_digest_file(path: Path | None, digest: str) -> None:
    """Write ``digest`` to the ``--digest-file`` given, if one was."""
    if path is not None:
        write_output_file(path, digest.encode(), "--digest-file")
