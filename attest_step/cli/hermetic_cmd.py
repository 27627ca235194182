"""Stub verbs, replaced by their owners."""

from __future__ import annotations

import click

from attest_step.errors import AttestStepError


@click.command("run")
def run_command() -> None:
    """Not implemented yet."""
    raise AttestStepError("run: not implemented yet")


@click.command("probe")
def probe_command() -> None:
    """Not implemented yet."""
    raise AttestStepError("probe: not implemented yet")
