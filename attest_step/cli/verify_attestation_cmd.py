"""Stub verbs, replaced by their owners."""

from __future__ import annotations

import click

from attest_step.errors import AttestStepError


@click.command("verify-attestation")
def verify_attestation_command() -> None:
    """Not implemented yet."""
    raise AttestStepError("verify-attestation: not implemented yet")
