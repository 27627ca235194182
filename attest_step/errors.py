"""Errors that reach the user as one line, never as a traceback.

Every message names the input that was wrong and says what to do. Messages must never
contain a password, key bytes or a whole secret file.
"""

from __future__ import annotations


class AttestStepError(Exception):
    """A failure the user can act on. Printed as ``attest-step: error: <message>``."""

    exit_code: int = 1


class UsageError(AttestStepError):
    """Bad flags or arguments (exit 2, as click does)."""

    exit_code = 2


class VerificationError(AttestStepError):
    """Something was checked and did not hold (exit 1)."""

    exit_code = 1


class RegistryError(AttestStepError):
    """The registry could not be reached or refused a request (exit 1)."""

    exit_code = 1
