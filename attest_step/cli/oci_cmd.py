"""Stub verbs, replaced by their owners."""

from __future__ import annotations

import click

from attest_step.errors import AttestStepError


@click.command("sign")
def sign_command() -> None:
    """Not implemented yet."""
    raise AttestStepError("sign: not implemented yet")


@click.command("verify")
def verify_command() -> None:
    """Not implemented yet."""
    raise AttestStepError("verify: not implemented yet")


@click.command("push")
def push_command() -> None:
    """Not implemented yet."""
    raise AttestStepError("push: not implemented yet")
