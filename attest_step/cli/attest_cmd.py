"""Stub verbs, replaced by their owners."""

from __future__ import annotations

import click

from attest_step.errors import AttestStepError


@click.command("attest")
def attest_command() -> None:
    """Not implemented yet."""
    raise AttestStepError("attest: not implemented yet")
