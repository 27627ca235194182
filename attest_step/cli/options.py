"""Options shared by several verbs, spelled as cosign spells them where it has them.

Imports click only: ``attest-step hash`` loads this module, and its start-up is measured
(docs/hashing.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def output_option(func: F) -> F:
    """``--output text|json`` (cosign's spelling); the command receives ``output``."""
    return click.option(
        "--output",
        "output",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="Print data as human text or as JSON on standard output.",
    )(func)


def exclude_option(func: F) -> F:
    """``--exclude GLOB`` (repeatable), as the hash, attest and verify verbs read it; the
    command receives ``excludes``."""
    return click.option(
        "--exclude",
        "excludes",
        multiple=True,
        metavar="GLOB",
        help="Leave out matching entries (repeatable). No '/': any name component; "
        "with '/': the path from the root. '**' spans directories.",
    )(func)


def bundle_option(help_text: str) -> Callable[[F], F]:
    """``--bundle FILE``, a Sigstore bundle file (cosign's ``--bundle`` of ``attest-blob``
    and ``verify-blob-attestation``); the command receives ``bundle: Path | None``."""
    from pathlib import Path  # noqa: PLC0415

    return click.option("--bundle", type=click.Path(dir_okay=False, path_type=Path), help=help_text)
