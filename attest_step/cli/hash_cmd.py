"""Stub verbs, replaced by their owners."""

from __future__ import annotations

import click

from attest_step.errors import AttestStepError


@click.command("hash")
def hash_command() -> None:
    """Not implemented yet."""
    raise AttestStepError("hash: not implemented yet")
