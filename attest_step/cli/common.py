"""Options and output helpers shared by the verbs."""

from __future__ import annotations

import json
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


def emit_json(data: Any) -> None:
    """Print ``data`` as stable, indented JSON followed by a newline."""
    click.echo(json.dumps(data, indent=2, sort_keys=True))
