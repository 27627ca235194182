"""Stub verbs, replaced by their owners."""

from __future__ import annotations

import click

from attest_step.errors import AttestStepError


@click.command("generate-key-pair")
def generate_key_pair_command() -> None:
    """Not implemented yet."""
    raise AttestStepError("generate-key-pair: not implemented yet")


@click.command("public-key")
def public_key_command() -> None:
    """Not implemented yet."""
    raise AttestStepError("public-key: not implemented yet")
